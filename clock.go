package swarm

import (
	"sync"
	"time"
)

// Cluster time.
//
// No decision of the swarm compares the clocks of two machines. Every time
// a decision rests on (a task's creation, the moment it reached a state, an
// update's start, a node's removal) is stamped by the leader into the
// command that records it (command.Time), and the leader measures elapsed
// time against that stamp on the same scale, the cluster clock:
//
//   - Agents' status reports carry no time that counts: the FSM stamps
//     Task.Status.Timestamp with the command's time when a report moves a
//     task to a new state, so the update monitor period, the rebalance
//     settle time and the restart window are all measured from the moment
//     the leader received the report, whatever the worker's clock says.
//   - Which task of a slot is the newest is decided by Task.CreatedIndex,
//     the Raft index of the entry that created it ([newerTask]), not by a
//     time: two leaders' clocks cannot reorder a slot.
//   - The FSM makes stored times strictly increase with the log index
//     ([state.monotonic]): an entry stamped earlier than the one before it
//     (two writers racing on one leader, a new leader whose clock is
//     behind) is moved just after it. So comparing two stored times is
//     comparing the order of their entries, and none is ever in the future
//     of a later one.
//   - The leader stamps with its cluster clock ([clusterClock]). When a
//     manager becomes leader (after its Barrier, so it has applied every
//     committed entry) the clock starts at
//     max(local wall time, last stored time + time elapsed here since that
//     entry was applied), and from then on advances with the leader's
//     monotonic clock. Cluster time therefore never goes backwards across
//     failovers — a new leader whose clock is an hour behind carries on
//     from its predecessor's time, so restart delays do not wait an hour
//     and monitor periods do not stretch — and elapsed-time decisions
//     (now - stamped) run at the rate of a real clock. A leader whose wall
//     clock is ahead moves cluster time forward once, at its election:
//     timed waits under way then end early, never late, and none of them
//     stops a running task, so no task churns; when the clock is behind
//     again later, cluster time simply stays ahead of it.
//
// Timers, tickers and deadlines (time.After, context deadlines) measure
// durations on one machine and are unaffected. X.509 validity is checked
// by crypto/tls against the host clock.

// nodeClock holds the cluster clock while the node leads.
type nodeClock struct {
	mu     sync.Mutex
	leader *clusterClock
}

// now reads the node's wall clock: Config.Clock (a test hook), or
// time.Now. Readings from time.Now keep their monotonic part, so the
// difference of two readings measures elapsed time even across wall
// clock steps.
func (n *Node) now() time.Time {
	if n.cfg.Clock != nil {
		return n.cfg.Clock()
	}
	return time.Now()
}

// stampTime is the Time the leader writes into a command ([Node.applyLocal]).
func (n *Node) stampTime() time.Time {
	if c := n.leaderClock(); c != nil {
		return c.stamp()
	}
	// Not (yet) leading with a clock, e.g. a write before the new leader's
	// Barrier: the best estimate now; the FSM keeps it monotonic.
	return n.startClusterTime()
}

// clusterNow returns the current cluster time, the scale of every stored
// time, for the leader's elapsed-time decisions (the orchestrator).
func (n *Node) clusterNow() time.Time {
	if c := n.leaderClock(); c != nil {
		return c.now()
	}
	return n.startClusterTime()
}

func (n *Node) leaderClock() *clusterClock {
	n.clk.mu.Lock()
	defer n.clk.mu.Unlock()
	return n.clk.leader
}

// startClock starts the cluster clock of a new leadership; call it after
// the Barrier, so the state holds the previous leader's last stamp.
func (n *Node) startClock() {
	c := &clusterClock{read: n.now, start: n.now()}
	c.base = n.startClusterTime()
	c.last = c.base
	n.clk.mu.Lock()
	n.clk.leader = c
	n.clk.mu.Unlock()
}

// stopClock ends the leadership's cluster clock.
func (n *Node) stopClock() {
	n.clk.mu.Lock()
	n.clk.leader = nil
	n.clk.mu.Unlock()
}

// startClusterTime is where cluster time stands by this node's knowledge:
// its wall clock, unless the state's last stamp plus the time elapsed here
// since it was applied is later (this node's clock is behind a previous
// leader's).
func (n *Node) startClusterTime() time.Time {
	now := n.now()
	var last, appliedAt time.Time
	if n.fsm != nil {
		last, appliedAt = n.fsm.lastStamp()
	}
	t := now.Round(0)
	if !last.IsZero() {
		elapsed := time.Nanosecond
		if !appliedAt.IsZero() {
			elapsed = max(now.Sub(appliedAt), time.Nanosecond)
		}
		if floor := last.Add(elapsed); floor.After(t) {
			t = floor
		}
	}
	return t.UTC()
}

// clusterClock is a leader's cluster clock: base at the local reading
// start, advancing with the local monotonic clock.
type clusterClock struct {
	read  func() time.Time
	start time.Time // local reading when the leadership began

	mu   sync.Mutex
	base time.Time // cluster time at start
	last time.Time // the latest stamp handed out
}

// now returns the cluster time, never before the last stamp.
func (c *clusterClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *clusterClock) nowLocked() time.Time {
	t := c.base.Add(max(c.read().Sub(c.start), 0))
	if t.Before(c.last) {
		t = c.last
	}
	return t
}

// stamp returns a cluster time later than every previous stamp.
func (c *clusterClock) stamp() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.nowLocked()
	if !t.After(c.last) {
		t = c.last.Add(time.Nanosecond)
	}
	c.last = t
	return t
}

// monotonic returns the time an entry stamped t is applied with: t, or
// just after the last applied entry's time if t is not later. It is
// deterministic (every replica applies the same entries in the same
// order), so it keeps stored times in log order on every manager.
func (s *state) monotonic(t time.Time) time.Time {
	if !t.After(s.clock) {
		return s.clock.Add(time.Nanosecond)
	}
	return t
}

// noteStamp records an applied entry's time (the state's clock) and, for
// startClusterTime, when this node applied it by its own clock. The FSM
// lock is held.
func (f *fsm) noteStamp(t time.Time) {
	f.st.clock = t
	if f.now != nil {
		f.appliedAt = f.now()
	} else {
		f.appliedAt = time.Now()
	}
}

// lastStamp returns the last applied entry's time and when this node
// applied it (zero after a snapshot restore; after a restart, when the
// entry was replayed, which only underestimates the time elapsed since).
func (f *fsm) lastStamp() (t, appliedAt time.Time) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.clock, f.appliedAt
}

// newerTask reports whether a was created after b: by the Raft index of
// the entries that created them, which no clock can reorder. Tasks from
// before CreatedIndex existed (0) fall back to their creation time; ties
// (one entry) are broken by ID, so the order is total and the same on
// every manager.
func newerTask(a, b *Task) bool {
	if a.CreatedIndex != b.CreatedIndex {
		return a.CreatedIndex > b.CreatedIndex
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}
