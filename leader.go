package swarm

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// monitorLeadership starts the leader-only loops when this node gains
// leadership and stops them when it loses it.
func (n *Node) monitorLeadership(r *raft.Raft, stop <-chan struct{}) {
	defer n.wg.Done()
	for {
		select {
		case leader := <-r.LeaderCh():
			if leader {
				n.startLeading()
			} else {
				n.stopLeading()
			}
		case <-stop: // this Raft instance stopped: the node was demoted
			n.stopLeading()
			return
		case <-n.shutdownCh:
			n.stopLeading()
			return
		}
	}
}

func (n *Node) startLeading() {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	if n.leaderCancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(n.baseCtx)
	done := make(chan struct{})
	n.leaderCancel, n.leaderDone = cancel, done
	go func() {
		defer close(done)
		n.lead(ctx)
	}()
}

// statusBatcherRef returns the leader's status batcher (nil unless leading).
func (n *Node) statusBatcherRef() *statusBatcher {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.batcher
}

func (n *Node) stopLeading() {
	n.leaderMu.Lock()
	cancel, done := n.leaderCancel, n.leaderDone
	n.leaderCancel, n.leaderDone = nil, nil
	n.leaderMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// lead runs while this node is the leader: after a Barrier (so the state
// reflects every committed entry) it runs the orchestrator and the
// liveness loop until ctx ends.
func (n *Node) lead(ctx context.Context) {
	r := n.raftNode()
	if r == nil {
		return // demoted meanwhile
	}
	for {
		if err := r.Barrier(n.cfg.RPCTimeout).Error(); err == nil {
			break
		} else if r.State() != raft.Leader {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.log.Info("leading", "node", n.ID())
	n.startClock()
	defer n.stopClock()
	o := newOrchestrator(n)
	b := newStatusBatcher(n)
	n.leaderMu.Lock()
	n.orch, n.batcher, n.hb = o, b, newHeartbeats(n.cfg)
	n.leaderMu.Unlock()
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		o.run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		b.run(ctx)
	}()
	n.livenessLoop(ctx)
	<-done
	<-done
	n.leaderMu.Lock()
	n.orch, n.batcher, n.hb = nil, nil, nil
	n.leaderMu.Unlock()
	b.failPending(fmt.Errorf("%w: leadership lost", ErrNoLeader))
}

// livenessLoop turns gossip and session heartbeats into node states: a
// node that gossip declares dead or whose heartbeat is overdue, and that
// does not answer a ping, goes down (its tasks are then replaced); one
// that comes back is ready.
func (n *Node) livenessLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	hbTick := time.NewTicker(n.cfg.NodeHeartbeatPeriod)
	defer hbTick.Stop()
	for {
		n.guard("liveness", func() { n.reconcileLiveness(ctx) })
		select {
		case <-ctx.Done():
			return
		case <-n.memberEvents:
		case <-hbTick.C:
		case <-tick.C:
			n.guard("liveness", func() {
				n.reconnectDown(ctx)
				n.reconcileManagers(ctx)
			})
		}
	}
}

// reconnectDown asks gossip to reach the nodes that are down (but did not
// leave) again. Gossip never probes a member it declared dead, so after a
// network partition heals the two sides would otherwise stay apart.
func (n *Node) reconnectDown(ctx context.Context) {
	var addrs []string
	alive := n.aliveMembers()
	n.fsm.read(func(s *state) {
		for id, node := range s.nodes {
			if node.State == NodeDown && node.Message != msgNodeLeft && !alive[id] && node.GossipAddr != "" {
				addrs = append(addrs, node.GossipAddr)
			}
		}
	})
	if len(addrs) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ml := n.memberlistRef(); ml != nil && ctx.Err() == nil {
				ml.Join([]string{a})
			}
		}()
	}
	wg.Wait()
}

func (n *Node) reconcileLiveness(ctx context.Context) {
	alive := n.aliveMembers()
	hb := n.heartbeatsRef()
	if hb == nil {
		return
	}
	self := n.ID()
	type change struct {
		id, addr string
		state    NodeState
		msg      string
	}
	var changes []change
	now := time.Now()
	keep := map[string]bool{}
	n.fsm.read(func(s *state) {
		for id, node := range s.nodes {
			keep[id] = true
			hb.observe(id, node.State, now)
			switch {
			case id == self:
				if node.State != NodeReady {
					changes = append(changes, change{id, node.Addr, NodeReady, ""})
				}
			case node.State == NodeReady && hb.suspect(id, alive[id], now):
				changes = append(changes, change{id, node.Addr, NodeDown, "heartbeat failure"})
			case node.State == NodeDown && alive[id] && node.Message != msgNodeLeft && hb.back(id):
				changes = append(changes, change{id, node.Addr, NodeReady, ""})
			}
		}
	})
	hb.forget(keep)
	// Gossip can call a node dead that is only slow (a loaded host misses
	// probe deadlines), and a heartbeat can be late. Confirm with a ping
	// that the node's process must answer: a TCP connect is not enough, a
	// stopped process's kernel completes it.
	confirmed := make([]bool, len(changes))
	var wg sync.WaitGroup
	for i, c := range changes {
		if c.state != NodeDown {
			confirmed[i] = true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			confirmed[i] = !n.ping(ctx, c.id, c.addr)
		}()
	}
	wg.Wait()
	for i, c := range changes {
		if !confirmed[i] {
			n.log.Debug("node suspected down answers its ping", "node", c.id)
			continue
		}
		if _, err := n.applyLocal(ctx, &command{Type: cmdNodeState, ID: c.id, NodeState: c.state, Message: c.msg}); err != nil {
			n.log.Debug("node state change failed", "node", c.id, "error", err)
			return
		}
		n.log.Info("node state", "node", c.id, "state", c.state, "message", c.msg)
	}
}

const msgNodeLeft = "node left the swarm"
