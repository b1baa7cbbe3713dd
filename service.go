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
	// MaxConcurrent caps the tasks of a replicated job that run at once
	// (0 = TotalCompletions).
	MaxConcurrent uint64
	// TotalCompletions is how many tasks of a replicated job must complete
	// (0 = MaxConcurrent, or 1 if both are 0).
	TotalCompletions uint64
}

// ReplicatedJob returns the mode of a job that runs until total tasks have
// completed, at most maxConcurrent at a time.
func ReplicatedJob(maxConcurrent, total uint64) ServiceMode {
	return ServiceMode{Kind: ModeReplicatedJob, MaxConcurrent: maxConcurrent, TotalCompletions: total}
}

// GlobalJob returns the mode of a job that runs one task to completion on
// every eligible node.
func GlobalJob() ServiceMode { return ServiceMode{Kind: ModeGlobalJob} }

// IsJob reports whether the mode runs tasks to completion.
func (m ServiceMode) IsJob() bool { return m.Kind == ModeReplicatedJob || m.Kind == ModeGlobalJob }

// Replicated returns the mode of a replicated service with n replicas.
func Replicated(n uint64) ServiceMode { return ServiceMode{Kind: ModeReplicated, Replicas: n} }

// Global returns the mode of a global service: one task on every eligible node.
func Global() ServiceMode { return ServiceMode{Kind: ModeGlobal} }

// IsGlobal reports whether the mode runs one task per node.
func (m ServiceMode) IsGlobal() bool { return m.Kind == ModeGlobal || m.Kind == ModeGlobalJob }

