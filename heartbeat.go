package swarm

import (
	"context"
	"sync"
	"time"
)

// Session heartbeats: application-level failure detection.
//
// Gossip and a TCP connect only prove that a node's kernel is alive: a
// process that is stopped (SIGSTOP), deadlocked or on a paused VM still
// completes handshakes. As SwarmKit's dispatcher does, every node sends
// the leader a heartbeat each [Config.NodeHeartbeatPeriod] (through any
// manager, which forwards), and the leader records when each one arrived,
// by its own monotonic clock only: a timestamp a node sends is never
// compared with the leader's clock. A node is marked down when
//
//   - its last heartbeat is older than [Config.NodeHeartbeatTimeout], or
//     gossip declares it dead and it sent no heartbeat for two periods,
//   - and a ping RPC, which only the node's own process can answer, gets
//     no reply within half of NodeHeartbeatTimeout.
//
// Gossip stays the fast signal for a crash; the ping is what keeps a slow
// but alive node (a loaded host missing gossip probes) ready. A node that
// was marked down comes back ready once gossip sees it and a heartbeat
// arrived after it was marked down. A new leader knows no heartbeats: it
// gives every node one NodeHeartbeatTimeout of grace.

// heartbeatArgs is a node's heartbeat; managers forward it to the leader.
type heartbeatArgs struct {
	NodeID    string
	Forwarded bool
}

// heartbeatReply names the leader that recorded the heartbeat, so the
// node sends the next one there directly.
type heartbeatReply struct {
	Leader string
}

// heartbeats is the leader's record of when each node's heartbeat last
// arrived, by the leader's own (monotonic) clock. One exists per term of
// leadership: a new leader starts from nothing and gives every node a
// grace period.
type heartbeats struct {
	period, timeout time.Duration

	mu sync.Mutex
	// last is when the node's last heartbeat (or a ping reply) arrived, or
	// when the leader first saw it ready (the grace period).
	last map[string]time.Time
	// ready records which nodes were ready when last observed;
	// downSince when a node was first observed down.
	ready     map[string]bool
	downSince map[string]time.Time
}

func newHeartbeats(cfg Config) *heartbeats {
	return &heartbeats{
		period: cfg.NodeHeartbeatPeriod, timeout: cfg.NodeHeartbeatTimeout,
		last: map[string]time.Time{}, ready: map[string]bool{}, downSince: map[string]time.Time{},
	}
}

// record notes that node id answered now.
func (h *heartbeats) record(id string) {
	now := time.Now()
	h.mu.Lock()
	h.last[id] = now
	h.mu.Unlock()
}

// observe notes the node's state in the swarm's record. The first time a
// node is seen ready (a new leader, a node that joined or came back) its
// deadline starts now.
func (h *heartbeats) observe(id string, st NodeState, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st == NodeReady {
		if !h.ready[id] {
			h.ready[id] = true
			if h.last[id].Before(now) {
				h.last[id] = now
			}
		}
		delete(h.downSince, id)
		return
	}
	delete(h.ready, id)
	if _, ok := h.downSince[id]; !ok {
		h.downSince[id] = now
	}
}

// suspect reports whether a ready node should be probed: its heartbeat is
// overdue, or gossip calls it dead and it has been silent for two periods.
func (h *heartbeats) suspect(id string, gossipAlive bool, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	age := now.Sub(h.last[id])
	return age > h.timeout || (!gossipAlive && age > 2*h.period)
}

// back reports whether a node marked down sent a heartbeat since.
func (h *heartbeats) back(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	since, ok := h.downSince[id]
	return ok && h.last[id].After(since)
}

// forget drops nodes that are no longer in the swarm.
func (h *heartbeats) forget(keep map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range []map[string]time.Time{h.last, h.downSince} {
		for id := range m {
			if !keep[id] {
				delete(m, id)
			}
		}
	}
	for id := range h.ready {
		if !keep[id] {
			delete(h.ready, id)
		}
	}
}

