package swarm

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config configures a Node. Start from DefaultConfig (a LAN) or
// DefaultLocalConfig (nodes in one process or on one host) and set the
// fields you need; zero timing fields take DefaultConfig's values.
type Config struct {
	// Hostname is the node's hostname as shown in Nodes and matched by
	// node.hostname constraints. Default: os.Hostname().
	Hostname string
	// DataDir holds the node's identity, Raft log, stable store and
	// snapshots. "" keeps all state in memory: the node cannot be restarted.
	DataDir string
	// ListenAddr is the control address (host:port) for RPC and Raft.
	// "127.0.0.1:0" picks a free port. Default "0.0.0.0:2377" (Swarm's port).
	ListenAddr string
	// AdvertiseAddr is the control address other nodes use; default the
	// bound ListenAddr (with 0.0.0.0 replaced by the first non-loopback IP).
	AdvertiseAddr string
	// GossipAddr is the memberlist bind address (host:port, UDP and TCP).
	// Default: the ListenAddr's host with port 0 (a free port).
	GossipAddr string
	// JoinToken is the token Join presents; it decides whether the node
	// joins as a worker or a manager.
	JoinToken string
	// Labels are the node's engine labels (engine.labels.X constraints).
	Labels map[string]string
	// Runtime runs the node's tasks. nil means the node runs no tasks (it
	// reports zero capacity and is never chosen by the scheduler).
	Runtime Runtime
	// Logger receives the node's logs (hclog key/value pairs). nil = silent.
	Logger hclog.Logger
	// Network carries the node's control streams and gossip. nil = the
	// host's TCP and UDP; swarmtest's in-memory network runs many nodes in
	// one process without sockets (see [Network]).
	Network Network

	// HeartbeatTimeout is Raft's follower heartbeat timeout. Default 500 ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is Raft's candidate election timeout. Default 500 ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without reaching
	// a quorum. Default 500 ms (it does not slow failover, which depends on
	// HeartbeatTimeout; a longer lease rides out a loaded host).
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds the wait before Raft heartbeats an idle log. Default 20 ms.
	CommitTimeout time.Duration
	// SnapshotThreshold is the number of log entries between snapshots. Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether to snapshot. Default 30 s.
	SnapshotInterval time.Duration

	// GossipProbeInterval is memberlist's failure probe interval. Default 200 ms.
	GossipProbeInterval time.Duration
	// GossipProbeTimeout is memberlist's probe ack timeout. Default 100 ms.
	GossipProbeTimeout time.Duration
	// GossipInterval is memberlist's gossip interval. Default 50 ms.
	GossipInterval time.Duration
	// GossipSuspicionMult scales how long a suspect member has to refute
	// before it is declared dead. Default 2.
	GossipSuspicionMult int

	// NodeHeartbeatPeriod is how often every node sends the leader its
	// session heartbeat (through any manager, which forwards). Default
	// 500 ms; DefaultLocalConfig 250 ms.
	NodeHeartbeatPeriod time.Duration
	// NodeHeartbeatTimeout is the heartbeat deadline: the leader probes a
	// node whose last heartbeat is older (a ping RPC its process must
	// answer within half of NodeHeartbeatTimeout) and marks it down, its
	// tasks then replaced, if the ping goes unanswered. This catches a
	// node whose kernel still completes handshakes but whose process is
	// stopped or hung. A new leader gives every node this much grace.
	// Default 2 s (a SIGSTOPped node is down within about 3 s);
	// DefaultLocalConfig 1.5 s. Must exceed NodeHeartbeatPeriod.
	NodeHeartbeatTimeout time.Duration

	// RestartDelay is the restart delay of services whose RestartPolicy has
	// none: the wait between a task's end and its replacement. Default 5 s
	// (Swarm's); DefaultLocalConfig uses 100 ms.
	RestartDelay time.Duration
	// TaskHistoryLimit is how many ended tasks are kept per slot (or node,
	// for global services). Default 5 (Swarm's).
	TaskHistoryLimit int
	// Rebalance is the default of ServiceSpec.Rebalance, read on the
	// leader: move tasks to even out the spread when nodes join or become
	// active. Default false (Swarm's behaviour).
	Rebalance bool
	// RPCTimeout bounds one node-to-node request (not long polls). Default 10 s.
	RPCTimeout time.Duration
	// StatusBatchInterval is how long an agent gathers task status changes
	// before sending them to the managers in one batch. Default 10 ms.
	StatusBatchInterval time.Duration

	// AutoLock, read by Init only, turns autolock on for the new swarm
	// (Swarm's `docker swarm init --autolock`): every manager's key file
	// is sealed with the swarm's unlock key (read it with UnlockKey; change
	// it later with SetAutoLock and RotateUnlockKey), so a manager that
	// restarts stays locked until Unlock. Default false.
	AutoLock bool
	// UnlockKey (SWMKEY-1-...) unlocks an autolocked manager as it starts,
	// for unattended restarts: Init or Join then resume it at once. A key
	// that does not open the node's key file fails them with
	// ErrInvalidUnlockKey. "" leaves a restarted autolocked manager locked
	// until Unlock. Keep it out of files on the same disk as DataDir.
	UnlockKey string

	// Clock is the node's wall clock, for tests (skewed clocks); nil means
	// time.Now. Every time the node stamps or decides on goes through it:
	// the leader's cluster clock (the times stored in the swarm state, the
	// orchestrator's restart delays, update monitor and delay, restart
	// windows, rebalance settling) and the agent's status times. Readings
	// should keep time.Now's monotonic part (time.Now().Add(d) does): the
	// leader measures elapsed time as the difference of two readings.
	// Timers and deadlines use the runtime's own clock, and crypto/tls
	// checks certificate validity against the host clock. Default nil.
	Clock func() time.Time

	// CertExpiry, read by Init only, is the lifetime of the swarm's node
	// certificates (Swarm's `docker swarm init --cert-expiry`). Each node
	// renews its certificate at a random point between 50% and 80% of
	// its lifetime, and on every role change. Default 90 days (Swarm's);
	// at least 1 s (values under an hour are for tests). The swarm's root
	// CA is valid for 20 years.
	CertExpiry time.Duration
}