// normalized resolves the zero value to Replicated(1) and fills a
// replicated job's defaults.
func (m ServiceMode) normalized() ServiceMode {
	if m.Kind == "" {
		if m.Replicas == 0 {
			m.Replicas = 1
		}
		m.Kind = ModeReplicated
	}
	if m.Kind == ModeReplicatedJob {
		if m.TotalCompletions == 0 {
			m.TotalCompletions = max(m.MaxConcurrent, 1)
		}
		if m.MaxConcurrent == 0 {
			m.MaxConcurrent = m.TotalCompletions
		}
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
	// Preferences spread the tasks evenly over the values of node labels,
	// nested in order (ignored for global services).
	Preferences []PlacementPreference
}

// PlacementPreference is a best-effort placement rule, Swarm's
// "spread=<label>": tasks are spread evenly over the label's values, nodes
// without the label forming one more group.
type PlacementPreference struct {
	// Spread is the label to spread over: "node.labels.X" or "engine.labels.X".
	Spread string
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
	// Condition is none, on-failure or any; "" means any (Swarm's default),
	// on-failure for jobs.
	Condition RestartCondition
	// Delay is the wait between a task's end and its replacement's start;
	// nil means the node's Config.RestartDelay (5 s in DefaultConfig).
	Delay *time.Duration
	// MaxAttempts caps the restarts of a slot (0 = unlimited), counted
	// within Window.
	MaxAttempts uint64
	// Window is the period MaxAttempts counts over (0 = the slot's whole life).
	Window time.Duration
}

// UpdateFailureAction says what a rolling update does when too many new
// tasks fail.
type UpdateFailureAction string

// Update failure actions.
const (
	UpdateActionPause    UpdateFailureAction = "pause"
	UpdateActionContinue UpdateFailureAction = "continue"
	UpdateActionRollback UpdateFailureAction = "rollback"
)

// UpdateOrder says whether a replaced task stops before its replacement
// starts or after.
type UpdateOrder string

// Update orders.
const (
	UpdateStopFirst  UpdateOrder = "stop-first"
	UpdateStartFirst UpdateOrder = "start-first"
)

// UpdateConfig is a rolling update (or rollback) policy. A nil config, and
// zero fields, take Swarm's defaults: parallelism 1, delay 0, failure
// action pause, monitor 5 s, max failure ratio 0, stop-first.
type UpdateConfig struct {
	// Parallelism is how many tasks are replaced at once; 0 means all.
	// Swarm's default (1) applies only when the whole config is nil.
	Parallelism uint64
	// Delay is the wait after a task is updated before the next one starts.
	Delay time.Duration
	// FailureAction is pause (""), continue or rollback (rollback is not
	// valid in a RollbackConfig).
	FailureAction UpdateFailureAction
	// Monitor is how long a new task is watched for failure after it starts
	// running; nil means 5 s.
	Monitor *time.Duration
	// MaxFailureRatio is the fraction of tasks that may fail during the
	// update before FailureAction is taken (0: none may).
	MaxFailureRatio float64
	// Order is stop-first ("") or start-first. Start-first stops an old
	// task only once its replacement runs; a replacement that fails first
	// is retried after the restart delay while the old task keeps running.
	Order UpdateOrder
}

// UpdateState is the state of a service's rolling update, as Swarm spells it.
type UpdateState string

// Update states.
const (
	UpdateUpdating          UpdateState = "updating"
	UpdatePaused            UpdateState = "paused"
	UpdateCompleted         UpdateState = "completed"
	UpdateRollbackStarted   UpdateState = "rollback_started"
	UpdateRollbackPaused    UpdateState = "rollback_paused"
	UpdateRollbackCompleted UpdateState = "rollback_completed"
)

// UpdateStatus is the progress of a service's last update or rollback.
// When the orchestrator cannot work on a service (its stored spec breaks
// the limits of limits.go, or reconciling it hit a bug), it leaves the
// service's tasks as they are and says so here: State paused and a
// Message starting with "orchestrator: ".
type UpdateStatus struct {
	State       UpdateState
	StartedAt   time.Time
	CompletedAt time.Time
	Message     string
}

// JobStatus is the progress of a job: every spec change (or ForceUpdate)
// starts a new iteration.
type JobStatus struct {
	// JobIteration counts the job's runs; tasks of older runs are not counted.
	JobIteration uint64
	// LastExecution is when the current iteration started.
	LastExecution time.Time
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
	// UpdateConfig is the rolling update policy (nil: Swarm's defaults).
	UpdateConfig *UpdateConfig
	// RollbackConfig is the rollback policy (nil: Swarm's defaults).
	RollbackConfig *UpdateConfig
	// Rebalance, when true, moves tasks to even out the spread when nodes
	// join or become active (Swarm never does, moby#24103); nil takes the
	// leader's Config.Rebalance. Moves are start-first: the old task stops
	// once the new one runs, so the running count never drops below the
	// replicas; after a failed move the next waits the restart delay, and
	// a node that keeps failing the service's tasks is no target.
	Rebalance *bool
	// Secrets are the secrets the tasks' containers get as read-only files
	// (at /run/secrets/<target> by default). Only the nodes that run a
	// task of the service receive them.
	Secrets []SecretReference `json:",omitempty"`
	// Configs are the configs the tasks' containers get as read-only files
	// (at /<target> by default).
	Configs []ConfigReference `json:",omitempty"`
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
	// UpdateStatus is the progress of the last update or rollback (nil
	// before the first).
	UpdateStatus *UpdateStatus
	// JobStatus is set for jobs.
	JobStatus *JobStatus
	CreatedAt time.Time
	UpdatedAt time.Time
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
	// Timestamp is when the state was reached, by the leader's cluster
	// clock: when it created the task or received the node's report of the
	// state (never the node's own clock).
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
	// SpecVersion is the service SpecVersion the task runs (for jobs, the
	// job iteration).
	SpecVersion uint64
	// Attempt counts the restarts of the task's slot before this task
	// (reset when the spec changes).
	Attempt uint64
	// Spec is the spec the task runs.
	Spec ServiceSpec `json:",omitzero"`
	// DesiredState is what the managers want (running, shutdown...).
	DesiredState TaskState
	// Status is what the task's node reported.
	Status TaskStatus
	// CreatedIndex is the Raft index of the entry that created the task:
	// the tasks of a slot are ordered by it (the highest is the slot's
	// newest), whatever the clocks of the managers that created them.
	CreatedIndex uint64 `json:",omitempty"`
	CreatedAt    time.Time
	UpdatedAt    time.Time
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
