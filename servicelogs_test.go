package swarm_test

import (
	"sync"
	"testing"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// collect gathers log messages until the producer returns.
func collect(t *testing.T, produce func(out chan<- swarm.LogMessage) error) ([]swarm.LogMessage, error) {
	t.Helper()
	out := make(chan swarm.LogMessage)
	var (
		msgs []swarm.LogMessage
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := range out {
			msgs = append(msgs, m)
		}
	}()
	err := produce(out)
	close(out)
	wg.Wait()
	return msgs, err
}

func TestLogsNeedALogRuntime(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "quiet", Image: "nginx"})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "quiet"))
	_, err = collect(t, func(out chan<- swarm.LogMessage) error {
		return leader.ServiceLogs(ctx, "quiet", swarm.LogOptions{Tail: -1}, out)
	})
	require.ErrorContains(t, err, "keeps no logs")
}
