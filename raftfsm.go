package swarm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Wire and disk format stability. What this file encodes lives on in
// every manager's Raft log (raft-boltdb) and travels between nodes of
// different versions during a rolling upgrade; snapshots ([snapshotFormat])
// and the error codes of [errorCodes] live as long. So:
//
//   - the JSON names of command, taskOp and every type they carry (Go
//     field names where there is no tag) and the cmdType strings are
//     fixed once released: never rename or reuse one;
//   - adding an optional field (omitempty) or a command type is
//     compatible; anything an old entry would decode differently is not:
//     bump commandVersion and keep decoding the old version;
//   - the golden fixtures in testdata/golden (TestGoldenCommands,
//     TestGoldenReplay) pin the encoding, an old log and old snapshots.
//     `go test -run TestGolden -update .` rewrites the fixtures the current
//     code produces; a diff in a fixture that is not a pure addition is a
//     format change, and the old file is then kept (renamed) so that it
//     is still decoded. snapshot-format0.json is never rewritten.

// cmdType names a replicated command.
type cmdType string

const (
	cmdClusterInit   cmdType = "cluster-init"
	cmdNodeUpsert    cmdType = "node-upsert"
	cmdNodeState     cmdType = "node-state"
	cmdNodeUpdate    cmdType = "node-update"
	cmdNodeRemove    cmdType = "node-remove"
	cmdServiceCreate cmdType = "service-create"
	cmdServiceUpdate cmdType = "service-update"
	cmdServiceRemove cmdType = "service-remove"
	cmdServiceStatus cmdType = "service-status"
	cmdTasks         cmdType = "tasks"
)

// commandVersion is the first byte of every log entry; bump it when the
// encoding changes incompatibly (see the rule above).
const commandVersion byte = 1

// command is one replicated change. The leader stamps Time (and generates
// every ID) before proposing it, so Apply is deterministic.
type command struct {
	Type cmdType   `json:"t"`
	Time time.Time `json:"tm"`

	Cluster *clusterRecord `json:"c,omitempty"`
	Node    *NodeInfo      `json:"n,omitempty"`
	Service *Service       `json:"s,omitempty"`
	// ID names the node or service a command is about.
	ID string `json:"id,omitempty"`
	// Version, when non-zero, must equal the object's current version.
	Version uint64 `json:"v,omitempty"`
	// NodeState and Message for cmdNodeState.
	NodeState NodeState `json:"ns,omitempty"`
	Message   string    `json:"m,omitempty"`
	// Ops for cmdTasks.
	Ops []taskOp `json:"o,omitempty"`
	// Secret, Config and Labels for the secret and config commands
	// (secrets.go); Keys for cmdKeys (keys.go).
	Secret *secretRecord     `json:"sec,omitempty"`
	Config *ConfigObject     `json:"cfg,omitempty"`
	Labels map[string]string `json:"l,omitempty"`
	Keys   *keysRecord       `json:"k,omitempty"`
	// Sec for the security commands (security.go).
	Sec *securityCmd `json:"sc,omitempty"`
	// ReqID is a client write's request ID (dedupe.go): a command whose
	// ID was applied before returns the first outcome and changes nothing.
	ReqID string `json:"rq,omitempty"`
}

// taskOpKind names a fine-grained task change. Changes are fine-grained so
// that concurrent writers (the orchestrator, many agents) never overwrite
// each other's fields.
type taskOpKind uint8

const (
	opCreate  taskOpKind = iota + 1 // create Task
	opDesired                       // raise the desired state to State
	opAssign                        // assign a new/pending task to NodeID
	opPending                       // leave a task pending with Message
	opStatus                        // an agent's report: Status, from NodeID
	opDelete                        // delete the task
)

// taskOp is one change to one task.
type taskOp struct {
	Op taskOpKind `json:"op"`
	// FromService (opCreate) means the task runs its service's current
	// spec: Apply copies it from the service, which keeps the spec out of
	// the log entry, and skips the create if the service has changed since.
	FromService bool        `json:"fs,omitempty"`
	ID          string      `json:"id,omitempty"`
	Task        *Task       `json:"t,omitempty"`
	NodeID      string      `json:"n,omitempty"`
	State       TaskState   `json:"s,omitempty"`
	Status      *TaskStatus `json:"st,omitempty"`
}

func encodeCommand(c *command) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte{commandVersion}, b...), nil
}

