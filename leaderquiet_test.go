package swarm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// DefaultLocalConfig's fast Raft timings cause no spurious elections: over
// a quiet period of a 3-manager cluster, with reads on the followers and
// writes on the leader going on, no manager's term moves and the leader
// stays the same. The window is an observation period, not a wait for
// something to happen.
func TestLeaderStableWhileQuiet(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	managers := c.Managers()
	require.Len(t, managers, 3)
	terms := map[string]uint64{}
	for _, m := range managers {
		st := m.RaftStatus()
		terms[m.ID()] = st.Term
		require.Equal(t, leader.ID(), st.LeaderID, "manager %s", m.ID())
	}
	window := 3 * time.Second
	for i, end := 0, time.Now().Add(window); time.Now().Before(end); i++ {
		if i%10 == 0 {
			_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: fmt.Sprintf("q%d", i), Image: "busybox", Mode: swarm.Replicated(1)})
			require.NoError(t, err)
		}
		for _, m := range managers {
			_, err := m.Services(ctx)
			require.NoError(t, err)
		}
	}
	for _, m := range managers {
		st := m.RaftStatus()
		require.Equal(t, terms[m.ID()], st.Term, "manager %s saw an election during the quiet period", m.ID())
		require.Equal(t, leader.ID(), st.LeaderID, "manager %s", m.ID())
	}
	require.True(t, leader.IsLeader())
}
