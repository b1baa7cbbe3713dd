package swarm_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runningSlots counts the running containers of each slot of service
// svcID in rt, by the slot label every container carries.
func runningSlots(rt *swarm.InmemRuntime, svcID string) map[string]int {
	out := map[string]int{}
	for _, c := range rt.Containers() {
		if !c.Running || c.ServiceID != svcID {
			continue
		}
		cfg, ok := rt.Config(c.ID)
		if !ok {
			continue
		}
		out[cfg.Labels[swarm.LabelTaskSlot]]++
	}
	return out
}

// A worker whose process stops answering (RPC handlers, heartbeats and
// agent loops blocked) while its listener still accepts and its gossip
// still answers is marked down by the heartbeat deadline and its tasks
// are replaced; released, it is ready again, stops the containers of the
// tasks that moved, and the service runs exactly its replicas.
func TestHungWorkerIsMarkedDownAndComesBack(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2,
		Runtime: func(string) swarm.Runtime { return rt }})
	ctx := ctxT(t)
	leader := c.Leader()
	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(6)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "web"))

	victim := c.Node(3) // worker-1
	victimID := victim.ID()
	moved := running(t, leader, "web")[victimID]
	require.NotZero(t, moved, "the worker should run some replicas")

	release := swarm.HangNode(victim)
	t.Cleanup(release)
	require.Eventually(t, func() bool { return nodeState(t, leader, victimID) == swarm.NodeDown }, waitFor, 10*time.Millisecond,
		"a hung worker whose kernel still accepts connections is marked down")
	require.Eventually(t, func() bool {
		per := running(t, leader, "web")
		return total(per) == 6 && per[victimID] == 0
	}, waitFor, 10*time.Millisecond, "its tasks run elsewhere")
	// Hung, it cannot have stopped its containers.
	require.Equal(t, moved, rt.Running(victimID))

	release()
	require.Eventually(t, func() bool { return nodeState(t, leader, victimID) == swarm.NodeReady }, waitFor, 10*time.Millisecond,
		"released, the worker is ready again")
	require.Eventually(t, func() bool { return rt.Running(victimID) == 0 }, waitFor, 10*time.Millisecond,
		"the worker stops the containers of the tasks that were moved")
	require.NoError(t, leader.WaitConverged(ctx, "web"))
	require.Equal(t, 6, rt.Running(""))
	slots := runningSlots(rt, svc.ID)
	require.Len(t, slots, 6)
	for slot, k := range slots {
		require.Equal(t, 1, k, "slot %s runs once", slot)
	}
	// The moved tasks ended as shutdown, reported by the worker itself.
	require.Eventually(t, func() bool {
		tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "web", Node: victimID})
		require.NoError(t, err)
		for _, tk := range tasks {
			if !tk.Status.State.Terminal() {
				return false
			}
		}
		return true
	}, waitFor, 10*time.Millisecond)
}

// A hung manager (a follower) is caught as a worker is: its Raft keeps
// the quorum, but its heartbeats stop and it does not answer pings.
func TestHungFollowerIsMarkedDown(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	leader := c.Leader()
	var victim *swarm.Node
	for _, m := range c.Managers() {
		if m != leader {
			victim = m
			break
		}
	}
	release := swarm.HangNode(victim)
	t.Cleanup(release)
	require.Eventually(t, func() bool { return nodeState(t, leader, victim.ID()) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	release()
	require.Eventually(t, func() bool { return nodeState(t, leader, victim.ID()) == swarm.NodeReady }, waitFor, 10*time.Millisecond)
}

// loadHost keeps every core busy and the garbage collector churning
// until the returned stop is called: a loaded host, in-process.
func loadHost(t *testing.T) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				for i := range 100_000 {
					x += i ^ x
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var keep [][]byte
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			// About 64 MiB/s of short-lived garbage and a live set that
			// keeps the collector marking.
			keep = append(keep, make([]byte, 64<<10))
			if len(keep) > 256 {
				keep = keep[:0]
			}
			if i%16 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// A loaded host (busy goroutines on every core, allocation churn) makes
// no node miss its heartbeat deadline: over several deadlines no node of
// a 3+2 cluster goes down.
func TestNoFalseNodeDownUnderLoad(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx := ctxT(t)
	_, err := c.Leader().CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(10)})
	require.NoError(t, err)
	require.NoError(t, c.Leader().WaitConverged(ctx, "web"))

	stop := loadHost(t)
	defer stop()
	deadline := swarm.DefaultLocalConfig().NodeHeartbeatTimeout
	anyDown := func() bool {
		for _, m := range c.Managers() {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			nodes, err := m.Nodes(qctx)
			cancel()
			if err != nil {
				continue // an election under load: not what is tested
			}
			for _, nd := range nodes {
				if nd.State != swarm.NodeReady {
					t.Logf("node %s (%s) is %s: %s", nd.Hostname, nd.ID, nd.State, nd.Message)
					return true
				}
			}
		}
		return false
	}
	assert.Never(t, anyDown, 6*deadline, 50*time.Millisecond, "no node goes down on a loaded host")
}