// decodeCommand parses a log entry. It never panics, whatever the input.
func decodeCommand(data []byte) (*command, error) {
	if len(data) == 0 {
		return nil, errors.New("empty command")
	}
	if data[0] != commandVersion {
		return nil, fmt.Errorf("unknown command encoding %d", data[0])
	}
	var c command
	if err := json.Unmarshal(data[1:], &c); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	switch c.Type {
	case cmdClusterInit, cmdNodeUpsert, cmdNodeState, cmdNodeUpdate, cmdNodeRemove,
		cmdServiceCreate, cmdServiceUpdate, cmdServiceRemove, cmdServiceStatus, cmdTasks:
	case cmdNodeSpec:
	case cmdSecretCreate, cmdSecretUpdate, cmdSecretRemove, cmdConfigCreate, cmdConfigUpdate, cmdConfigRemove, cmdKeys:
	case cmdRotateToken, cmdGossipKeys, cmdCAKey:
	default:
		return nil, fmt.Errorf("unknown command type %q", c.Type)
	}
	return &c, nil
}

// fsm is the Raft state machine. Reads take mu for reading; Apply and
// Restore take it for writing. changed is closed (and replaced) after every
// applied entry so long polls can wait for news.
type fsm struct {
	mu      sync.RWMutex
	st      *state
	changed chan struct{}
	// onApply, when set, is called (without the lock) after each entry.
	onApply func(c *command)
	// ev derives the events of applied entries for Events (events.go).
	ev eventLog
	// now reads the node's clock; appliedAt is its reading when the last
	// entry was applied (for the next leader's cluster clock, clock.go).
	now       func() time.Time
	appliedAt time.Time
	// dedupe remembers the outcomes of client writes by request ID
	// (dedupe.go); it is part of the snapshot.
	dedupe *dedupeTable
}

func newFSM() *fsm { return &fsm{st: newState(), changed: make(chan struct{})} }

// read runs f with the state under the read lock. f must not keep the
// state past its return nor mutate anything.
func (f *fsm) read(fn func(s *state)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// waitCh returns a channel closed at the next applied entry, and the
// current applied index.
func (f *fsm) waitCh() (<-chan struct{}, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed, f.st.index
}

func (f *fsm) appliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.index
}

// Apply implements raft.FSM. It returns nil or an error explaining why the
// command changed nothing.
func (f *fsm) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := decodeCommand(l.Data)
	f.mu.Lock()
	f.st.index = l.Index
	var dup *applyOutcome
	if err == nil {
		c.Time = f.st.monotonic(c.Time)
		// A bug must not stop the node, nor every replica that replays
		// the entry: it is refused like an invalid command.
		if perr := catchPanic(nil, "apply "+string(c.Type), func() { dup, err = f.applyDeduped(c, l.Index) }); perr != nil {
			err = perr
		}
	}
	if err == nil {
		f.noteStamp(c.Time)
	}
	if err == nil && dup == nil {
		f.recordEvents(c, l.Index)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	cb := f.onApply
	f.mu.Unlock()
	if dup != nil {
		return dup
	}
	if err == nil && cb != nil {
		cb(c)
	}
	return err
}

// Snapshot implements raft.FSM: a copy of the maps (objects are immutable).
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := f.st.export()
	if f.dedupe != nil {
		d.Dedupe = f.dedupe.export()
	}
	return &fsmSnapshot{data: d}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	d, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	var st *state
	if perr := catchPanic(nil, "restore snapshot", func() { st = stateFrom(d) }); perr != nil {
		return perr
	}
	f.mu.Lock()
	f.st = st
	f.appliedAt = time.Time{}
	f.dedupe = dedupeFrom(d.Dedupe)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct{ data *snapshotData }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// apply changes the state; it is deterministic and leaves the state
