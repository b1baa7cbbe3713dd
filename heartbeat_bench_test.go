package swarm_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// hungTarget is what one detection measurement needs: a manager to watch
// and a way to make a worker stop answering and come back.
type hungTarget struct {
	mgr      *swarm.Node
	workers  []string // node IDs
	stop     func(i int)
	resume   func(i int)
	replicas int
}

func (h *hungTarget) state(id string) swarm.NodeState {
	info, err := h.mgr.Node(context.Background(), id)
	if err != nil {
		return ""
	}
	return info.State
}

func (h *hungTarget) runningOn() map[string]int {
	tasks, err := h.mgr.Tasks(context.Background(), swarm.TaskFilter{Service: "web", DesiredState: swarm.TaskRunning})
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, tk := range tasks {
		if tk.Status.State == swarm.TaskRunning {
			out[tk.NodeID]++
		}
	}
	return out
}

// measure stops the worker running the most replicas and returns the
// times to its node being down and to all replicas running elsewhere;
// then it resumes the worker and waits for the swarm to settle.
func (h *hungTarget) measure(b *testing.B) (down, moved time.Duration) {
	per := h.runningOn()
	victim := 0
	for i, id := range h.workers {
		if per[id] > per[h.workers[victim]] {
			victim = i
		}
	}
	id := h.workers[victim]
	tick := time.NewTicker(5 * time.Millisecond) // the measurement's resolution
	defer tick.Stop()
	start := time.Now()
	h.stop(victim)
	for ; moved == 0; <-tick.C {
		if down == 0 && h.state(id) == swarm.NodeDown {
			down = time.Since(start)
		}
		if per := h.runningOn(); down != 0 && per[id] == 0 && total(per) == h.replicas {
			moved = time.Since(start)
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("worker %s: not detected within a minute (down after %v)", id, down)
		}
	}
	h.resume(victim)
	require.Eventually(b, func() bool { return h.state(id) == swarm.NodeReady }, time.Minute, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(b, h.mgr.WaitConverged(ctx, "web"))
	return down, moved
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func runDetection(b *testing.B, h *hungTarget) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := h.mgr.CreateService(ctx, webOnWorkers(uint64(h.replicas)))
	require.NoError(b, err)
	require.NoError(b, h.mgr.WaitConverged(ctx, "web"))
	var downs, moves []time.Duration
	b.ResetTimer()
	for range b.N {
		d, m := h.measure(b)
		downs, moves = append(downs, d), append(moves, m)
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(median(downs))/1e6, "ms-to-down")
	b.ReportMetric(float64(median(moves))/1e6, "ms-to-moved")
}

// BenchmarkHungWorkerDetection measures, with DefaultConfig timings, the
// time from a worker ceasing to answer to its node being down
// (ms-to-down) and to all its tasks running elsewhere (ms-to-moved),
// medians over b.N stops. sigstop: swarmd worker processes stopped with
// SIGSTOP (gossip stops too); hang: in-process workers under the hang
// hook (gossip still answers: only the heartbeat deadline catches it).
func BenchmarkHungWorkerDetection(b *testing.B) {
	b.Run("sigstop", func(b *testing.B) {
		pc := newProcCluster(b, 2)
		h := &hungTarget{mgr: pc.mgr, replicas: 4,
			stop:   func(i int) { pc.workers[i].signal(b, syscall.SIGSTOP) },
			resume: func(i int) { pc.workers[i].signal(b, syscall.SIGCONT) }}
		for _, w := range pc.workers {
			h.workers = append(h.workers, w.id)
		}
		runDetection(b, h)
	})
	b.Run("hang", func(b *testing.B) {
		def := swarm.DefaultConfig()
		c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 1, Workers: 2,
			Config: func(_ string, cfg *swarm.Config) {
				cfg.NodeHeartbeatPeriod, cfg.NodeHeartbeatTimeout = def.NodeHeartbeatPeriod, def.NodeHeartbeatTimeout
				cfg.HeartbeatTimeout, cfg.ElectionTimeout = def.HeartbeatTimeout, def.ElectionTimeout
				cfg.GossipProbeInterval, cfg.GossipProbeTimeout = def.GossipProbeInterval, def.GossipProbeTimeout
				cfg.GossipInterval, cfg.GossipSuspicionMult = def.GossipInterval, def.GossipSuspicionMult
				cfg.RPCTimeout = def.RPCTimeout
			}})
		releases := map[int]func(){}
		h := &hungTarget{mgr: c.Leader(), replicas: 4,
			stop:   func(i int) { releases[i] = swarm.HangNode(c.Node(1 + i)) },
			resume: func(i int) { releases[i]() }}
		for i := 1; i <= 2; i++ {
			h.workers = append(h.workers, c.Node(i).ID())
		}
		runDetection(b, h)
	})
}
