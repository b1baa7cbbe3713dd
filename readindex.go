package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Linearizable reads. Every public read of the replicated state on a
// manager first runs [Node.readBarrier], which establishes a read index:
// an applied index that covers every write acknowledged before the read
// began, confirmed by the current leader's majority. On the leader that is
// its applied index (a write is acknowledged only after the leader applied
// it) confirmed by raft.VerifyLeader after the leader's barrier; a follower
// asks the leader for one ("readIndex", confirmed the same way) and waits
// until it has applied that far. If neither can be done within RPCTimeout
// (or ctx), the read fails with ErrNoLeader: a deposed leader or a manager
// on the minority side of a partition never answers with old data.
//
// Confirmations are batched: the reads that arrive while one confirmation
// is in flight share the next one, so many concurrent reads cost one
// VerifyLeader round (on a follower, one readIndex RPC).

type staleReadsKey struct{}

// WithStaleReads returns a context under which the reads of a manager
// ([Node.Service], [Node.Tasks], ...) serve its local state without
// confirming it with the leader: they never fail for want of a leader,
// but may miss recent writes, or show a deposed leader's view. The
// default is linearizable reads.
func WithStaleReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, staleReadsKey{}, true)
}

func staleReads(ctx context.Context) bool {
	v, _ := ctx.Value(staleReadsKey{}).(bool)
	return v
}

// readBarrier checks that the node is a manager and, unless ctx allows
// stale reads, waits until its state is linearizable (see above).
func (n *Node) readBarrier(ctx context.Context) error {
	if err := n.checkManager(); err != nil {
		return err
	}
	if staleReads(ctx) {
		return nil
	}
	return n.linearRead(ctx)
}

// linearRead waits until the local state covers a read index confirmed
// by the leader, retrying through elections until RPCTimeout (or ctx).
func (n *Node) linearRead(ctx context.Context) error {
	r := n.raftNode()
	if r == nil {
		return ErrNotManager
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RPCTimeout)
	defer cancel()
	var lastErr error = ErrNoLeader
	for attempt := 0; ; attempt++ {
		var (
			idx uint64
			err error
		)
		if r.State() == raft.Leader {
			idx, err = n.reads.leader.do(ctx, n.leaderReadIndex)
		} else {
			idx, err = n.reads.follower.do(ctx, n.askReadIndex)
		}
		if err == nil {
			if err := n.waitApplied(ctx, idx); err != nil {
				if errors.Is(err, ErrShutdown) {
					return err
				}
				return fmt.Errorf("%w: read index %d not applied in time: %v", ErrNoLeader, idx, err)
			}
			return nil
		}
		if errors.Is(err, ErrShutdown) || errors.Is(err, ErrNotManager) {
			return err
		}
		if !errors.Is(err, ErrNoLeader) && !errors.Is(err, errUnreachable) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no leader confirmed a read index: %v (%v)", ErrNoLeader, ctx.Err(), lastErr)
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(min(10*time.Millisecond<<min(attempt, 4), 100*time.Millisecond)):
		}
	}
}

// leaderReadIndex is one confirmation round on the leader: the applied
// index when the round starts, once VerifyLeader has confirmed that a
// majority still follows this leader. A new leader serves reads only
// after its barrier applied every entry of earlier terms (the leader
// loops start after it).
func (n *Node) leaderReadIndex() (uint64, error) {
	ctx, cancel := context.WithTimeout(n.baseCtx, n.readRoundTimeout())
	defer cancel()
	r := n.raftNode()
	if r == nil {
		return 0, ErrNotManager
	}
	if r.State() != raft.Leader {
		return 0, errNotLeader
	}
	if n.statusBatcherRef() == nil {
		return 0, fmt.Errorf("%w: the new leader has not applied its barrier yet", ErrNoLeader)
	}
	idx := n.fsm.appliedIndex()
	if err := n.waitFuture(ctx, r.VerifyLeader()); err != nil {
		if errors.Is(err, ErrShutdown) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: leadership not confirmed: %v", ErrNoLeader, err)
	}
	return idx, nil
}

// readRoundTimeout bounds one confirmation round: twice the longest of
// the Raft timeouts (a leader that cannot reach a majority steps down
// within its lease; an election ends within about an election timeout),
// at most RPCTimeout. A round that asked a leader lost in a partition
// thus fails in time for a retry to find the new leader while the read's
// own RPCTimeout runs.
func (n *Node) readRoundTimeout() time.Duration {
	d := 2 * max(n.cfg.HeartbeatTimeout, n.cfg.ElectionTimeout, n.cfg.LeaderLeaseTimeout)
	return min(d, n.cfg.RPCTimeout)
}

// askReadIndex is one round on a follower: the leader's confirmed read index.
func (n *Node) askReadIndex() (uint64, error) {
	ctx, cancel := context.WithTimeout(n.baseCtx, n.readRoundTimeout())
	defer cancel()
	r := n.raftNode()
	if r == nil {
		return 0, ErrNotManager
	}
	addr, _ := r.LeaderWithID()
	if addr == "" {
		return 0, ErrNoLeader
	}
	if string(addr) == n.Addr() {
		return 0, fmt.Errorf("%w: leadership is changing", ErrNoLeader)
	}
	var reply applyReply
	if err := n.tr.call(ctx, string(addr), "readIndex", struct{}{}, &reply); err != nil {
		return 0, err
	}
	return reply.Index, nil
}

// handleReadIndex serves a follower's "readIndex" on the leader.
func (n *Node) handleReadIndex(ctx context.Context) (*applyReply, error) {
	if err := n.checkLeader(); err != nil {
		return nil, err
	}
	idx, err := n.reads.leader.do(ctx, n.leaderReadIndex)
	if err != nil {
		return nil, err
	}
	return &applyReply{Index: idx}, nil
}

// readIndexers are a node's two batchers: confirmations it runs as the
// leader, and read indexes it asks the leader for as a follower.
type readIndexers struct {
	leader, follower readBatcher
}

// readBatcher runs one round of fn at a time and lets the callers that
// arrive meanwhile share the next round: a caller never joins a round
// that started before it arrived, so the index the round returns covers
// every write acknowledged before the caller's read began.
type readBatcher struct {
	mu      sync.Mutex
	running bool
	next    *readRound
}

type readRound struct {
	done chan struct{}
	idx  uint64
	err  error
}

// do waits for the result of the next round of fn (starting it if none
// runs). ctx bounds the wait; fn bounds a round itself (it runs on behalf
// of every waiter, so not by any one caller's ctx).
func (b *readBatcher) do(ctx context.Context, fn func() (uint64, error)) (uint64, error) {
	b.mu.Lock()
	if b.next == nil {
		b.next = &readRound{done: make(chan struct{})}
	}
	r := b.next
	if !b.running {
		b.running = true
		b.next = nil
		go b.run(r, fn)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.idx, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (b *readBatcher) run(r *readRound, fn func() (uint64, error)) {
	for r != nil {
		r.idx, r.err = fn()
		close(r.done)
		b.mu.Lock()
		r = b.next
		b.next = nil
		if r == nil {
			b.running = false
		}
		b.mu.Unlock()
	}
}