// untouched when it returns an error.
func (s *state) apply(c *command, index uint64) error {
	if err := checkCommand(c); err != nil {
		return err
	}
	switch c.Type {
	case cmdClusterInit:
		if c.Cluster == nil || c.Cluster.ID == "" {
			return invalidf("cluster-init without a cluster")
		}
		if s.cluster != nil && s.cluster.ID != c.Cluster.ID {
			return fmt.Errorf("%w: cluster already initialised", ErrAlreadyInSwarm)
		}
		cl := *c.Cluster
		cl.SecVersion = index // the first gossip keyring's version
		s.cluster = &cl
		return nil

	case cmdNodeUpsert:
		if c.Node == nil || c.Node.ID == "" {
			return invalidf("node-upsert without a node")
		}
		n := *c.Node
		if old, ok := s.nodes[n.ID]; ok {
			// A rejoin keeps what the managers decided about the node.
			n.CreatedAt = old.CreatedAt
			n.Labels = old.Labels
			n.Availability = old.Availability
			if c.Version == 0 {
				n.Role = old.Role
			}
		} else {
			n.CreatedAt = c.Time
		}
		if n.Availability == "" {
			n.Availability = AvailabilityActive
		}
		if n.State == "" {
			n.State = NodeReady
		}
		n.Leader = false
		n.UpdatedAt = c.Time
		n.Version = index
		s.nodes[n.ID] = &n
		return nil

	case cmdNodeState:
		old, ok := s.nodes[c.ID]
		if !ok {
			return notFoundf("node", c.ID)
		}
		n := *old
		n.State, n.Message = c.NodeState, c.Message
		n.UpdatedAt, n.Version = c.Time, index
		s.nodes[n.ID] = &n
		return nil

	case cmdNodeUpdate:
		old, ok := s.nodes[c.ID]
		if !ok {
			return notFoundf("node", c.ID)
		}
		if c.Version != 0 && c.Version != old.Version {
			return fmt.Errorf("%w: node %s is at version %d, not %d", ErrVersionConflict, c.ID, old.Version, c.Version)
		}
		if c.Node == nil {
			return invalidf("node-update without a node")
		}
		n := *old
		n.Availability, n.Labels = c.Node.Availability, c.Node.Labels
		if c.Node.Role != "" {
			n.Role = c.Node.Role
		}
		n.UpdatedAt, n.Version = c.Time, index
		s.nodes[n.ID] = &n
		return nil

	case cmdNodeRemove:
		if _, ok := s.nodes[c.ID]; !ok {
			return notFoundf("node", c.ID)
		}
		delete(s.nodes, c.ID)
		// Its certificate is refused from now on (tls.go).
		s.revokeNode(c.ID, c.Time, index)
		return nil

	case cmdServiceCreate:
		v := c.Service
		if v == nil || v.ID == "" || v.Spec.Name == "" {
			return invalidf("service-create without a service")
		}
		if _, ok := s.services[v.ID]; ok {
			return fmt.Errorf("%w: service ID %s exists", ErrNameConflict, v.ID)
		}
		if _, ok := s.serviceByName[v.Spec.Name]; ok {
			return fmt.Errorf("%w: service %q already exists", ErrNameConflict, v.Spec.Name)
		}
		nv := *v
		if err := s.resolveFileRefs(&nv.Spec); err != nil {
			return err
		}
		nv.Version, nv.CreatedAt, nv.UpdatedAt = index, c.Time, c.Time
		if nv.SpecVersion == 0 {
			nv.SpecVersion = 1
		}
		if nv.JobStatus != nil {
			js := *nv.JobStatus
			js.LastExecution = c.Time
			nv.JobStatus = &js
		}
		s.services[nv.ID] = &nv
		s.serviceByName[nv.Spec.Name] = nv.ID
		return nil

	case cmdServiceUpdate:
		v := c.Service
		if v == nil {
			return invalidf("service-update without a service")
		}
		old, ok := s.services[v.ID]
		if !ok {
			return notFoundf("service", v.ID)
		}
		if c.Version != 0 && c.Version != old.Version {
			return fmt.Errorf("%w: service %s is at version %d, not %d", ErrVersionConflict, old.Spec.Name, old.Version, c.Version)
		}
		if v.Spec.Name != old.Spec.Name {
			return invalidf("service name cannot be changed (%q -> %q)", old.Spec.Name, v.Spec.Name)
		}
		nv := *v
		if err := s.resolveFileRefs(&nv.Spec); err != nil {
			return err
		}
		nv.CreatedAt = old.CreatedAt
		nv.Version, nv.UpdatedAt = index, c.Time
		if nv.UpdateStatus != nil && nv.UpdateStatus != old.UpdateStatus && nv.UpdateStatus.StartedAt.IsZero() {
			us := *nv.UpdateStatus
			us.StartedAt = c.Time
			nv.UpdateStatus = &us
		}
		if nv.JobStatus != nil && nv.JobStatus != old.JobStatus && nv.JobStatus.LastExecution.IsZero() {
			js := *nv.JobStatus
			js.LastExecution = c.Time
			nv.JobStatus = &js
		}
		s.services[nv.ID] = &nv
		return nil

	case cmdServiceStatus:
		// The orchestrator's progress report on an update: only the
		// UpdateStatus changes, and only if the spec is still the one the
		// orchestrator looked at.
		old, ok := s.services[c.ID]
		if !ok {
			return notFoundf("service", c.ID)
		}
		if c.Service == nil || c.Service.UpdateStatus == nil {
			return invalidf("service-status without a status")
		}
		if c.Service.SpecVersion != old.SpecVersion {
			return fmt.Errorf("%w: service %s changed meanwhile", ErrVersionConflict, old.Spec.Name)
		}
		nv := *old
		us := *c.Service.UpdateStatus
		if us.State == UpdateCompleted || us.State == UpdateRollbackCompleted {
			us.CompletedAt = c.Time
		}
		nv.UpdateStatus = &us
		nv.Version, nv.UpdatedAt = index, c.Time
		s.services[nv.ID] = &nv
		return nil

	case cmdServiceRemove:
		v, ok := s.services[c.ID]
		if !ok {
			return notFoundf("service", c.ID)
		}
		delete(s.services, v.ID)
		delete(s.serviceByName, v.Spec.Name)
		// Its tasks stay until their nodes have stopped them; the
		// orchestrator sets them to shutdown and reaps them.
		return nil

	case cmdTasks:
		for i := range c.Ops {
			s.applyTaskOp(&c.Ops[i], c.Time, index)
		}
		return nil

	case cmdNodeSpec:
		return s.applyNodeSpec(c, index)

	case cmdSecretCreate, cmdSecretUpdate, cmdSecretRemove, cmdConfigCreate, cmdConfigUpdate, cmdConfigRemove:
		return s.applyObject(c, index)

	case cmdKeys:
		return s.applyKeys(c, index)

	case cmdRotateToken, cmdGossipKeys, cmdCAKey:
		return s.applySecurity(c, index)
	}
	return fmt.Errorf("unknown command type %q", c.Type)
}

