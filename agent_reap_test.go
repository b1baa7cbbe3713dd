package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
)

// flakyRemove is an in-memory runtime whose Remove fails the first
// failures times for each container, as a loaded Podman's calls run out of
// time.
type flakyRemove struct {
	*swarm.InmemRuntime
	failures int
	mu       sync.Mutex
	tries    map[string]int
}

func (f *flakyRemove) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	f.tries[id]++
	n := f.tries[id]
	f.mu.Unlock()
	if n <= f.failures {
		return fmt.Errorf("remove container %s: %w", id, context.DeadlineExceeded)
	}
	return f.InmemRuntime.Remove(ctx, id)
}

// removeTries returns the most Remove calls one container took.
func (f *flakyRemove) removeTries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	most := 0
	for _, n := range f.tries {
		most = max(most, n)
	}
	return most
}

// containersOf counts the runtime's containers of a service.
func containersOf(rt *swarm.InmemRuntime, serviceID string) int {
	n := 0
	for _, c := range rt.Containers() {
		if c.ServiceID == serviceID {
			n++
		}
	}
	return n
}

// A removal that fails is retried until the container is gone: nothing is
// left after RemoveService even when every Remove fails twice first.
func TestRemoveServiceRetriesFailedRemovals(t *testing.T) {
	rt := &flakyRemove{InmemRuntime: swarm.NewInmemRuntime(), failures: 2, tries: map[string]int{}}
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2,
		Runtime: func(string) swarm.Runtime { return rt }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader()
	svc, err := leader.CreateService(ctx, swarm.ServiceSpec{Name: "flaky", Image: "busybox", Mode: swarm.Replicated(12)})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, svc.ID))
	require.Equal(t, 12, containersOf(rt.InmemRuntime, svc.ID))
	require.NoError(t, leader.RemoveService(ctx, svc.ID))
	c.Eventually(func() error {
		if n := containersOf(rt.InmemRuntime, svc.ID); n != 0 {
			return fmt.Errorf("%d containers of the removed service left", n)
		}
		return nil
	}, 30*time.Second)
	require.Equal(t, 3, rt.removeTries(), "each removal was retried after its failures")
}

// A container of the node that no task needs and the agent never heard of
// (a create that timed out on the caller's side after the runtime made
// it) is found by the periodic sweep and removed.
func TestAgentSweepsUnknownContainers(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Runtime: func(string) swarm.Runtime { return rt }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := c.Leader()
	svc, err := n.CreateService(ctx, swarm.ServiceSpec{Name: "kept", Image: "busybox", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, svc.ID))
	orphan, err := rt.Create(ctx, swarm.ContainerConfig{Name: "orphan.1.x", NodeID: n.ID(), ServiceID: "gone", TaskID: "x",
		Spec:   swarm.ServiceSpec{Image: "busybox"},
		Labels: map[string]string{swarm.LabelNodeID: n.ID(), swarm.LabelServiceID: "gone", swarm.LabelTaskID: "x"}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(ctx, orphan))
	c.Eventually(func() error {
		if _, ok := rt.Container(orphan); ok {
			return errors.New("the unknown container is still there")
		}
		return nil
	}, 30*time.Second)
	require.Equal(t, 2, containersOf(rt, svc.ID), "the service's own containers are kept")
	require.Equal(t, 2, rt.Running(n.ID()))
}
