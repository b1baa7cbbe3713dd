package swarm

import (
	"time"
)

// TaskState is a task's state, spelled as Swarm spells it. States only move
// forward, in the order of the constants below.
type TaskState string

// Swarm's task states, in order.
const (
	TaskNew       TaskState = "new"
	TaskPending   TaskState = "pending"
	TaskAssigned  TaskState = "assigned"
	TaskAccepted  TaskState = "accepted"
	TaskPreparing TaskState = "preparing"
	TaskReady     TaskState = "ready"
	TaskStarting  TaskState = "starting"
	TaskRunning   TaskState = "running"
	TaskComplete  TaskState = "complete"
	TaskShutdown  TaskState = "shutdown"
	TaskFailed    TaskState = "failed"
	TaskRejected  TaskState = "rejected"
	TaskRemove    TaskState = "remove"
	TaskOrphaned  TaskState = "orphaned"
)

// taskStateRank is SwarmKit's numbering (states 64 apart), so comparisons
// read the same as in Swarm.
var taskStateRank = map[TaskState]int{
	TaskNew: 0, TaskPending: 64, TaskAssigned: 192, TaskAccepted: 256,
	TaskPreparing: 320, TaskReady: 384, TaskStarting: 448, TaskRunning: 512,
	TaskComplete: 576, TaskShutdown: 640, TaskFailed: 704, TaskRejected: 768,
	TaskRemove: 800, TaskOrphaned: 832,
}

// Rank returns the state's position in Swarm's order (-1 for an unknown state).
func (s TaskState) Rank() int {
	r, ok := taskStateRank[s]
	if !ok {
		return -1
	}
	return r
}

// Before reports whether s comes strictly before o in Swarm's order.
func (s TaskState) Before(o TaskState) bool { return s.Rank() < o.Rank() }

// Terminal reports whether a task in this state has ended (complete or later).
func (s TaskState) Terminal() bool { return s.Rank() >= TaskComplete.Rank() }

// Valid reports whether s is one of Swarm's task states.
func (s TaskState) Valid() bool { return s.Rank() >= 0 }

// ModeKind names a service mode.
type ModeKind string

// Service modes.
const (
	ModeReplicated    ModeKind = "replicated"
	ModeGlobal        ModeKind = "global"
	ModeReplicatedJob ModeKind = "replicated-job"
	ModeGlobalJob     ModeKind = "global-job"
)

// ServiceMode says how many tasks a service runs. The zero value is
// Replicated(1), Swarm's default.
type ServiceMode struct {
	// Kind is the mode; "" means replicated.
	Kind ModeKind
	// Replicas is the number of replicas of a replicated service. With Kind
	// "" a zero Replicas means 1; with Kind ModeReplicated it means 0.
	Replicas uint64
}

// Replicated returns the mode of a replicated service with n replicas.
func Replicated(n uint64) ServiceMode { return ServiceMode{Kind: ModeReplicated, Replicas: n} }

// Global returns the mode of a global service: one task on every eligible node.
func Global() ServiceMode { return ServiceMode{Kind: ModeGlobal} }

// IsGlobal reports whether the mode runs one task per node.
func (m ServiceMode) IsGlobal() bool { return m.Kind == ModeGlobal || m.Kind == ModeGlobalJob }

// normalized resolves the zero value to Replicated(1).
func (m ServiceMode) normalized() ServiceMode {
	if m.Kind == "" {
		if m.Replicas == 0 {
			m.Replicas = 1
		}
		m.Kind = ModeReplicated
	}
	return m
}

// Resources is an amount of CPU and memory.
type Resources struct {
	// NanoCPUs is CPU in units of 1e-9 CPUs (1e9 = one CPU).
	NanoCPUs int64
	// MemoryBytes is memory in bytes.
	MemoryBytes int64
}

// ResourceRequirements are a task's limits and reservations.
type ResourceRequirements struct {
	// Limits cap what the container may use (0 = unlimited).
	Limits Resources
	// Reservations are set aside on the node the task is placed on; a task
	// whose reservations fit no node stays pending.
	Reservations Resources
}

// Placement says where a service's tasks may run.
type Placement struct {
	// Constraints are Swarm constraint expressions ("node.role==manager",
	// "node.labels.zone!=east"), all of which must hold.
	Constraints []string
	// MaxReplicas caps the tasks of the service on one node (0 = no cap).
	MaxReplicas uint64
}

// RestartCondition says when a task that ended is replaced.
type RestartCondition string

// Restart conditions.
const (
	RestartNone      RestartCondition = "none"
	RestartOnFailure RestartCondition = "on-failure"
	RestartAny       RestartCondition = "any"
)

// RestartPolicy says whether and when a task that ended is replaced by a
// new task in the same slot.
type RestartPolicy struct {
	// Condition is none, on-failure or any; "" means any (Swarm's default).
	Condition RestartCondition
	// Delay is the wait between a task's end and its replacement's start;
	// nil means the node's Config.RestartDelay (5 s in DefaultConfig).
	Delay *time.Duration
}

// MountType is the kind of a mount.
type MountType string

// Mount types.
const (
	MountBind   MountType = "bind"
	MountVolume MountType = "volume"
	MountTmpfs  MountType = "tmpfs"
)

