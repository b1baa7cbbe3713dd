package podman_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
)

// stubbornSpec is a service of busybox sleep as PID 1 without an init: it
// ignores SIGTERM, so every stop waits out the whole grace period before
// Podman kills it. grace nil keeps Swarm's default of 10 s.
func stubbornSpec(name string, replicas uint64, grace *time.Duration) swarm.ServiceSpec {
	return swarm.ServiceSpec{
		Name: name, Image: testImage, Args: []string{"sleep", "3600"},
		Mode: swarm.Replicated(replicas), StopGracePeriod: grace,
	}
}

// leakReplicas is the replica count of the RemoveService leak tests;
// SWARM_LEAK_REPLICAS overrides it (the report used 50).
func leakReplicas(t *testing.T) uint64 {
	if v := os.Getenv("SWARM_LEAK_REPLICAS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "SWARM_LEAK_REPLICAS")
		return n
	}
	return 20
}

// Removing a service whose containers ignore SIGTERM leaves no container
// behind, with a short stop grace and with Swarm's default of 10 s: every
// stop waits for the grace, the tasks are deleted as their stops end, and
// each agent must still remove every container it made.
func TestPodmanRemoveServiceLeavesNoContainers(t *testing.T) {
	short := time.Second
	for _, tc := range []struct {
		name  string
		grace *time.Duration
	}{{"grace1s", &short}, {"defaultGrace", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Log: os.Getenv("SWARM_LEAK_LOG") != ""})
			n := leakReplicas(t)
			ctx := testCtx(t, 4*time.Minute)
			leader := pc.Leader()
			svc, err := leader.CreateService(ctx, stubbornSpec(uniqueName("pcleak"), n, tc.grace))
			require.NoError(t, err)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			require.NoError(t, leader.WaitConverged(wctx, svc.ID), "tasks: %s", describe(pc.podTasks(ctx, svc.ID)))
			cancel()
			pc.waitContainers(svc.ID, int(n))

			start := time.Now()
			require.NoError(t, leader.RemoveService(ctx, svc.ID))
			grace := 10 * time.Second
			if tc.grace != nil {
				grace = *tc.grace
			}
			// Every stop waits out the grace; the agents remove the
			// containers as their stops end.
			pc.Eventually(func() error {
				list, err := pc.ps(svc.ID)
				if err != nil {
					return err
				}
				if len(list) != 0 {
					states := map[string]int{}
					for _, e := range list {
						states[e.State]++
					}
					return fmt.Errorf("%d containers of the removed service left: %v", len(list), states)
				}
				return nil
			}, grace+podWait+time.Minute)
			t.Logf("%d containers gone %v after RemoveService", n, time.Since(start).Round(100*time.Millisecond))
			pc.Eventually(func() error {
				tasks, err := leader.Tasks(ctx, swarm.TaskFilter{})
				if err != nil {
					return err
				}
				for _, tk := range tasks {
					if tk.ServiceID == svc.ID {
						return fmt.Errorf("task %s of the removed service is still there", tk.ID)
					}
				}
				return nil
			}, podWait)
		})
	}
}
