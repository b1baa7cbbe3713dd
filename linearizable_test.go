package swarm_test

import (
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// Reads on a manager cut off from the leader fail with ErrNoLeader
// instead of serving old state: a follower in the minority, then a
// deposed leader in the minority while the majority elects a new leader
// and accepts a write. After the heal both read the write.
func TestMinorityReadsFail(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Partitions: true,
		Config: func(_ string, cfg *swarm.Config) { cfg.RPCTimeout = time.Second }})
	ctx := ctxT(t)
	leader, follower := leaderAndFollower(t, c)
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(1)})
	require.NoError(t, err)
	_, err = follower.Service(ctx, "web")
	require.NoError(t, err)
	others := func(i int) []int {
		var out []int
		for j := range c.Nodes() {
			if j != i {
				out = append(out, j)
			}
		}
		return out
	}
	// noLeader asserts that every kind of read on n fails with ErrNoLeader.
	noLeader := func(n *swarm.Node, why string) {
		t.Helper()
		_, err := n.Service(ctx, "web")
		require.ErrorIs(t, err, swarm.ErrNoLeader, why)
		_, err = n.Services(ctx)
		require.ErrorIs(t, err, swarm.ErrNoLeader, why)
		_, err = n.Tasks(ctx, swarm.TaskFilter{})
		require.ErrorIs(t, err, swarm.ErrNoLeader, why)
		_, err = n.Nodes(ctx)
		require.ErrorIs(t, err, swarm.ErrNoLeader, why)
		_, err = n.Secrets(ctx)
		require.ErrorIs(t, err, swarm.ErrNoLeader, why)
		require.ErrorIs(t, n.WaitConverged(ctx, "web"), swarm.ErrNoLeader, why)
	}

	// A follower in the minority.
	fi := c.Index(follower)
	c.Partition([]int{fi}, others(fi))
	noLeader(follower, "minority follower")
	_, err = leader.Service(ctx, "web")
	require.NoError(t, err, "the leader keeps its majority")
	c.Heal()
	require.Eventually(t, func() bool { _, err := follower.Service(ctx, "web"); return err == nil }, waitFor, 20*time.Millisecond)

	// The leader in the minority: the majority elects another and writes.
	li := c.Index(leader)
	rest := others(li)
	c.Partition([]int{li}, rest)
	var other *swarm.Node
	require.Eventually(t, func() bool {
		for _, i := range rest {
			if c.Node(i).IsLeader() {
				other = c.Node(i)
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond, "the majority elects a new leader")
	require.NoError(t, other.ScaleService(ctx, "web", 3))
	noLeader(leader, "deposed leader")
	// Only an explicit opt-in serves the old view.
	stale, err := leader.Service(swarm.WithStaleReads(ctx), "web")
	require.NoError(t, err)
	require.Equal(t, uint64(1), stale.Spec.Mode.Replicas, "the deposed leader's own state is old")

	c.Heal()
	for _, n := range []*swarm.Node{leader, follower, other} {
		require.Eventually(t, func() bool {
			svc, err := n.Service(ctx, "web")
			return err == nil && svc.Spec.Mode.Replicas == 3
		}, waitFor, 20*time.Millisecond, "after the heal every manager reads the write")
	}
}

// A read on any manager sees every write acknowledged before it began,
// wherever the write was made (read-your-writes across managers).
func TestReadsSeeAcknowledgedWrites(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader, follower := leaderAndFollower(t, c)
	for i := uint64(1); i <= 5; i++ {
		w := leader
		if i%2 == 0 {
			w = follower
		}
		if i == 1 {
			_, err := w.CreateService(ctx, swarm.ServiceSpec{Name: "rw", Image: "nginx", Mode: swarm.Replicated(1)})
			require.NoError(t, err)
		} else {
			require.NoError(t, w.ScaleService(ctx, "rw", i))
		}
		for _, m := range c.Managers() {
			svc, err := m.Service(ctx, "rw")
			require.NoError(t, err)
			require.Equal(t, i, svc.Spec.Mode.Replicas)
		}
	}
}
