package swarm_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// benchEnvInt reads a size override (for quick runs), else def.
func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// countRunning counts the service's running tasks that want to run.
func countRunning(b testing.TB, n *swarm.Node, svc string) int {
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	require.NoError(b, err)
	c := 0
	for _, t := range tasks {
		if t.Status.State == swarm.TaskRunning {
			c++
		}
	}
	return c
}

// BenchmarkEndToEnd10kReplicas: 3 managers + 100 workers in one process,
// one service of 10,000 replicas on InmemRuntime, from CreateService until
// every task runs. Reports tasks/s.
func BenchmarkEndToEnd10kReplicas(b *testing.B) {
	workers := benchEnvInt("BENCH_WORKERS", 100)
	replicas := benchEnvInt("BENCH_REPLICAS", 10000)
	c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3, Workers: workers})
	leader := c.Leader()
	ctx := context.Background()
	// Warm up: one small service end to end, so the measured runs do not
	// pay for the 103 nodes' gossip still spreading the news of their joins.
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "warmup", Image: "nginx", Mode: swarm.Replicated(uint64(workers * 2))})
	require.NoError(b, err)
	require.NoError(b, leader.WaitConverged(ctx, "warmup"))
	require.NoError(b, leader.RemoveService(ctx, "warmup"))
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bulk%d", i)
		start := time.Now()
		_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: name, Image: "nginx", Mode: swarm.Replicated(uint64(replicas))})
		require.NoError(b, err)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		require.NoError(b, leader.WaitConverged(wctx, name))
		cancel()
		total += time.Since(start)
		b.StopTimer()
		require.Equal(b, replicas, countRunning(b, leader, name))
		require.NoError(b, leader.RemoveService(ctx, name))
		c.Eventually(func() error {
			ts, err := leader.Tasks(ctx, swarm.TaskFilter{Service: ""})
			if err != nil {
				return err
			}
			if len(ts) != 0 {
				return fmt.Errorf("%d tasks left", len(ts))
			}
			return nil
		}, 5*time.Minute)
		b.StartTimer()
	}
	b.ReportMetric(float64(replicas)*float64(b.N)/total.Seconds(), "tasks/s")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/service")
}

// reportSpread reports the median and the worst of the samples.
func reportSpread(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(samples[len(samples)/2].Seconds(), "s-median")
	b.ReportMetric(samples[len(samples)-1].Seconds(), "s-max")
}

// BenchmarkWorkerFailover: a worker is killed (Shutdown, a crash to its
// peers) with the default timings; measured until all its tasks run
// elsewhere. Swarm needs ~20 s.
func BenchmarkWorkerFailover(b *testing.B) {
	var samples []time.Duration
	defer func() { reportSpread(b, samples) }()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3, Workers: 3})
		leader := c.Leader()
		ctx := context.Background()
		_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(30)})
		require.NoError(b, err)
		require.NoError(b, leader.WaitConverged(ctx, "web"))
		victim := c.Node(4).ID()
		b.StartTimer()
		start := time.Now()
		c.Crash(4)
		for {
			tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "web", DesiredState: swarm.TaskRunning})
			require.NoError(b, err)
			ok := 0
			for _, t := range tasks {
				if t.Status.State == swarm.TaskRunning && t.NodeID != victim {
					ok++
				}
			}
			if ok == 30 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		c.Shutdown()
		b.StartTimer()
	}
}

// BenchmarkLeaderFailover: the leader is killed; measured until a write
// sent to another manager is accepted.
func BenchmarkLeaderFailover(b *testing.B) {
	var samples []time.Duration
	defer func() { reportSpread(b, samples) }()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3, Workers: 1})
		leader := c.Leader()
		ctx := context.Background()
		_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(3)})
		require.NoError(b, err)
		var other *swarm.Node
		for _, m := range c.Managers() {
			if m != leader {
				other = m
				break
			}
		}
		b.StartTimer()
		start := time.Now()
		leader.Shutdown()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		require.NoError(b, other.ScaleService(wctx, "web", 4))
		cancel()
		samples = append(samples, time.Since(start))
		b.StopTimer()
		c.Shutdown()
		b.StartTimer()
	}
}

// BenchmarkRollingUpdate1k: a 1,000-replica service on 3 managers + 100
// workers is updated (new image) at parallelism 100 with no monitor period
// or delay, so the figure is podswarm's own cost of ten update waves;
// measured from UpdateService until the update is completed.
func BenchmarkRollingUpdate1k(b *testing.B) {
	workers := benchEnvInt("BENCH_WORKERS", 100)
	replicas := benchEnvInt("BENCH_REPLICAS_UPDATE", 1000)
	c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3, Workers: workers})
	leader := c.Leader()
	ctx := context.Background()
	noMonitor := time.Duration(0)
	upd := &swarm.UpdateConfig{Parallelism: 100, Monitor: &noMonitor}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "roll", Image: "nginx:0", Mode: swarm.Replicated(uint64(replicas)), UpdateConfig: upd})
	require.NoError(b, err)
	require.NoError(b, leader.WaitConverged(ctx, "roll"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cur, err := leader.Service(ctx, "roll")
		require.NoError(b, err)
		spec := cur.Spec
		spec.Image = fmt.Sprintf("nginx:%d", i+1)
		require.NoError(b, leader.UpdateService(ctx, "roll", cur.Version, spec))
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		for {
			svc, err := leader.Service(wctx, "roll")
			require.NoError(b, err)
			if svc.UpdateStatus != nil && svc.UpdateStatus.State == swarm.UpdateCompleted && svc.SpecVersion == cur.SpecVersion+1 {
				break
			}
			require.NoError(b, wctx.Err())
			time.Sleep(time.Millisecond)
		}
		cancel()
	}
}