// applyTaskOp applies one task change. Ops that no longer make sense (the
// task is gone, the state would move backwards, the reporter is not the
// task's node) are skipped: they raced with another change.
func (s *state) applyTaskOp(op *taskOp, now time.Time, index uint64) {
	if op.Op == opCreate {
		if op.Task == nil || op.Task.ID == "" {
			return
		}
		if _, ok := s.tasks[op.Task.ID]; ok {
			return
		}
		t := *op.Task
		if op.FromService {
			svc, ok := s.services[t.ServiceID]
			if !ok || svc.SpecVersion != t.SpecVersion {
				return
			}
			t.Spec = svc.Spec
		}
		t.Version, t.CreatedIndex, t.CreatedAt, t.UpdatedAt = index, index, now, now
		t.Status.Timestamp = now // the leader's time, not the creator's (clock.go)
		s.putTask(&t, true)
		return
	}
	old, ok := s.tasks[op.ID]
	if !ok {
		return
	}
	t := *old
	switch op.Op {
	case opDesired:
		if !op.State.Valid() || op.State.Before(t.DesiredState) || op.State == t.DesiredState {
			return
		}
		t.DesiredState = op.State
	case opAssign:
		if t.NodeID != "" || t.Status.State.Rank() > TaskPending.Rank() || op.NodeID == "" {
			return
		}
		t.NodeID = op.NodeID
		t.Status = TaskStatus{State: TaskAssigned, Message: "scheduler assigned task to node", Timestamp: now}
	case opPending:
		if t.Status.State.Rank() > TaskPending.Rank() || t.Status.Message == op.Status.messageOr() {
			return
		}
		t.Status = TaskStatus{State: TaskPending, Message: op.Status.messageOr(), Timestamp: now}
	case opStatus:
		if op.Status == nil || t.NodeID == "" || op.NodeID != t.NodeID || !op.Status.State.Valid() {
			return
		}
		if op.Status.State.Before(t.Status.State) {
			return
		}
		if op.Status.State == t.Status.State && op.Status.Message == t.Status.Message &&
			op.Status.Err == t.Status.Err && op.Status.ContainerID == t.Status.ContainerID {
			return
		}
		// The time a state was reached is when the leader received the
		// report, never the node's own clock (clock.go).
		st := *op.Status
		st.Timestamp = now
		if st.State == t.Status.State {
			st.Timestamp = t.Status.Timestamp
		}
		t.Status = st
	case opDelete:
		s.deleteTask(op.ID)
		return
	default:
		return
	}
	t.Version, t.UpdatedAt = index, now
	// The node's own reports need not travel back to it.
	s.putTask(&t, op.Op != opStatus)
}

func (st *TaskStatus) messageOr() string {
	if st == nil {
		return ""
	}
	return st.Message
}
