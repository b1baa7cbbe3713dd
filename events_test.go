package swarm_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// follower returns a manager of c that is not the leader.
func follower(t *testing.T, c *swarmtest.Cluster) *swarm.Node {
	t.Helper()
	leader := c.Leader()
	for _, m := range c.Managers() {
		if m != leader {
			return m
		}
	}
	t.Fatal("no follower manager")
	return nil
}

// collectEvents reads events from ch until done says the events so far are
// enough; it fails the test on a timeout, a closed channel or an Err event.
func collectEvents(t *testing.T, ch <-chan swarm.Event, done func([]swarm.Event) bool) []swarm.Event {
	t.Helper()
	var evs []swarm.Event
	timeout := time.After(waitFor)
	for !done(evs) {
		select {
		case e, ok := <-ch:
			require.True(t, ok, "event channel closed early after %d events", len(evs))
			require.NoError(t, e.Err)
			evs = append(evs, e)
		case <-timeout:
			t.Fatalf("timed out after %d events: %v", len(evs), evs)
		}
	}
	return evs
}

// eventsOf keeps the events of one object type (and object ID, if set).
func eventsOf(evs []swarm.Event, typ swarm.EventType, id string) []swarm.Event {
	var out []swarm.Event
	for _, e := range evs {
		if e.Type == typ && (id == "" || e.ID == id) {
			out = append(out, e)
		}
	}
	return out
}

// requireCommitOrder checks that events come in (Index, Seq) order without
// repeats.
func requireCommitOrder(t *testing.T, evs []swarm.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		a, b := evs[i-1], evs[i]
		require.True(t, a.Index < b.Index || (a.Index == b.Index && a.Seq < b.Seq),
			"event %d (%d/%d) after event %d (%d/%d)", i, b.Index, b.Seq, i-1, a.Index, a.Seq)
	}
}

// A follower manager streams a service's whole life in commit order:
// service create/update/remove, task create, state changes and removal.
// Resuming from the middle on another manager gives exactly the rest.
func TestEventsServiceLifecycle(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 1})
	ctx := ctxT(t)
	leader, fol := c.Leader(), follower(t, c)
	ch, err := fol.Events(ctx, 0)
	require.NoError(t, err)

	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.NoError(t, fol.ScaleService(ctx, "web", 3))
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.NoError(t, leader.RemoveService(ctx, "web"))

	// Until the service is gone and every task it had is deleted.
	evs := collectEvents(t, ch, func(evs []swarm.Event) bool {
		created, removed := map[string]bool{}, map[string]bool{}
		svcRemoved := false
		for _, e := range evs {
			switch {
			case e.Type == swarm.EventService && e.Action == swarm.ActionRemove:
				svcRemoved = true
			case e.Type == swarm.EventTask && e.Action == swarm.ActionCreate:
				created[e.ID] = true
			case e.Type == swarm.EventTask && e.Action == swarm.ActionRemove:
				removed[e.ID] = true
			}
		}
		return svcRemoved && len(created) >= 3 && len(removed) == len(created)
	})
	requireCommitOrder(t, evs)

	svcEvs := eventsOf(evs, swarm.EventService, svc.ID)
	require.GreaterOrEqual(t, len(svcEvs), 3)
	assert.Equal(t, swarm.ActionCreate, svcEvs[0].Action)
	assert.Equal(t, swarm.ActionRemove, svcEvs[len(svcEvs)-1].Action)
	var scaled bool
	for _, e := range svcEvs {
		assert.Equal(t, "web", e.Name)
		assert.False(t, e.Time.IsZero())
		if e.Action == swarm.ActionUpdate && e.Attributes["replicas.old"] == "2" && e.Attributes["replicas.new"] == "3" {
			scaled = true
		}
	}
	assert.True(t, scaled, "a service update event for the scale: %v", svcEvs)

	// Every task: created after the service, then its states in Swarm's
	// order (running among them), then removed after the service removal.
	svcCreated, svcRemoved := svcEvs[0].Index, svcEvs[len(svcEvs)-1].Index
	byTask := map[string][]swarm.Event{}
	for _, e := range eventsOf(evs, swarm.EventTask, "") {
		require.Equal(t, svc.ID, e.ServiceID)
		require.True(t, strings.HasPrefix(e.Name, "web."), e.Name)
		byTask[e.ID] = append(byTask[e.ID], e)
	}
	require.GreaterOrEqual(t, len(byTask), 3)
	for id, tes := range byTask {
		require.Equal(t, swarm.ActionCreate, tes[0].Action, id)
		require.Greater(t, tes[0].Index, svcCreated)
		require.Equal(t, swarm.ActionRemove, tes[len(tes)-1].Action, id)
		require.Greater(t, tes[len(tes)-1].Index, svcRemoved)
		prev, sawRunning, sawDesired := swarm.TaskState(tes[0].State), false, false
		for _, e := range tes[1 : len(tes)-1] {
			switch e.Action {
			case swarm.ActionState:
				st := swarm.TaskState(e.State)
				require.Equal(t, string(prev), e.Attributes["state.old"], "task %s", id)
				require.True(t, prev.Before(st), "task %s: %s -> %s", id, prev, st)
				prev = st
				sawRunning = sawRunning || st == swarm.TaskRunning
			case swarm.ActionUpdate:
				sawDesired = sawDesired || e.Attributes["desiredstate.new"] == string(swarm.TaskRemove)
			default:
				t.Fatalf("task %s: unexpected %s event", id, e.Action)
			}
			require.NotEmpty(t, e.NodeID, "task %s", id)
		}
		assert.True(t, sawRunning, "task %s never reported running: %v", id, tes)
		assert.True(t, sawDesired, "task %s never asked to stop: %v", id, tes)
	}

	// Resume on another manager from the middle: exactly the rest, equal
	// event for event (every manager derives the same events).
	mid := evs[len(evs)/2].Index
	var rest []swarm.Event
	for _, e := range evs {
		if e.Index > mid {
			rest = append(rest, e)
		}
	}
	require.NotEmpty(t, rest)
	again, err := leader.Events(ctx, mid)
	require.NoError(t, err)
	got := collectEvents(t, again, func(got []swarm.Event) bool { return len(got) == len(rest) })
	for i := range rest {
		require.True(t, rest[i].Time.Equal(got[i].Time), "event %d", i)
		got[i].Time = rest[i].Time
	}
	require.Equal(t, rest, got)
}

