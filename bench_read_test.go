package swarm_test

import (
	"context"
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// BenchmarkLinearizableRead: parallel Service reads (GOMAXPROCS×4
// goroutines) on the leader and on a follower of a 3-manager cluster.
// Every read is linearizable; concurrent reads share one confirmation
// round (VerifyLeader on the leader, a readIndex RPC from a follower).
func BenchmarkLinearizableRead(b *testing.B) {
	c := swarmtest.NewCluster(b, swarmtest.Options{Managers: 3})
	ctx := context.Background()
	leader := c.Leader()
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if m != leader {
			follower = m
		}
	}
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "web", Image: "nginx"})
	require.NoError(b, err)
	for _, tc := range []struct {
		name string
		n    *swarm.Node
	}{{"leader", leader}, {"follower", follower}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.n.Service(ctx, "web"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
