package swarm_test

import (
	"context"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// managerStatuses returns the ManagerStatus of every Raft voter as n sees
// it (nil if n cannot answer).
func managerStatuses(n *swarm.Node) map[string]*swarm.ManagerStatus {
	nodes, err := n.Nodes(context.Background())
	if err != nil {
		return nil
	}
	out := map[string]*swarm.ManagerStatus{}
	for _, nd := range nodes {
		if nd.ManagerStatus != nil {
			out[nd.ID] = nd.ManagerStatus
		}
	}
	return out
}

// reachableVoters counts the voters n sees reachable, and the leaders among them.
func reachableVoters(n *swarm.Node) (voters, leaders int) {
	for _, ms := range managerStatuses(n) {
		if ms.Reachability == swarm.ReachabilityReachable {
			voters++
		}
		if ms.Leader {
			leaders++
		}
	}
	return voters, leaders
}

func hasVoters(n *swarm.Node, want int) func() bool {
	return func() bool {
		v, l := reachableVoters(n)
		return v == want && len(managerStatuses(n)) == want && l == 1
	}
}

func stateOf(n *swarm.Node, id string) swarm.NodeState {
	info, err := n.Node(context.Background(), id)
	if err != nil {
		return ""
	}
	return info.State
}

func TestPromoteWorkersGrowsRaft(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(3)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.True(t, hasVoters(leader, 1)())
	ms := managerStatuses(leader)[leader.ID()]
	require.Equal(t, &swarm.ManagerStatus{Leader: true, Reachability: swarm.ReachabilityReachable, Addr: leader.Addr()}, ms)

	w1, w2 := c.Node(1), c.Node(2)
	_, err = w1.Services(ctx)
	require.ErrorIs(t, err, swarm.ErrNotManager)
	require.NoError(t, leader.PromoteNode(ctx, "worker-1")) // by hostname
	require.NoError(t, leader.PromoteNode(ctx, w2.ID()))
	require.Eventually(t, hasVoters(leader, 3), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return w1.Role() == swarm.RoleManager && w2.Role() == swarm.RoleManager
	}, waitFor, 10*time.Millisecond)
	info, err := leader.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, info.Managers)
	for _, w := range []*swarm.Node{w1, w2} {
		nd, err := leader.Node(ctx, w.ID())
		require.NoError(t, err)
		require.Equal(t, swarm.RoleManager, nd.Role)
		require.NotNil(t, nd.ManagerStatus)
		require.False(t, nd.ManagerStatus.Leader)
		require.Equal(t, w.Addr(), nd.ManagerStatus.Addr)
		// A promoted node serves manager reads of the same state.
		svcs, err := w.Services(ctx)
		require.NoError(t, err)
		require.Len(t, svcs, 1)
	}

	// Promoting a manager changes nothing.
	before, err := leader.Node(ctx, w1.ID())
	require.NoError(t, err)
	require.NoError(t, leader.PromoteNode(ctx, w1.ID()))
	after, err := leader.Node(ctx, w1.ID())
	require.NoError(t, err)
	require.Equal(t, before.Version, after.Version)

	// The promoted managers are voters: without the original leader they
	// still have a quorum and accept writes.
	oldID := leader.ID()
	c.Crash(0)
	require.NoError(t, w1.ScaleService(ctx, "web", 4))
	newLeader := c.Leader()
	require.NotEqual(t, oldID, newLeader.ID())
	require.Eventually(t, func() bool { return stateOf(newLeader, oldID) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.NoError(t, newLeader.WaitConverged(ctx, "web"))
	require.Eventually(t, func() bool {
		ms := managerStatuses(newLeader)[oldID]
		return ms != nil && ms.Reachability == swarm.ReachabilityUnreachable
	}, waitFor, 10*time.Millisecond)
}

func TestDemoteManagerKeepsRunningTasks(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader := c.Leader()
	idx := 1
	if c.Node(idx) == leader {
		idx = 2
	}
	f := c.Node(idx)
	fid := f.ID()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	rt := c.Runtime(idx).(*swarm.InmemRuntime)
	had := running(t, leader, "web")[fid]
	require.NotZero(t, had)

	require.NoError(t, leader.DemoteNode(ctx, fid))
	nd, err := leader.Node(ctx, fid)
	require.NoError(t, err)
	require.Equal(t, swarm.RoleWorker, nd.Role)
	require.Nil(t, nd.ManagerStatus, "the leader removed it from the Raft configuration")
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return f.Role() == swarm.RoleWorker }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := f.Services(ctx)
		return err != nil
	}, waitFor, 10*time.Millisecond)
	_, err = f.Services(ctx)
	require.ErrorIs(t, err, swarm.ErrNotManager)
	info, err := leader.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, info.Managers)

	// It keeps its tasks, and as a worker its agent talks to the managers
	// over RPC: new tasks reach it and run.
	require.Equal(t, had, rt.Running(fid))
	require.Equal(t, swarm.NodeReady, stateOf(leader, fid))
	require.NoError(t, leader.ScaleService(ctx, "web", 9))
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.Eventually(t, func() bool { return running(t, leader, "web")[fid] == 3 }, waitFor, 10*time.Millisecond)

	// Demoting a worker changes nothing.
	require.NoError(t, leader.DemoteNode(ctx, fid))

	// Promoted back, it is a voter again and serves reads.
	require.NoError(t, leader.PromoteNode(ctx, fid))
	require.Eventually(t, hasVoters(leader, 3), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return f.Role() == swarm.RoleManager }, waitFor, 10*time.Millisecond)
	svcs, err := f.Services(ctx)
	require.NoError(t, err)
	require.Len(t, svcs, 1)
	require.Equal(t, uint64(9), svcs[0].Spec.Mode.Replicas)
}