// An index older than what a manager holds fails with ErrEventsTruncated:
// here the events from before a restart that restored a snapshot.
func TestEventsTooOldIndex(t *testing.T) {
	var mu sync.Mutex
	dataDirs := map[string]string{}
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Persistent: true, Config: func(host string, cfg *swarm.Config) {
		cfg.SnapshotThreshold = 4
		cfg.SnapshotInterval = 20 * time.Millisecond
		mu.Lock()
		dataDirs[host] = cfg.DataDir
		mu.Unlock()
	}})
	// Stop Raft's snapshotting before the TempDirs go (cleanups run last
	// registered first, and NewCluster registers its Shutdown before them).
	t.Cleanup(c.Shutdown)
	ctx := ctxT(t)
	leader := c.Leader()
	idx := 1
	if c.Node(1) == leader {
		idx = 2
	}
	fol := c.Node(idx)
	info, err := fol.Info(ctx)
	require.NoError(t, err)
	host := ""
	nodes, err := leader.Nodes(ctx)
	require.NoError(t, err)
	for _, nd := range nodes {
		if nd.ID == info.NodeID {
			host = nd.Hostname
		}
	}
	ch, err := fol.Events(ctx, 0)
	require.NoError(t, err)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx"})
	require.NoError(t, err)
	first := collectEvents(t, ch, func(evs []swarm.Event) bool { return len(evs) > 0 })[0]
	require.Equal(t, swarm.EventService, first.Type)

	// Enough entries for snapshots, then wait for the follower to take one.
	for r := uint64(2); r <= 6; r++ {
		require.NoError(t, leader.ScaleService(ctx, "web", r))
	}
	mu.Lock()
	snaps := filepath.Join(dataDirs[host], "snapshots")
	mu.Unlock()
	// A snapshot that covers the service's creation: an earlier one (of
	// the joins) would let the restart replay the create from the log.
	web, err := leader.Service(ctx, "web")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ents, _ := os.ReadDir(snaps)
		for _, e := range ents {
			// hashicorp/raft names snapshots term-index-millis.
			parts := strings.Split(e.Name(), "-")
			if len(parts) == 3 {
				if i, err := strconv.ParseUint(parts[1], 10, 64); err == nil && i >= web.Version {
					return true
				}
			}
		}
		return false
	}, waitFor, 10*time.Millisecond, "no snapshot at or after index %d in %s", web.Version, snaps)

	// Still held before the restart...
	ok, err := fol.Events(ctx, first.Index-1)
	require.NoError(t, err)
	got := collectEvents(t, ok, func(evs []swarm.Event) bool { return len(evs) > 0 })
	assert.Equal(t, first.Index, got[0].Index)

	// ...but not after it: the restarted manager starts from its snapshot.
	n := c.Restart(idx)
	_, err = n.Events(ctx, first.Index-1)
	require.ErrorIs(t, err, swarm.ErrEventsTruncated)
	// From now on works, and sees new changes.
	live, err := n.Events(ctx, 0)
	require.NoError(t, err)
	require.NoError(t, leader.ScaleService(ctx, "web", 1))
	got = collectEvents(t, live, func(evs []swarm.Event) bool {
		return len(eventsOf(evs, swarm.EventService, "")) > 0
	})
	svcEvs := eventsOf(got, swarm.EventService, "")
	assert.Equal(t, "1", svcEvs[0].Attributes["replicas.new"])
	// Let the orchestrator go idle before the shutdown: a Raft Apply in
	// flight at shutdown can block forever (hashicorp/raft#498), more so
	// with this test's snapshot cadence.
	require.NoError(t, leader.WaitConverged(ctx, "web"))
}

// The channel closes when the context ends or the node shuts down, and no
// goroutine stays behind.
func TestEventsCloseAndNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 2, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	fol := follower(t, c)

	cctx, cancel := context.WithCancel(ctx)
	cancelled, err := fol.Events(cctx, 0)
	require.NoError(t, err)
	// Subscribers that never read and one that reads.
	idle, err := leader.Events(ctx, 0)
	require.NoError(t, err)
	_, err = fol.Events(ctx, 0)
	require.NoError(t, err)
	reading, err := leader.Events(ctx, 0)
	require.NoError(t, err)

	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(4)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	collectEvents(t, reading, func(evs []swarm.Event) bool { return len(evs) >= 5 })

	cancel()
	requireClosed(t, cancelled)

	// Workers have no events; a shut-down node refuses.
	_, err = c.Node(2).Events(ctx, 0)
	require.ErrorIs(t, err, swarm.ErrNotManager)

	c.Shutdown()
	requireClosed(t, idle)
	requireClosed(t, reading)
	_, err = leader.Events(ctx, 0)
	require.ErrorIs(t, err, swarm.ErrShutdown)
	goleak.VerifyNone(t, ignore)
}

// requireClosed drains ch until it is closed.
func requireClosed(t *testing.T, ch <-chan swarm.Event) {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("event channel not closed")
		}
	}
}
