package swarm_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssBytes is the process's resident set (VmRSS), or 0.
func rssBytes() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// progress prints a benchmark's phases as they happen with BENCH_VERBOSE=1
// (a 1,000-node run takes minutes).
func progress(format string, args ...any) {
	if os.Getenv("BENCH_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

func heapBytes() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}

// BenchmarkInmemScale: 3 managers + N workers on swarmtest's in-memory
// network (no sockets), one service of R replicas on InmemRuntime from
// CreateService until every task runs. Sizes: BENCH_SCALE="100x10000,300x10000,1000x10000,1000x100000"
// (workers x replicas; the default is the first three). Reports, besides
// the time to converge, the time to join the workers, the process's CPU
// time while converging and while idle (every node of the cluster is in
// this process: it is the control plane's CPU, the leader's share shown by
// -cpuprofile), and its heap and RSS once converged.
func BenchmarkInmemScale(b *testing.B) {
	sizes := os.Getenv("BENCH_SCALE")
	if sizes == "" {
		sizes = "100x10000,300x10000,1000x10000"
	}
	for _, s := range strings.Split(sizes, ",") {
		var workers, replicas int
		if _, err := fmt.Sscanf(s, "%dx%d", &workers, &replicas); err != nil {
			b.Fatalf("BENCH_SCALE %q: %v", s, err)
		}
		b.Run(fmt.Sprintf("workers=%d/replicas=%d", workers, replicas), func(b *testing.B) {
			benchInmemScale(b, workers, replicas)
		})
	}
}

func benchInmemScale(b *testing.B, workers, replicas int) {
	start := time.Now()
	opts := swarmtest.Options{Managers: 3, Workers: workers, Network: swarmtest.InmemNetwork}
	if os.Getenv("BENCH_GOSSIP_LAN") != "" {
		// memberlist's DefaultLANConfig timings instead of the fast
		// failure detection of the presets.
		opts.Config = func(_ string, cfg *swarm.Config) {
			cfg.GossipProbeInterval, cfg.GossipProbeTimeout = time.Second, 500*time.Millisecond
			cfg.GossipInterval, cfg.GossipSuspicionMult = 200*time.Millisecond, 4
		}
	}
	c := swarmtest.NewCluster(b, opts)
	joined := time.Since(start)
	progress("joined %d workers in %v", workers, joined)
	leader := c.Leader()
	ctx := context.Background()
	// Idle cost: heartbeats, gossip, sessions of N+3 nodes for 2 s.
	cpu0 := cpuTime()
	time.Sleep(2 * time.Second) // measuring idle CPU over a fixed window
	idle := (cpuTime() - cpu0).Seconds() / 2
	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bulk%d", i)
		t0, c0 := time.Now(), cpuTime()
		_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: name, Image: "nginx", Mode: swarm.Replicated(uint64(replicas))})
		require.NoError(b, err)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		require.NoError(b, leader.WaitConverged(wctx, name))
		cancel()
		total += time.Since(t0)
		progress("converged %d replicas in %v", replicas, time.Since(t0))
		cpu += cpuTime() - c0
		b.StopTimer()
		require.Equal(b, replicas, countRunning(b, leader, name))
		if i == b.N-1 {
			b.ReportMetric(heapBytes()/(1<<20), "heap-MiB")
			b.ReportMetric(rssBytes()/(1<<20), "rss-MiB")
		}
		require.NoError(b, leader.RemoveService(ctx, name))
		c.Eventually(func() error {
			ts, err := leader.Tasks(ctx, swarm.TaskFilter{})
			if err != nil {
				return err
			}
			if len(ts) != 0 {
				return fmt.Errorf("%d tasks left", len(ts))
			}
			return nil
		}, 10*time.Minute)
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-converge")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s-converge")
	b.ReportMetric(idle, "cpu-cores-idle")
	b.ReportMetric(joined.Seconds(), "s-join")
	b.ReportMetric(0, "ns/op")
}