func TestDemoteLastManagerFails(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	require.ErrorIs(t, leader.DemoteNode(ctx, leader.ID()), swarm.ErrLastManager)
	require.ErrorIs(t, leader.UpdateNode(ctx, "manager-1", 0, swarm.NodeUpdate{Role: swarm.RoleWorker}), swarm.ErrLastManager)
	require.True(t, leader.IsLeader())
	require.Equal(t, swarm.RoleManager, leader.Role())
	info, err := leader.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, info.Managers)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "still", Image: "nginx"})
	require.NoError(t, err)
}

func TestDemoteLeaderHandsOver(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	old := c.Leader()
	_, err := old.CreateService(ctx, swarm.ServiceSpec{Name: "api", Image: "nginx", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, old.WaitConverged(ctx, "api"))

	require.NoError(t, old.DemoteNode(ctx, old.ID()))
	require.Eventually(t, func() bool { return old.Role() == swarm.RoleWorker }, waitFor, 10*time.Millisecond)
	require.False(t, old.IsLeader())
	leader := c.Leader()
	require.NotEqual(t, old.ID(), leader.ID())
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "after", Image: "nginx", Mode: swarm.Replicated(3)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "after"))
	require.NoError(t, leader.WaitConverged(ctx, "api"))

	// Asked on a follower, the demotion of the leader is forwarded to it,
	// and it hands over again: one manager is left, and it leads.
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if m != leader {
			follower = m
		}
	}
	require.NotNil(t, follower)
	require.NoError(t, follower.DemoteNode(ctx, leader.ID()))
	require.Eventually(t, follower.IsLeader, waitFor, 10*time.Millisecond)
	require.Eventually(t, hasVoters(follower, 1), waitFor, 10*time.Millisecond)
	require.NoError(t, follower.ScaleService(ctx, "after", 5))
	require.NoError(t, follower.WaitConverged(ctx, "after"))
	require.ErrorIs(t, follower.DemoteNode(ctx, follower.ID()), swarm.ErrLastManager)
}

func TestRemoveNode(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()

	// A node of our own, with a DataDir, to try rejoining with after removal.
	cfg := swarm.DefaultLocalConfig()
	cfg.Hostname = "doomed"
	cfg.DataDir = t.TempDir()
	cfg.Runtime = swarm.NewInmemRuntime()
	tok, err := leader.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	cfg.JoinToken = tok
	doomed := swarm.NewNode(cfg)
	require.NoError(t, doomed.Join(leader.Addr()))
	t.Cleanup(func() { doomed.Shutdown() })
	id := doomed.ID()
	require.Eventually(t, func() bool { return stateOf(leader, id) == swarm.NodeReady }, waitFor, 10*time.Millisecond)

	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.NotZero(t, running(t, leader, "web")[id])

	err = leader.RemoveNode(ctx, "doomed", false)
	require.ErrorIs(t, err, swarm.ErrNodeNotDown)
	require.Contains(t, err.Error(), "is not down and can't be removed")
	// A reachable manager is not removed even with force: demote it first.
	require.ErrorIs(t, leader.RemoveNode(ctx, leader.ID(), true), swarm.ErrNodeNotDown)
	require.ErrorIs(t, leader.RemoveNode(ctx, "nosuchnode", true), swarm.ErrNotFound)

	doomed.Shutdown()
	require.Eventually(t, func() bool { return stateOf(leader, id) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.RemoveNode(ctx, "doomed", false))
	_, err = leader.Node(ctx, id)
	require.ErrorIs(t, err, swarm.ErrNotFound)
	nodes, err := leader.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	for _, nd := range nodes {
		require.NotEqual(t, id, nd.ID)
	}
	// Its tasks were replaced on the nodes left.
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return per[id] == 0 && total(per) == 6
	}, waitFor, 10*time.Millisecond)

	// It cannot come back with its old identity.
	again := swarm.NewNode(cfg)
	err = again.Join(leader.Addr())
	require.ErrorIs(t, err, swarm.ErrNotFound)
	require.ErrorIs(t, again.Shutdown(), nil)

	// Force removes a node that is still up.
	w := c.Node(1)
	require.NoError(t, leader.RemoveNode(ctx, w.ID(), true))
	_, err = leader.Node(ctx, w.ID())
	require.ErrorIs(t, err, swarm.ErrNotFound)
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return per[leader.ID()] == 6 && total(per) == 6
	}, waitFor, 10*time.Millisecond)
	rt := c.Runtime(1).(*swarm.InmemRuntime)
	require.Eventually(t, func() bool { return rt.Running(w.ID()) == 0 }, waitFor, 10*time.Millisecond,
		"a removed node stops its tasks")
}

