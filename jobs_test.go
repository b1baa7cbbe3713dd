package swarm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/stretchr/testify/require"
)

func TestReplicatedJob(t *testing.T) {
	c, rt := sharedCluster(t, 1, 2)
	rt.SetBehavior(func(cc swarm.ContainerConfig) swarm.InmemBehavior {
		if strings.HasPrefix(cc.Spec.Image, "batch") {
			return swarm.InmemBehavior{RunFor: 40 * time.Millisecond}
		}
		return swarm.InmemBehavior{}
	})
	ctx := ctxT(t)
	leader := c.Leader()
	s := sample(func() int { return rt.Running("") })
	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "job", Image: "batch", Mode: swarm.ReplicatedJob(3, 10)})
	require.NoError(t, err)
	require.NotNil(t, svc.JobStatus)
	require.Equal(t, uint64(1), svc.JobStatus.JobIteration)
	require.NoError(t, leader.WaitConverged(ctx, "job"))
	s.stop()
	require.LessOrEqual(t, s.max.Load(), int64(3), "never more than 3 at once")
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "job"})
	require.NoError(t, err)
	complete := 0
	for _, tk := range tasks {
		if tk.Status.State == swarm.TaskComplete {
			complete++
		}
	}
	require.Equal(t, 10, complete)
	// A completed job is not restarted.
	require.Never(t, func() bool { return rt.Running("") > 0 }, 200*time.Millisecond, 10*time.Millisecond)

	// ForceUpdate runs it again: a new iteration.
	cur, err := leader.Service(ctx, "job")
	require.NoError(t, err)
	spec := cur.Spec
	spec.ForceUpdate++
	require.NoError(t, leader.UpdateService(ctx, "job", cur.Version, spec))
	cur, err = leader.Service(ctx, "job")
	require.NoError(t, err)
	require.Equal(t, uint64(2), cur.JobStatus.JobIteration)
	require.NoError(t, leader.WaitConverged(ctx, "job"))
}

func TestGlobalJob(t *testing.T) {
	c, rt := sharedCluster(t, 1, 2)
	rt.SetBehavior(func(cc swarm.ContainerConfig) swarm.InmemBehavior {
		return swarm.InmemBehavior{RunFor: 20 * time.Millisecond}
	})
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "gj", Image: "batch", Mode: swarm.GlobalJob()})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "gj"))
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: "gj"})
	require.NoError(t, err)
	nodes := map[string]bool{}
	for _, tk := range tasks {
		require.Equal(t, swarm.TaskComplete, tk.Status.State)
		nodes[tk.NodeID] = true
	}
	require.Len(t, nodes, 3, "one completed task per node")
	require.Len(t, tasks, 3)
}

func TestJobValidation(t *testing.T) {
	c, _ := sharedCluster(t, 1, 0)
	ctx := ctxT(t)
	leader := c.Leader()
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "j", Image: "x", Mode: swarm.ReplicatedJob(1, 1),
		RestartPolicy: swarm.RestartPolicy{Condition: swarm.RestartAny}})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "j", Image: "x", Mode: swarm.ServiceMode{Kind: swarm.ModeGlobalJob, Replicas: 2}})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "j", Image: "x",
		UpdateConfig: &swarm.UpdateConfig{FailureAction: "explode"}})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "j", Image: "x",
		RollbackConfig: &swarm.UpdateConfig{FailureAction: swarm.UpdateActionRollback}})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
}

// Lowering a replicated job's MaxConcurrent starts a new iteration that
// honours it: the tasks started under the old bound do not run on.
func TestReplicatedJobMaxConcurrentLowered(t *testing.T) {
	c, rt := sharedCluster(t, 1, 2)
	ctx := ctxT(t)
	leader := c.Leader()
	// Inmem containers run until stopped: the job never completes here.
	_, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "job", Image: "batch", Mode: swarm.ReplicatedJob(5, 10)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rt.Running("") == 5 }, waitFor, 10*time.Millisecond)
	svc, err := leader.Service(ctx, "job")
	require.NoError(t, err)
	spec := svc.Spec
	spec.Mode = swarm.ReplicatedJob(2, 10)
	require.NoError(t, leader.UpdateService(ctx, "job", svc.Version, spec))
	require.Eventually(t, func() bool { return rt.Running("") == 2 }, waitFor, 10*time.Millisecond,
		"running: %d", rt.Running(""))
	after, err := leader.Service(ctx, "job")
	require.NoError(t, err)
	require.Equal(t, svc.JobStatus.JobIteration+1, after.JobStatus.JobIteration)
	require.Never(t, func() bool { return rt.Running("") > 2 }, 300*time.Millisecond, 10*time.Millisecond)
}
