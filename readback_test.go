package swarm_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// A create that committed reports success even when a concurrent remove
// wins the read-back that fills in the returned object.
func TestCreateRacingRemoveReportsSuccess(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3})
	ctx := ctxT(t)
	m := c.Leader()
	// racingRemove removes name as soon as it exists, to race the create's
	// read-back; the returned channel closes once it has.
	racingRemove := func(remove func(context.Context, string) error, name string) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil && remove(ctx, name) != nil {
			}
		}()
		return done
	}
	for i := range 30 {
		name := fmt.Sprintf("racy-%d", i)
		removed := racingRemove(m.RemoveService, name)
		svc, err := m.CreateService(ctx, swarm.ServiceSpec{Name: name, Image: "x", Mode: swarm.Replicated(0)})
		require.NoError(t, err, "create of service %s committed", name)
		require.Equal(t, name, svc.Spec.Name)
		require.NotZero(t, svc.Version)
		<-removed

		removed = racingRemove(m.RemoveSecret, name)
		sec, err := m.CreateSecret(ctx, swarm.SecretSpec{Name: name, Data: []byte("s")})
		require.NoError(t, err, "create of secret %s committed", name)
		require.Equal(t, name, sec.Spec.Name)
		<-removed
	}
}