func TestRemoveDownManager(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	leader := c.Leader()
	var followers []int
	for i := 0; i < 3; i++ {
		if c.Node(i) != leader {
			followers = append(followers, i)
		}
	}
	victim, other := c.Node(followers[0]), c.Node(followers[1])
	vid := victim.ID()
	require.ErrorIs(t, leader.RemoveNode(ctx, vid, true), swarm.ErrNodeNotDown)

	c.Crash(followers[0])
	require.Eventually(t, func() bool {
		ms := managerStatuses(leader)[vid]
		return stateOf(leader, vid) == swarm.NodeDown && ms != nil && ms.Reachability == swarm.ReachabilityUnreachable
	}, waitFor, 10*time.Millisecond)
	// With one of three managers down, demoting another would leave one
	// reachable manager of two: no quorum.
	require.ErrorIs(t, leader.DemoteNode(ctx, other.ID()), swarm.ErrQuorumLoss)

	require.NoError(t, leader.RemoveNode(ctx, vid, false))
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)
	info, err := leader.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, info.Managers)
	_, err = other.CreateService(ctx, swarm.ServiceSpec{Name: "after", Image: "nginx"})
	require.NoError(t, err)
	// Two voters, both up: a demotion is fine again.
	require.NoError(t, leader.DemoteNode(ctx, other.ID()))
	require.Eventually(t, hasVoters(leader, 1), waitFor, 10*time.Millisecond)
}

func TestUpdateNodeLabelsAndVersions(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 2, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	follower := c.Node(0)
	if follower == leader {
		follower = c.Node(1)
	}
	nd, err := follower.Node(ctx, "worker-1")
	require.NoError(t, err)
	require.Equal(t, swarm.AvailabilityActive, nd.Availability)

	// Through a follower (forwarded to the leader), read back at once.
	require.NoError(t, follower.UpdateNode(ctx, nd.ID, nd.Version, swarm.NodeUpdate{Labels: map[string]string{"zone": "a"}}))
	got, err := follower.Node(ctx, nd.ID)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"zone": "a"}, got.Labels)
	require.Equal(t, swarm.AvailabilityActive, got.Availability)
	require.Greater(t, got.Version, nd.Version)

	// The version read before is stale now.
	err = follower.UpdateNode(ctx, nd.ID, nd.Version, swarm.NodeUpdate{Availability: swarm.AvailabilityDrain})
	require.ErrorIs(t, err, swarm.ErrVersionConflict)
	err = leader.UpdateNode(ctx, nd.ID, nd.Version, swarm.NodeUpdate{Role: swarm.RoleManager})
	require.ErrorIs(t, err, swarm.ErrVersionConflict)
	cur, err := leader.Node(ctx, nd.ID)
	require.NoError(t, err)
	require.Equal(t, got.Version, cur.Version)
	require.Equal(t, swarm.AvailabilityActive, cur.Availability)
	require.Equal(t, swarm.RoleWorker, cur.Role)

	// Only the fields set change; labels steer placement.
	require.NoError(t, leader.UpdateNode(ctx, nd.ID, got.Version, swarm.NodeUpdate{Availability: swarm.AvailabilityPause}))
	cur, err = leader.Node(ctx, nd.ID)
	require.NoError(t, err)
	require.Equal(t, swarm.AvailabilityPause, cur.Availability)
	require.Equal(t, map[string]string{"zone": "a"}, cur.Labels)
	require.NoError(t, leader.UpdateNode(ctx, nd.ID, 0, swarm.NodeUpdate{Availability: swarm.AvailabilityActive}))
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "zoned", Image: "nginx", Mode: swarm.Replicated(2),
		Placement: swarm.Placement{Constraints: []string{"node.labels.zone==a"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "zoned"))
	require.Equal(t, map[string]int{nd.ID: 2}, running(t, leader, "zoned"))
	// An empty map clears the labels.
	require.NoError(t, leader.UpdateNode(ctx, "worker-1", 0, swarm.NodeUpdate{Labels: map[string]string{}}))
	cur, err = leader.Node(ctx, nd.ID)
	require.NoError(t, err)
	require.Empty(t, cur.Labels)

	// Bad input names the problem.
	require.ErrorIs(t, leader.UpdateNode(ctx, nd.ID, 0, swarm.NodeUpdate{Availability: "bogus"}), swarm.ErrInvalidSpec)
	require.ErrorIs(t, leader.UpdateNode(ctx, nd.ID, 0, swarm.NodeUpdate{Role: "boss"}), swarm.ErrInvalidSpec)
	require.ErrorIs(t, leader.UpdateNode(ctx, nd.ID, 0, swarm.NodeUpdate{Labels: map[string]string{"": "x"}}), swarm.ErrInvalidSpec)
	require.ErrorIs(t, leader.UpdateNode(ctx, "nosuchnode", 0, swarm.NodeUpdate{Availability: swarm.AvailabilityDrain}), swarm.ErrNotFound)
	w := c.Node(2)
	require.ErrorIs(t, w.UpdateNode(ctx, nd.ID, 0, swarm.NodeUpdate{Availability: swarm.AvailabilityDrain}), swarm.ErrNotManager)

	// A role change through UpdateNode promotes.
	cur, err = leader.Node(ctx, nd.ID)
	require.NoError(t, err)
	require.NoError(t, leader.UpdateNode(ctx, nd.ID, cur.Version, swarm.NodeUpdate{Role: swarm.RoleManager}))
	require.Eventually(t, hasVoters(leader, 3), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return w.Role() == swarm.RoleManager }, waitFor, 10*time.Millisecond)
}

