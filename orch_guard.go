package swarm

import (
	"strings"
	"sync/atomic"
)

// reconcileHook, when set (by internal tests), runs at the start of every
// service's reconcile, inside its guard: a test makes it panic for one
// service to check that the others still converge.
var reconcileHook atomic.Pointer[func(*Service)]

// Messages the orchestrator puts on a service it cannot reconcile; the
// prefix is how it recognises its own report and does not write it again.
const (
	msgReconcilePrefix = "orchestrator: "
	msgReconcilePanic  = msgReconcilePrefix + "reconciling the service failed, its tasks are left as they are (a bug, logged by the leader): "
	msgReconcileSpec   = msgReconcilePrefix + "the stored spec is invalid, its tasks are left as they are (update the service to fix it): "
)

// specCheck caches the validation of a stored service: objects are
// immutable, so a (service, version) pair is checked once per leadership.
type specCheck struct {
	version uint64
	err     error
}

// reconcileService runs one service's part of a pass, contained: a spec
// that breaks the bounds of limits.go (stored by an older version, or
// restored from an old snapshot) is not acted on, and a panic drops what
// the service added to the plan. Either way the service's UpdateStatus
// says so, as a paused update with the reason in its message, and the
// other services of the pass go on.
func (o *orchestrator) reconcileService(s *state, p *plan, sched *scheduler, svc *Service, nodes []*NodeInfo) {
	if err := o.storedSpecErr(svc); err != nil {
		o.reportStuck(p, svc, msgReconcileSpec+err.Error())
		return
	}
	ops, cmds := len(p.ops), len(p.cmds)
	err := o.n.guard("reconcile of service "+svc.Spec.Name, func() {
		if h := reconcileHook.Load(); h != nil {
			(*h)(svc)
		}
		sp := o.newSvcPass(s, p, sched, svc, nodes)
		switch svc.Spec.Mode.normalized().Kind {
		case ModeGlobal:
			sp.reconcileGlobal()
		case ModeReplicatedJob:
			sp.reconcileReplicatedJob()
		case ModeGlobalJob:
			sp.reconcileGlobalJob()
		default:
			sp.reconcileReplicated()
		}
	})
	if err != nil {
		p.ops, p.cmds = p.ops[:ops], p.cmds[:cmds]
		o.reportStuck(p, svc, msgReconcilePanic+truncN(err.Error(), 512))
	}
}

// storedSpecErr validates a stored service once per version.
func (o *orchestrator) storedSpecErr(svc *Service) error {
	if c, ok := o.checked[svc.ID]; ok && c.version == svc.Version {
		return c.err
	}
	spec := svc.Spec
	spec.Mode = spec.Mode.normalized()
	err := validateSpec(&spec)
	if o.checked == nil {
		o.checked = map[string]specCheck{}
	}
	o.checked[svc.ID] = specCheck{svc.Version, err}
	return err
}

// reportStuck records on the service why the orchestrator leaves it
// alone, once: a service already showing such a report is not written
// again (else every pass would write, and every write start a pass).
func (o *orchestrator) reportStuck(p *plan, svc *Service, msg string) {
	us := UpdateStatus{State: UpdatePaused, Message: msg}
	if cur := svc.UpdateStatus; cur != nil {
		if strings.HasPrefix(cur.Message, msgReconcilePrefix) {
			return
		}
		us.StartedAt = cur.StartedAt
		if cur.State == UpdateRollbackStarted || cur.State == UpdateRollbackPaused {
			us.State = UpdateRollbackPaused
		}
	}
	p.cmds = append(p.cmds, &command{Type: cmdServiceStatus, ID: svc.ID,
		Service: &Service{SpecVersion: svc.SpecVersion, UpdateStatus: &us}})
}
