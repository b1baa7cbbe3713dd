package swarm

import (
	"path"
	"regexp"
	"strings"
)

var serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// validateSpec checks a service spec and names the first bad field.
func validateSpec(spec *ServiceSpec) error {
	switch {
	case spec.Name == "":
		return invalidf("service name is empty")
	case len(spec.Name) > MaxServiceNameLength:
		return invalidf("service name %q is longer than %d characters", trunc(spec.Name), MaxServiceNameLength)
	case !serviceNameRE.MatchString(spec.Name):
		return invalidf("service name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] allowed", spec.Name)
	case strings.TrimSpace(spec.Image) == "":
		return invalidf("service %q: image is empty", spec.Name)
	}
	if err := validateBounds(spec); err != nil {
		return err
	}
	switch spec.Mode.Kind {
	case "", ModeReplicated, ModeGlobal, ModeReplicatedJob, ModeGlobalJob:
	default:
		return invalidf("service %q: unknown mode %q", spec.Name, spec.Mode.Kind)
	}
	m := spec.Mode
	if (m.Kind == ModeGlobal || m.Kind == ModeGlobalJob || m.Kind == ModeReplicatedJob) && m.Replicas != 0 {
		return invalidf("service %q: replicas cannot be set on a %s service", spec.Name, m.Kind)
	}
	if m.Kind != ModeReplicatedJob && (m.MaxConcurrent != 0 || m.TotalCompletions != 0) {
		return invalidf("service %q: max concurrent and total completions are for replicated jobs only", spec.Name)
	}
	if m.IsJob() {
		if spec.RestartPolicy.Condition == RestartAny {
			return invalidf("service %q: restart condition any is not allowed for jobs", spec.Name)
		}
		if spec.UpdateConfig != nil || spec.RollbackConfig != nil {
			return invalidf("service %q: jobs take no update or rollback config", spec.Name)
		}
	}
	if err := validateUpdateConfig(spec.Name, "update", spec.UpdateConfig, true); err != nil {
		return err
	}
	if err := validateUpdateConfig(spec.Name, "rollback", spec.RollbackConfig, false); err != nil {
		return err
	}
	if spec.RestartPolicy.Window < 0 {
		return invalidf("service %q: negative restart window", spec.Name)
	}
	if _, err := parseConstraints(spec.Placement.Constraints); err != nil {
		return err
	}
	if err := validatePreferences(spec.Placement.Preferences); err != nil {
		return err
	}
	if err := validateFileRefs(spec); err != nil {
		return err
	}
	for _, e := range spec.Env {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			return invalidf("service %q: env %q has no name", spec.Name, e)
		}
	}
	for k := range spec.Labels {
		if k == "" {
			return invalidf("service %q: empty label key", spec.Name)
		}
	}
	switch spec.RestartPolicy.Condition {
	case "", RestartNone, RestartOnFailure, RestartAny:
	default:
		return invalidf("service %q: restart condition %q (want none, on-failure or any)", spec.Name, spec.RestartPolicy.Condition)
	}
	if d := spec.RestartPolicy.Delay; d != nil && *d < 0 {
		return invalidf("service %q: negative restart delay", spec.Name)
	}
	if d := spec.StopGracePeriod; d != nil && *d < 0 {
		return invalidf("service %q: negative stop grace period", spec.Name)
	}
	r := spec.Resources
	for _, v := range []struct {
		name string
		v    int64
	}{{"limits.cpus", r.Limits.NanoCPUs}, {"limits.memory", r.Limits.MemoryBytes},
		{"reservations.cpus", r.Reservations.NanoCPUs}, {"reservations.memory", r.Reservations.MemoryBytes},
		{"pids limit", spec.PidsLimit}} {
		if v.v < 0 {
			return invalidf("service %q: negative %s", spec.Name, v.name)
		}
	}
	for i, m := range spec.Mounts {
		switch m.Type {
		case MountBind, MountVolume:
			if m.Source == "" && m.Type == MountBind {
				return invalidf("service %q: mount %d: bind mount without a source", spec.Name, i)
			}
		case MountTmpfs:
			if m.Source != "" {
				return invalidf("service %q: mount %d: tmpfs mounts take no source", spec.Name, i)
			}
		default:
			return invalidf("service %q: mount %d: unknown type %q (want bind, volume or tmpfs)", spec.Name, i, m.Type)
		}
		if !path.IsAbs(m.Target) {
			return invalidf("service %q: mount %d: target %q is not an absolute path", spec.Name, i, m.Target)
		}
	}
	for _, u := range spec.Ulimits {
		name := strings.TrimPrefix(strings.ToLower(u.Name), "rlimit_")
		if !knownUlimits[name] {
			return invalidf("service %q: unknown ulimit %q", spec.Name, u.Name)
		}
		// -1 means unlimited, as in Docker (--ulimit memlock=-1:-1).
		if u.Soft < -1 || u.Hard < -1 || (u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard)) {
			return invalidf("service %q: ulimit %s: soft %d must be between 0 and hard %d (-1: unlimited)", spec.Name, u.Name, u.Soft, u.Hard)
		}
	}
	for _, p := range spec.Ports {
		switch p.Protocol {
		case "", "tcp", "udp", "sctp":
		default:
			return invalidf("service %q: port protocol %q", spec.Name, p.Protocol)
		}
		if p.TargetPort == 0 || p.TargetPort > 65535 || p.PublishedPort > 65535 {
			return invalidf("service %q: port %d:%d out of range", spec.Name, p.PublishedPort, p.TargetPort)
		}
		switch p.PublishMode {
		case "", PublishHost, PublishIngress:
		default:
			return invalidf("service %q: publish mode %q", spec.Name, p.PublishMode)
		}
	}
	if h := spec.Healthcheck; h != nil && len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE", "CMD", "CMD-SHELL":
		default:
			return invalidf("service %q: healthcheck test must start with CMD, CMD-SHELL or NONE", spec.Name)
		}
		if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.Retries < 0 {
			return invalidf("service %q: negative healthcheck setting", spec.Name)
		}
	}
	return nil
}

func validateUpdateConfig(name, which string, u *UpdateConfig, rollbackOK bool) error {
	if u == nil {
		return nil
	}
	switch u.FailureAction {
	case "", UpdateActionPause, UpdateActionContinue:
	case UpdateActionRollback:
		if !rollbackOK {
			return invalidf("service %q: %s failure action cannot be rollback", name, which)
		}
	default:
		return invalidf("service %q: %s failure action %q (want pause, continue or rollback)", name, which, u.FailureAction)
	}
	switch u.Order {
	case "", UpdateStopFirst, UpdateStartFirst:
	default:
		return invalidf("service %q: %s order %q (want stop-first or start-first)", name, which, u.Order)
	}
	if u.Delay < 0 || (u.Monitor != nil && *u.Monitor < 0) {
		return invalidf("service %q: negative %s delay or monitor", name, which)
	}
	if u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1 {
		return invalidf("service %q: %s max failure ratio %v is not between 0 and 1", name, which, u.MaxFailureRatio)
	}
	return nil
}

// knownUlimits are the names Docker and Podman accept.
var knownUlimits = map[string]bool{
	"core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true,
	"msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true,
	"rttime": true, "sigpending": true, "stack": true, "as": true,
}