// heartbeatsRef returns the leader's heartbeat record (nil unless leading).
func (n *Node) heartbeatsRef() *heartbeats {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.hb
}

// probeTimeout is how long a ping may take before the node counts as not
// answering: half the heartbeat deadline.
func (c Config) probeTimeout() time.Duration { return c.NodeHeartbeatTimeout / 2 }

// ping asks the node at addr to answer from its own process, within the
// probe timeout. A kernel that completes the handshake for a stopped
// process does not answer it.
func (n *Node) ping(ctx context.Context, id, addr string) bool {
	if addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.probeTimeout())
	defer cancel()
	if err := n.tr.call(ctx, addr, "ping", struct{}{}, nil); err != nil {
		n.log.Debug("ping failed", "node", id, "addr", addr, "error", err)
		return false
	}
	if hb := n.heartbeatsRef(); hb != nil {
		hb.record(id)
	}
	return true
}

// handleHeartbeat records a node's heartbeat on the leader; other managers
// forward it there.
func (n *Node) handleHeartbeat(ctx context.Context, a *heartbeatArgs) (*heartbeatReply, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.NodeHeartbeatTimeout)
	defer cancel()
	var reply heartbeatReply
	if handled, err := n.forwardUnlessLeader(ctx, "heartbeat", &a.Forwarded, a, &reply); handled {
		return &reply, err
	}
	// Between winning the election and the barrier there is no record:
	// the grace period of the record to come covers this heartbeat.
	if hb := n.heartbeatsRef(); hb != nil {
		hb.record(a.NodeID)
	}
	return &heartbeatReply{Leader: n.Addr()}, nil
}

// dispatchHeartbeat serves the heartbeat and ping RPCs.
func (n *Node) dispatchHeartbeat(ctx context.Context, method string, body []byte) (any, error) {
	if method == "ping" {
		return struct{}{}, nil
	}
	return serveArgs(body, func(a *heartbeatArgs) (*heartbeatReply, error) { return n.handleHeartbeat(ctx, a) })
}

func (n *Node) startHeartbeat() {
	n.wg.Add(1)
	go n.heartbeatLoop()
}

// heartbeatLoop sends the node's heartbeat every NodeHeartbeatPeriod, to
// the leader that answered last (or, failing that, to the managers in
// turn), one at a time: a heartbeat that cannot be delivered is dropped,
// never queued, since only a fresh one says the node is alive.
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.NodeHeartbeatPeriod)
	defer t.Stop()
	var target string
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		n.hangPoint()
		if n.IsLeader() {
			continue
		}
		target = n.sendHeartbeat(target)
	}
}

// sendHeartbeat sends one heartbeat, trying target first, and returns the
// address to try first next time.
func (n *Node) sendHeartbeat(target string) string {
	self := n.Addr()
	tried := 0
	for _, addr := range append([]string{target}, n.managerAddrs()...) {
		if addr == "" || addr == self || (tried > 0 && addr == target) {
			continue
		}
		if tried++; tried > 3 {
			break
		}
		ctx, cancel := context.WithTimeout(n.baseCtx, n.cfg.probeTimeout())
		var reply heartbeatReply
		err := n.tr.call(ctx, addr, "heartbeat", &heartbeatArgs{NodeID: n.ID()}, &reply)
		cancel()
		if err == nil {
			if reply.Leader != "" {
				return reply.Leader
			}
			return addr
		}
		n.log.Trace("heartbeat failed", "manager", addr, "error", err)
		if n.baseCtx.Err() != nil {
			return ""
		}
	}
	return ""
}

// validateHeartbeat checks the heartbeat timings of a Config with defaults.
func validateHeartbeat(c Config) error {
	if c.NodeHeartbeatTimeout <= c.NodeHeartbeatPeriod {
		return invalidf("Config.NodeHeartbeatTimeout (%v) must exceed NodeHeartbeatPeriod (%v)", c.NodeHeartbeatTimeout, c.NodeHeartbeatPeriod)
	}
	return nil
}