// DefaultConfig returns a Config with LAN timings: failures detected in
// about a second, leader failover well under two seconds.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Hostname:            host,
		ListenAddr:          "0.0.0.0:2377",
		HeartbeatTimeout:    500 * time.Millisecond,
		ElectionTimeout:     500 * time.Millisecond,
		LeaderLeaseTimeout:  500 * time.Millisecond,
		CommitTimeout:       20 * time.Millisecond,
		SnapshotThreshold:   8192,
		SnapshotInterval:    30 * time.Second,
		GossipProbeInterval: 200 * time.Millisecond,
		GossipProbeTimeout:  100 * time.Millisecond,
		GossipInterval:      50 * time.Millisecond,
		GossipSuspicionMult: 2,
		RestartDelay:        5 * time.Second,
		TaskHistoryLimit:    5,
		RPCTimeout:          10 * time.Second,
		StatusBatchInterval: 10 * time.Millisecond,

		NodeHeartbeatPeriod:  500 * time.Millisecond,
		NodeHeartbeatTimeout: 2 * time.Second,
	}
}

// DefaultLocalConfig returns a Config for nodes in one process or on one
// host (tests, demos): loopback with a free port, in-memory state, short
// restart delay, and in-process Raft timings (100 ms heartbeat, election
// and lease timeouts, 5 ms commit timeout; hashicorp/raft's own in-memory
// tests use 50 ms, which on a loaded 2-core machine made a 2-voter
// cluster's leader lose its lease), so a new swarm takes its first write
// within a few tenths of a second instead of most of a second. Gossip
// keeps DefaultConfig's timings, already tuned for loopback. Raft's
// leader keeps its lease by heartbeating every HeartbeatTimeout/10; in a
// binary built with the race detector, which slows every goroutine 5-10x,
// the three Raft timeouts are 250 ms instead, so a loaded machine running
// many nodes sees no spurious elections. The node heartbeats
// (NodeHeartbeatPeriod/Timeout) stay long enough that such a machine
// never marks a live node down.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.ListenAddr = "127.0.0.1:0"
	c.RestartDelay = 100 * time.Millisecond
	c.RPCTimeout = 5 * time.Second
	raftTick := 100 * time.Millisecond
	if raceDetector {
		// The race detector slows every goroutine 5-10x: a 100 ms
		// heartbeat timeout then sees stalls that start elections.
		raftTick = 250 * time.Millisecond
	}
	c.HeartbeatTimeout = raftTick
	c.ElectionTimeout = raftTick
	c.LeaderLeaseTimeout = raftTick
	c.CommitTimeout = 5 * time.Millisecond
	c.NodeHeartbeatPeriod = 250 * time.Millisecond
	c.NodeHeartbeatTimeout = 1500 * time.Millisecond
	return c
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Hostname == "" {
		c.Hostname = d.Hostname
	}
	if c.ListenAddr == "" {
		c.ListenAddr = d.ListenAddr
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDur(&c.ElectionTimeout, d.ElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	setDur(&c.CommitTimeout, d.CommitTimeout)
	setDur(&c.SnapshotInterval, d.SnapshotInterval)
	setDur(&c.GossipProbeInterval, d.GossipProbeInterval)
	setDur(&c.GossipProbeTimeout, d.GossipProbeTimeout)
	setDur(&c.GossipInterval, d.GossipInterval)
	setDur(&c.NodeHeartbeatPeriod, d.NodeHeartbeatPeriod)
	setDur(&c.NodeHeartbeatTimeout, d.NodeHeartbeatTimeout)
	setDur(&c.RestartDelay, d.RestartDelay)
	setDur(&c.RPCTimeout, d.RPCTimeout)
	setDur(&c.StatusBatchInterval, d.StatusBatchInterval)
	setDur(&c.CertExpiry, DefaultCertExpiry)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.GossipSuspicionMult == 0 {
		c.GossipSuspicionMult = d.GossipSuspicionMult
	}
	if c.TaskHistoryLimit == 0 {
		c.TaskHistoryLimit = d.TaskHistoryLimit
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Validate reports the first bad field, wrapping ErrInvalidSpec. Zero
// values are valid (they take defaults).
func (c Config) Validate() error {
	for _, a := range []struct{ name, v string }{
		{"ListenAddr", c.ListenAddr}, {"AdvertiseAddr", c.AdvertiseAddr}, {"GossipAddr", c.GossipAddr},
	} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return invalidf("Config.%s %q: %v", a.name, a.v, err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout}, {"ElectionTimeout", c.ElectionTimeout},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout}, {"CommitTimeout", c.CommitTimeout},
		{"SnapshotInterval", c.SnapshotInterval}, {"GossipProbeInterval", c.GossipProbeInterval},
		{"GossipProbeTimeout", c.GossipProbeTimeout}, {"GossipInterval", c.GossipInterval},
		{"RestartDelay", c.RestartDelay}, {"RPCTimeout", c.RPCTimeout},
		{"StatusBatchInterval", c.StatusBatchInterval}, {"CertExpiry", c.CertExpiry},
		{"NodeHeartbeatPeriod", c.NodeHeartbeatPeriod}, {"NodeHeartbeatTimeout", c.NodeHeartbeatTimeout},
	} {
		if d.v < 0 {
			return invalidf("Config.%s is negative (%v)", d.name, d.v)
		}
	}
	if c.GossipSuspicionMult < 0 {
		return invalidf("Config.GossipSuspicionMult is negative (%d)", c.GossipSuspicionMult)
	}
	if c.CertExpiry > 0 && c.CertExpiry < minCertExpiry {
		return invalidf("Config.CertExpiry (%v) is shorter than %v", c.CertExpiry, minCertExpiry)
	}
	if c.TaskHistoryLimit < 0 {
		return invalidf("Config.TaskHistoryLimit is negative (%d)", c.TaskHistoryLimit)
	}
	w := c.withDefaults()
	if w.LeaderLeaseTimeout > w.HeartbeatTimeout {
		return invalidf("Config.LeaderLeaseTimeout (%v) exceeds HeartbeatTimeout (%v)", w.LeaderLeaseTimeout, w.HeartbeatTimeout)
	}
	if err := validateHeartbeat(w); err != nil {
		return err
	}
	if w.GossipProbeTimeout > w.GossipProbeInterval {
		return invalidf("Config.GossipProbeTimeout (%v) exceeds GossipProbeInterval (%v)", w.GossipProbeTimeout, w.GossipProbeInterval)
	}
	if c.Hostname != "" {
		if err := validateHostname(c.Hostname); err != nil {
			return fmt.Errorf("Config.Hostname: %w", err)
		}
	}
	return validateLabels("Config.Labels", c.Labels)
}

// Info is a summary of the swarm as one node sees it.
type Info struct {
	// NodeID is this node's ID; ClusterID the swarm's.
	NodeID, ClusterID string
	// Role is this node's role; Leader whether it leads.
	Role   Role
	Leader bool
	// LeaderID is the current leader's node ID ("" when unknown).
	LeaderID string
	// Managers and Nodes count the swarm's managers and all its nodes.
	Managers, Nodes int
	// Services counts services; Tasks counts tasks (all states).
	Services, Tasks int
	// AppliedIndex is the last Raft index this node's state reflects (managers).
	AppliedIndex uint64
}

func (r Role) valid() error {
	if r != RoleManager && r != RoleWorker {
		return invalidf("role %q (want %q or %q)", r, RoleManager, RoleWorker)
	}
	return nil
}

func uitoa(v uint64) string { return fmt.Sprintf("%d", v) }
