package podman_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
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

func TestServiceLogsOnPodman(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := testCtx(t, 2*podWait)
	leader := pc.Leader()
	name := uniqueName("logs")
	spec := sleepSpec(name, 2)
	spec.Args = []string{"sh", "-c", "echo out-$(hostname); echo err-line >&2; exec sleep 3600"}
	spec.Placement.Constraints = nil
	svc, err := leader.CreateService(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, svc.ID))
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{Service: name, DesiredState: swarm.TaskRunning})
	require.NoError(t, err)
	require.Len(t, tasks, 2)

	// Every task's two lines, tagged with its node, service and task.
	var msgs []swarm.LogMessage
	require.Eventually(t, func() bool {
		msgs, err = collect(t, func(out chan<- swarm.LogMessage) error {
			return leader.ServiceLogs(ctx, name, swarm.LogOptions{Tail: -1, Timestamps: true}, out)
		})
		return err == nil && len(msgs) == 4
	}, podWait, 100*time.Millisecond, "got %v (%v)", msgs, err)
	byTask := map[string][]swarm.LogMessage{}
	for _, m := range msgs {
		byTask[m.TaskID] = append(byTask[m.TaskID], m)
		require.Equal(t, svc.ID, m.ServiceID)
		require.False(t, m.Time.IsZero())
	}
	for _, tk := range tasks {
		lines := byTask[tk.ID]
		require.Len(t, lines, 2, "task %s", tk.ID)
		for _, m := range lines {
			require.Equal(t, tk.NodeID, m.NodeID)
			if m.Stream == 1 {
				require.True(t, strings.HasPrefix(m.Line, "out-"), m.Line)
			} else {
				require.Equal(t, 2, m.Stream)
				require.Equal(t, "err-line", m.Line)
			}
		}
	}

	// Follow ends when the caller's context does.
	fctx, cancel := context.WithCancel(ctx)
	got := make(chan swarm.LogMessage, 16)
	done := make(chan error, 1)
	go func() { done <- leader.TaskLogs(fctx, tasks[0].ID, swarm.LogOptions{Follow: true, Tail: 1}, got) }()
	select {
	case m := <-got:
		require.Equal(t, tasks[0].ID, m.TaskID)
	case <-time.After(podWait):
		t.Fatal("no line from a followed task")
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(podWait):
		t.Fatal("TaskLogs did not return after its context ended")
	}

	_, err = collect(t, func(out chan<- swarm.LogMessage) error {
		return leader.TaskLogs(ctx, "nope", swarm.LogOptions{}, out)
	})
	require.ErrorIs(t, err, swarm.ErrNotFound)
}