// Promotions and demotions start and stop Raft inside running nodes; a
// shut-down cluster still leaves no goroutine behind, and a demoted node
// restarts as a worker.
func TestRoleChangesLeaveNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Persistent: true})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(4)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))

	w1 := c.Node(1)
	require.NoError(t, leader.PromoteNode(ctx, w1.ID()))
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return w1.Role() == swarm.RoleManager }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.DemoteNode(ctx, w1.ID()))
	require.Eventually(t, hasVoters(leader, 1), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return w1.Role() == swarm.RoleWorker }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.PromoteNode(ctx, c.Node(2).ID()))
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)

	// The demoted node comes back from its DataDir as a worker.
	n := c.Restart(1)
	require.Equal(t, swarm.RoleWorker, n.Role())
	require.Eventually(t, func() bool { return stateOf(leader, n.ID()) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.ScaleService(ctx, "web", 6))
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)

	c.Shutdown()
	goleak.VerifyNone(t, ignore)
}

// A worker without a Runtime has no agent to hear of its promotion: it
// finds out by itself.
func TestPromoteNodeWithoutRuntime(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1,
		Runtime: func(hostname string) swarm.Runtime {
			if hostname == "worker-1" {
				return nil
			}
			return swarm.NewInmemRuntime()
		}})
	ctx := ctxT(t)
	leader := c.Leader()
	w := c.Node(1)
	require.NoError(t, leader.PromoteNode(ctx, w.ID()))
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return w.Role() == swarm.RoleManager }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.DemoteNode(ctx, w.ID()))
	require.Eventually(t, func() bool { return w.Role() == swarm.RoleWorker }, waitFor, 10*time.Millisecond)
	require.True(t, hasVoters(leader, 1)())
}

// A manager demoted while it was down learns of it when it comes back,
// although it is no longer in the Raft configuration to hear it there.
func TestDemotedWhileDownRestartsAsWorker(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Persistent: true})
	ctx := ctxT(t)
	leader := c.Leader()
	idx := 1
	if c.Node(idx) == leader {
		idx = 2
	}
	id := c.Node(idx).ID()
	c.Crash(idx)
	require.Eventually(t, func() bool { return stateOf(leader, id) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.DemoteNode(ctx, id))
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)

	n := c.Restart(idx)
	require.Eventually(t, func() bool { return n.Role() == swarm.RoleWorker }, waitFor, 10*time.Millisecond)
	require.Eventually(t, func() bool { return stateOf(leader, id) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "g", Image: "nginx", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "g"))
	require.Equal(t, 1, running(t, leader, "g")[id], "it runs tasks as a worker")
	require.True(t, hasVoters(leader, 2)())
}