// Mount is a filesystem mounted into a task's container.
type Mount struct {
	Type MountType
	// Source is the host path (bind) or volume name (volume); empty for tmpfs.
	Source string
	// Target is the path inside the container.
	Target   string
	ReadOnly bool
	// TmpfsSizeBytes caps a tmpfs mount (0 = runtime default).
	TmpfsSizeBytes int64
}

// Healthcheck is a container healthcheck. A task stays starting until it is
// healthy, and fails when it turns unhealthy.
type Healthcheck struct {
	// Test is the check, Docker style: ["CMD", "prog", "arg"] or ["CMD-SHELL", "cmd"].
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Ulimit is a resource limit of the container's processes.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// PublishMode says where a published port is reachable.
type PublishMode string

// Publish modes.
const (
	PublishHost    PublishMode = "host"
	PublishIngress PublishMode = "ingress"
)

// PortConfig publishes a container port.
type PortConfig struct {
	// Protocol is "tcp" (default) or "udp".
	Protocol      string
	TargetPort    uint32
	PublishedPort uint32
	PublishMode   PublishMode
}

// ServiceSpec is the desired state of a service.
type ServiceSpec struct {
	// Name is the service's unique name (required; [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63 characters).
	Name string
	// Labels are the service's labels.
	Labels map[string]string
	// Image is the container image (required).
	Image string
	// Command replaces the image's entrypoint; Args its command.
	Command, Args []string
	// Env is the environment, "KEY=value" each.
	Env []string
	// Dir is the working directory; User the user (name or uid[:gid]); Hostname the container's hostname.
	Dir, User, Hostname string
	// ContainerLabels are labels put on every container of the service.
	ContainerLabels map[string]string
	// Mode is replicated (the zero value: one replica) or global.
	Mode ServiceMode
	// Placement constrains where tasks run.
	Placement Placement
	// Resources are the tasks' limits and reservations.
	Resources ResourceRequirements
	// RestartPolicy says when ended tasks are replaced.
	RestartPolicy RestartPolicy
	// StopSignal is the signal that stops the container ("" = image default, SIGTERM).
	StopSignal string
	// StopGracePeriod is the wait between the stop signal and SIGKILL; nil = 10 s.
	StopGracePeriod *time.Duration
	// Mounts are mounted into the container.
	Mounts []Mount
	// Healthcheck overrides the image's healthcheck (nil = none).
	Healthcheck *Healthcheck
	// Init runs an init process as PID 1 in the container.
	Init bool
	// ReadOnly mounts the container's root filesystem read-only.
	ReadOnly bool
	// CapAdd and CapDrop change the container's capabilities ("NET_ADMIN", "ALL").
	CapAdd, CapDrop []string
	// Ulimits set the processes' resource limits.
	Ulimits []Ulimit
	// PidsLimit caps the number of processes (0 = unlimited).
	PidsLimit int64
	// Ports are published ports (host mode publishes on the task's node only).
	Ports []PortConfig
	// ForceUpdate, when changed, redeploys every task without another spec change.
	ForceUpdate uint64
}

// Service is a service as stored in the swarm.
type Service struct {
	// ID is the service's ID (25 lowercase base-36 characters, like Swarm's).
	ID string
	// Version increases with every change; pass it back to update.
	Version uint64
	// Spec is the current spec.
	Spec ServiceSpec
	// PreviousSpec is the spec before the last update, if any.
	PreviousSpec *ServiceSpec
	// SpecVersion increases when a change needs the tasks replaced (not on
	// scaling or label changes); tasks record the SpecVersion they run.
	SpecVersion uint64
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TaskStatus is a task's observed state.
type TaskStatus struct {
	State TaskState
	// Message says what is going on ("started", "no suitable node (...)").
	Message string
	// Err is the error that failed or rejected the task, if any.
	Err string
	// ContainerID is the runtime's ID of the task's container.
	ContainerID string
	// ExitCode is the container's exit code once it has ended.
	ExitCode int
	// Timestamp is when the state was reached.
	Timestamp time.Time
}

// Task is one instance of a service placed on (or waiting for) a node.
type Task struct {
	ID        string
	ServiceID string
	// ServiceName is the service's name when the task was created.
	ServiceName string
	// NodeID is the node the task is assigned to ("" while pending).
	NodeID string
	// Slot is the replica slot, 1..N (0 for global services).
	Slot uint64
	// Version increases with every change to the task.
	Version uint64
	// SpecVersion is the service SpecVersion the task runs.
	SpecVersion uint64
	// Spec is the spec the task runs.
	Spec ServiceSpec `json:",omitzero"`
	// DesiredState is what the managers want (running, shutdown...).
	DesiredState TaskState
	// Status is what the task's node reported.
	Status    TaskStatus
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Name returns the task's name, Swarm style: <service>.<slot> or <service>.<node id>.
func (t Task) Name() string {
	if t.Slot == 0 {
		return t.ServiceName + "." + t.NodeID
	}
	return t.ServiceName + "." + uitoa(t.Slot)
}

// TaskFilter selects tasks; empty fields match everything.
type TaskFilter struct {
	// Service is a service ID, name or unique ID prefix.
	Service string
	// Node is a node ID, hostname or unique ID prefix.
	Node string
	// DesiredState keeps tasks with this desired state.
	DesiredState TaskState
}
