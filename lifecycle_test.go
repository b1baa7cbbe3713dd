package swarm_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// blackHole is a listener that accepts TCP connections and never answers:
// what a hung manager looks like to a joining node.
type blackHole struct {
	ln       net.Listener
	accepted chan struct{} // closed at the first accepted connection
	once     sync.Once
	mu       sync.Mutex
	conns    []net.Conn
	done     chan struct{}
}

func newBlackHole(t *testing.T) *blackHole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &blackHole{ln: ln, accepted: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.once.Do(func() { close(h.accepted) })
		}
	}()
	return h
}

func (h *blackHole) close() {
	h.ln.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
}

// Cancelling JoinContext stops a join to a manager that accepts the
// connection and never answers: the error wraps ctx.Err(), the node is
// shut down, and nothing of it keeps running.
func TestJoinContextCancelHungManager(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	lead := swarm.NewNode(swarm.DefaultLocalConfig())
	require.NoError(t, lead.Init())
	tok, err := lead.JoinToken(swarm.RoleManager)
	require.NoError(t, err)
	require.NoError(t, lead.Shutdown())

	h := newBlackHole(t)
	cfg := swarm.DefaultLocalConfig()
	cfg.JoinToken = tok
	cfg.RPCTimeout = time.Minute // only the cancellation can end this join
	n := swarm.NewNode(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.JoinContext(ctx, h.ln.Addr().String()) }()
	<-h.accepted // the join is under way and hangs
	cancel()
	err = <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, n.Join(h.ln.Addr().String()), swarm.ErrShutdown, "a failed join shuts the node down")
	require.NoError(t, n.Shutdown())
	h.close()
	goleak.VerifyNone(t, ignore)
}

// A join whose manager cannot be reached at all retries until ctx ends.
func TestJoinContextUnreachableManager(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	lead := swarm.NewNode(swarm.DefaultLocalConfig())
	require.NoError(t, lead.Init())
	tok, err := lead.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	require.NoError(t, lead.Shutdown())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused

	cfg := swarm.DefaultLocalConfig()
	cfg.JoinToken = tok
	cfg.RPCTimeout = time.Minute
	n := swarm.NewNode(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = n.JoinContext(ctx, addr)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, n.Shutdown())
	goleak.VerifyNone(t, ignore)
}

// A cancelled context stops Init before anything starts, and the node is
// shut down.
func TestInitContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := swarm.NewNode(swarm.DefaultLocalConfig())
	require.ErrorIs(t, n.InitContext(ctx), context.Canceled)
	require.ErrorIs(t, n.Init(), swarm.ErrShutdown)
}

// LeaveContext with a cancelled context leaves nothing: the node stays a
// running member, and a later Leave succeeds.
func TestLeaveContextCancelled(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	w := c.Node(1)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, w.LeaveContext(cctx), context.Canceled)
	_, err := w.Info(ctx)
	require.NoError(t, err, "the node still runs")
	nodes, err := c.Leader().Nodes(ctx)
	require.NoError(t, err)
	for _, nd := range nodes {
		require.Equal(t, swarm.NodeReady, nd.State, nd.Hostname)
	}
	require.NoError(t, w.LeaveContext(ctx))
	_, err = w.Info(ctx)
	require.ErrorIs(t, err, swarm.ErrShutdown)
}

// UnlockContext with a cancelled context leaves the manager locked; the
// right key unlocks it afterwards.
func TestUnlockContextCancelled(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Persistent: true,
		Config: func(_ string, cfg *swarm.Config) { cfg.AutoLock = true }})
	ctx := ctxT(t)
	key := unlockKey(t, ctx, c.Leader())
	n := c.Restart(0)
	require.True(t, n.Locked())
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, n.UnlockContext(cctx, key), context.Canceled)
	require.True(t, n.Locked(), "a cancelled Unlock leaves the node locked")
	require.NoError(t, n.UnlockContext(ctx, key))
	require.False(t, n.Locked())
}

// JoinToken on a follower is a linearizable read: right after a rotation
// on the leader it returns the new token, never the one rotated away.
func TestJoinTokenFollowerAfterRotation(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader := c.Leader()
	var followers []*swarm.Node
	for _, m := range c.Managers() {
		if m != leader {
			followers = append(followers, m)
		}
	}
	require.Len(t, followers, 2)
	for i := 0; i < 10; i++ {
		for _, role := range []swarm.Role{swarm.RoleWorker, swarm.RoleManager} {
			tok, err := leader.RotateJoinToken(ctx, role)
			require.NoError(t, err)
			for _, f := range followers {
				got, err := f.JoinToken(role)
				require.NoError(t, err)
				require.Equal(t, tok, got, "round %d, %s token on %s", i, role, f.ID())
				got, err = f.JoinTokenContext(ctx, role)
				require.NoError(t, err)
				require.Equal(t, tok, got)
			}
		}
	}
}
