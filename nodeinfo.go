package swarm

import "time"

// Role is a node's role in the swarm.
type Role string

// Node roles.
const (
	RoleManager Role = "manager"
	RoleWorker  Role = "worker"
)

// Availability says whether the scheduler may place tasks on a node.
type Availability string

// Node availabilities.
const (
	// AvailabilityActive nodes take new tasks.
	AvailabilityActive Availability = "active"
	// AvailabilityPause nodes keep their tasks but take no new ones.
	AvailabilityPause Availability = "pause"
	// AvailabilityDrain nodes run no tasks: theirs are moved elsewhere.
	AvailabilityDrain Availability = "drain"
)

// NodeState is a node's liveness as the leader sees it.
type NodeState string

// Node states.
const (
	NodeUnknown      NodeState = "unknown"
	NodeDown         NodeState = "down"
	NodeReady        NodeState = "ready"
	NodeDisconnected NodeState = "disconnected"
)

// Platform is a node's OS and architecture (GOOS / GOARCH spelling).
type Platform struct {
	OS, Arch string
}

// NodeInfo is a node as the swarm knows it.
type NodeInfo struct {
	ID       string
	Hostname string
	// Addr is the node's control address (where others Join).
	Addr string
	// GossipAddr is the node's memberlist address.
	GossipAddr   string
	Role         Role
	Availability Availability
	State        NodeState
	// Message explains the state ("heartbeat failure", "node left").
	Message string
	// Leader is true for the current Raft leader.
	Leader bool
	// ManagerStatus describes the node's place among the managers: set
	// for the members of the Raft configuration, nil for workers (and for
	// a promoted node until it has joined the configuration).
	ManagerStatus *ManagerStatus
	// Labels are the node's labels (set through the managers; node.labels.X).
	Labels map[string]string
	// EngineLabels are the labels the node was started with (Config.Labels; engine.labels.X).
	EngineLabels map[string]string
	// Resources is the capacity the node's runtime reports.
	Resources Resources
	// NoRuntime is true for a node started without a Runtime
	// ([Config].Runtime nil): the scheduler never gives it tasks.
	NoRuntime bool `json:",omitempty"`
	Platform  Platform
	// Version increases with every change.
	Version   uint64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Reachability is whether the managers can reach a manager, as Swarm
// reports it.
type Reachability string

// Manager reachabilities.
const (
	// ReachabilityUnknown: the manager's state is not known yet (gossip
	// lost it but the leader has not declared it down).
	ReachabilityUnknown Reachability = "unknown"
	// ReachabilityUnreachable: the manager does not answer.
	ReachabilityUnreachable Reachability = "unreachable"
	// ReachabilityReachable: the manager answers.
	ReachabilityReachable Reachability = "reachable"
)

// ManagerStatus is a manager's Raft membership as the answering manager
// sees it.
type ManagerStatus struct {
	// Leader is true for the current Raft leader.
	Leader bool
	// Reachability says whether the manager answers (from gossip liveness
	// and the node's state).
	Reachability Reachability
	// Addr is the manager's address in the Raft configuration.
	Addr string
}
