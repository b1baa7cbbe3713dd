package swarm_test

import (
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

func leaderAndFollower(t *testing.T, c *swarmtest.Cluster) (leader, follower *swarm.Node) {
	t.Helper()
	leader = c.Leader()
	for _, m := range c.Managers() {
		if m != leader {
			follower = m
		}
	}
	require.NotNil(t, follower)
	return leader, follower
}

// A write forwarded from a follower whose reply is lost after the leader
// committed it is retried with the same request ID: the caller gets
// success, and the retry changes nothing (no ErrNameConflict, no
// ErrVersionConflict, one service, one update).
func TestLostReplyOfForwardedWriteIsExactlyOnce(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader, follower := leaderAndFollower(t, c)
	faults := swarm.Faults(leader)
	t.Cleanup(faults.Reset)

	faults.DropReplies("apply", 1)
	svc, err := follower.CreateService(ctx, swarm.ServiceSpec{Name: "once", Image: "nginx"})
	require.NoError(t, err, "the retry of a committed create reports its success")
	require.Equal(t, 1, faults.Dropped("apply"), "the first reply was dropped")
	all, err := follower.Services(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, svc.ID, all[0].ID)

	before, err := follower.Service(ctx, "once")
	require.NoError(t, err)
	spec := before.Spec
	spec.Mode = swarm.Replicated(3)
	faults.DropReplies("apply", 1)
	require.NoError(t, follower.UpdateService(ctx, "once", before.Version, spec),
		"the retry of a committed update reports its success, not ErrVersionConflict")
	require.Equal(t, 2, faults.Dropped("apply"))
	after, err := leader.Service(ctx, "once")
	require.NoError(t, err)
	require.Equal(t, uint64(3), after.Spec.Mode.Replicas)
	require.NotNil(t, after.PreviousSpec)
	require.Equal(t, before.Spec.Mode.Replicas, after.PreviousSpec.Mode.Replicas, "updated once: the previous spec is the original")
	// Exactly one update: the service's version is the index of the one
	// entry that changed it, and its events hold one update.
	evs, err := follower.Events(ctx, before.Version)
	require.NoError(t, err)
	updates := 0
	for ev := range evs {
		if ev.Type == swarm.EventService && ev.ID == svc.ID && ev.Action == "update" {
			updates++
			require.Equal(t, after.Version, ev.Index)
		}
		if ev.Index >= after.Version {
			break
		}
	}
	require.Equal(t, 1, updates)
	require.NoError(t, follower.WaitConverged(ctx, "once"))
}

// A retry on the leader itself (after raft.ErrLeadershipLost, say, which
// comes back even when the entry committed) carries the first attempt's
// request ID and returns the first outcome: same index, no second change.
func TestLeaderLocalRetryIsDeduped(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader, follower := leaderAndFollower(t, c)
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx"})
	require.NoError(t, err)
	svc, err := leader.Service(ctx, "web")
	require.NoError(t, err)
	next := svc
	next.Spec.Mode = swarm.Replicated(2)
	idx1, err := swarm.ApplyServiceUpdate(ctx, leader, "req-1", next, svc.Version)
	require.NoError(t, err)
	idx2, err := swarm.ApplyServiceUpdate(ctx, leader, "req-1", next, svc.Version)
	require.NoError(t, err, "the retry is not applied again (it would conflict)")
	require.Equal(t, idx1, idx2, "the retry returns the first index")
	// Through a follower (forwarded), too.
	idx3, err := swarm.ApplyServiceUpdate(ctx, follower, "req-1", next, svc.Version)
	require.NoError(t, err)
	require.Equal(t, idx1, idx3)
	// A first outcome that was an error comes back as the same sentinel.
	_, err = swarm.ApplyServiceUpdate(ctx, leader, "req-2", next, svc.Version)
	require.ErrorIs(t, err, swarm.ErrVersionConflict)
	_, err = swarm.ApplyServiceUpdate(ctx, follower, "req-2", next, idx1)
	require.ErrorIs(t, err, swarm.ErrVersionConflict, "the retry returns the first error, even though it would now apply")
	got, err := follower.Service(ctx, "web")
	require.NoError(t, err)
	require.Equal(t, idx1, got.Version)
}
