package swarm_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
)

// The lifecycle benchmarks time how long an in-process cluster takes to
// accept writes, with DefaultLocalConfig's in-process timings ("local")
// and, side by side in the same run, with DefaultConfig's LAN Raft and
// gossip timings ("lan", what DefaultLocalConfig used before). Each
// reports the median of its iterations as ms/ready; run them with
// -benchtime Nx.

// lanTimings gives cfg DefaultConfig's Raft and gossip timings.
func lanTimings(cfg *swarm.Config) {
	d := swarm.DefaultConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = d.HeartbeatTimeout, d.ElectionTimeout
	cfg.LeaderLeaseTimeout, cfg.CommitTimeout = d.LeaderLeaseTimeout, d.CommitTimeout
	cfg.GossipProbeInterval, cfg.GossipProbeTimeout = d.GossipProbeInterval, d.GossipProbeTimeout
	cfg.GossipInterval, cfg.GossipSuspicionMult = d.GossipInterval, d.GossipSuspicionMult
	cfg.NodeHeartbeatPeriod, cfg.NodeHeartbeatTimeout = d.NodeHeartbeatPeriod, d.NodeHeartbeatTimeout
}

var benchTimings = []struct {
	name string
	set  func(*swarm.Config)
}{
	{"lan", lanTimings},
	{"local", func(*swarm.Config) {}},
}

// benchReady runs once per iteration and reports the median of what it
// measured (each call returns the time until the cluster took a write).
func benchReady(b *testing.B, once func(b *testing.B, set func(*swarm.Config)) time.Duration) {
	for _, tm := range benchTimings {
		b.Run("timings="+tm.name, func(b *testing.B) {
			var ds []time.Duration
			for i := 0; i < b.N; i++ {
				ds = append(ds, once(b, tm.set))
			}
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "ms/ready")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// firstWrite makes one replicated write on n.
func firstWrite(b *testing.B, n *swarm.Node, i int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.CreateService(ctx, swarm.ServiceSpec{Name: fmt.Sprintf("w%d", i), Image: "busybox", Mode: swarm.Replicated(0)}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkInitSingle times one DefaultLocalConfig node from Init to its
// first accepted write.
func BenchmarkInitSingle(b *testing.B) {
	benchReady(b, func(b *testing.B, set func(*swarm.Config)) time.Duration {
		cfg := swarm.DefaultLocalConfig()
		set(&cfg)
		start := time.Now()
		n := swarm.NewNode(cfg)
		if err := n.Init(); err != nil {
			b.Fatal(err)
		}
		firstWrite(b, n, 0)
		d := time.Since(start)
		n.Shutdown()
		return d
	})
}

// BenchmarkThreeManagersReady times three managers (Init, then two
// Joins) until the swarm takes a write.
func BenchmarkThreeManagersReady(b *testing.B) {
	benchReady(b, func(b *testing.B, set func(*swarm.Config)) time.Duration {
		start := time.Now()
		nodes := make([]*swarm.Node, 0, 3)
		defer func() {
			for _, n := range nodes {
				n.Shutdown()
			}
		}()
		cfg := swarm.DefaultLocalConfig()
		set(&cfg)
		lead := swarm.NewNode(cfg)
		nodes = append(nodes, lead)
		if err := lead.Init(); err != nil {
			b.Fatal(err)
		}
		tok, err := lead.JoinToken(swarm.RoleManager)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			c := swarm.DefaultLocalConfig()
			set(&c)
			c.JoinToken = tok
			n := swarm.NewNode(c)
			nodes = append(nodes, n)
			if err := n.Join(lead.Addr()); err != nil {
				b.Fatal(err)
			}
		}
		firstWrite(b, nodes[2], 0)
		return time.Since(start)
	})
}

// BenchmarkSwarmtest3Plus2 times swarmtest.NewCluster with 3 managers and
// 2 workers (every node ready) until the swarm takes a write.
func BenchmarkSwarmtest3Plus2(b *testing.B) {
	benchReady(b, func(b *testing.B, set func(*swarm.Config)) time.Duration {
		start := time.Now()
		c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3, Workers: 2,
			Config: func(_ string, cfg *swarm.Config) { set(cfg) }})
		firstWrite(b, c.Leader(), 0)
		d := time.Since(start)
		c.Shutdown()
		return d
	})
}
