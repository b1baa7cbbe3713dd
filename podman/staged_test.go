package podman_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/podman"
	"github.com/podswarm/swarm/swarmtest"
)

// stagedRoot is where [podman.Runtime] stages secrets and configs.
const stagedRoot = "/dev/shm/podswarm"

// stagedFiles returns the staged files of a node's containers.
func stagedFiles(nodeID string) []string {
	files, _ := filepath.Glob(filepath.Join(stagedRoot, nodeID, "*", "*"))
	return files
}

// A process that dies between a container's create and its start leaves
// the container's secrets staged on the tmpfs: a new runtime leaves them
// while the container may still start, and PruneStaged (what a node's
// agent runs when it starts) removes them.
func TestPodmanStagedFilesPrunedAfterCrash(t *testing.T) {
	rt := podmanRuntime(t)
	ctx := testCtx(t, time.Minute)
	cc := testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "3600"}})
	cc.Secrets = []swarm.ContainerFile{{Name: "s", Path: "/run/secrets/s", Mode: 0o400, Data: []byte("plaintext-" + randHex(8))}}
	create(t, rt, cc)
	files := stagedFiles(cc.NodeID)
	require.Len(t, files, 1, "the secret is staged under the node's directory")
	data, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.Equal(t, cc.Secrets[0].Data, data)

	// The process dies here: a new runtime knows nothing of the file.
	rt2, err := podman.NewRuntime(ctx, rt.URI())
	require.NoError(t, err)
	t.Cleanup(func() { rt2.Close() })
	require.Len(t, stagedFiles(cc.NodeID), 1, "a created container may still start: its files stay")
	require.NoError(t, rt2.PruneStaged(cc.NodeID))
	require.Empty(t, stagedFiles(cc.NodeID))
	_, err = os.Stat(filepath.Join(stagedRoot, cc.NodeID))
	require.ErrorIs(t, err, os.ErrNotExist, "the node's staging directory is gone")

	// A container that started (here behind the runtime's back, so the
	// staged copy was not unlinked) needs its files no more: a new
	// runtime removes them.
	cc2 := testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "3600"}})
	cc2.Secrets = cc.Secrets
	id2 := create(t, rt, cc2)
	require.Len(t, stagedFiles(cc2.NodeID), 1)
	rt3, err := podman.NewRuntime(ctx, rt.URI())
	require.NoError(t, err)
	require.Len(t, stagedFiles(cc2.NodeID), 1)
	require.NoError(t, rt3.Start(ctx, id2))
	rt3.Close()
	require.Len(t, stagedFiles(cc2.NodeID), 1, "rt3 did not stage it, so it did not unlink it")
	rt4, err := podman.NewRuntime(ctx, rt.URI())
	require.NoError(t, err)
	rt4.Close()
	require.Empty(t, stagedFiles(cc2.NodeID), "a new runtime removes the files of a started container")
}

// holdStart is a Podman runtime whose Start blocks while hold is set, so
// a node can be crashed between a container's create and its start.
type holdStart struct {
	*podman.Runtime
	hold    atomic.Bool
	created atomic.Int32
}

func (h *holdStart) Create(ctx context.Context, c swarm.ContainerConfig) (string, error) {
	id, err := h.Runtime.Create(ctx, c)
	if err == nil {
		h.created.Add(1)
	}
	return id, err
}

func (h *holdStart) Start(ctx context.Context, id string) error {
	if h.hold.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Runtime.Start(ctx, id)
}

// newPodClusterWrap is newPodCluster with each node's runtime chosen by
// wrap, from the shared Podman runtime.
func newPodClusterWrap(t *testing.T, opts swarmtest.Options, wrap func(host string, rt *podman.Runtime) swarm.Runtime) *podCluster {
	t.Helper()
	rt := podmanRuntime(t)
	cli, err := exec.LookPath("podman")
	if err != nil {
		t.Skipf("no podman CLI: %v", err)
	}
	opts.Runtime = func(host string) swarm.Runtime { return wrap(host, rt) }
	pc := &podCluster{Cluster: swarmtest.NewCluster(t, opts), t: t, rt: rt, cli: cli}
	t.Cleanup(pc.reap)
	return pc
}

// A worker that crashes after creating a container with a secret and
// before starting it leaves the plaintext on the tmpfs; restarted from
// its DataDir, the node removes it before anything else, and the task
// then runs with no staged copy left.
func TestPodmanNodeRestartPrunesStagedSecrets(t *testing.T) {
	hs := &holdStart{}
	hs.hold.Store(true)
	pc := newPodClusterWrap(t, swarmtest.Options{Managers: 1, Workers: 1, Persistent: true},
		func(host string, rt *podman.Runtime) swarm.Runtime {
			if host != "worker-1" {
				return rt
			}
			hs.Runtime = rt
			return hs
		})
	ctx := testCtx(t, 2*time.Minute)
	leader := pc.Leader()
	secName := uniqueName("crashsec")
	value := []byte("plaintext-" + randHex(8))
	_, err := leader.CreateSecret(ctx, swarm.SecretSpec{Name: secName, Data: value})
	require.NoError(t, err)
	spec := sleepSpec(uniqueName("crashsvc"), 1)
	spec.Placement.Constraints = []string{"node.role==worker"}
	spec.Secrets = []swarm.SecretReference{{SecretName: secName, Target: swarm.FileTarget{Name: "s"}}}
	svc, err := leader.CreateService(ctx, spec)
	require.NoError(t, err)

	worker := 1
	id := pc.Node(worker).ID()
	pc.Eventually(func() error {
		if hs.created.Load() == 0 || len(stagedFiles(id)) == 0 {
			return fmt.Errorf("nothing staged for %s yet", id)
		}
		return nil
	}, podWait)
	leftover := stagedFiles(id)
	data, err := os.ReadFile(leftover[0])
	require.NoError(t, err)
	require.Equal(t, value, data, "the plaintext sits on the tmpfs between create and start")

	pc.Crash(worker)
	require.Equal(t, leftover, stagedFiles(id), "a crash leaves it there")
	hs.hold.Store(false)
	n := pc.Restart(worker)
	require.Equal(t, id, n.ID())
	for _, f := range leftover {
		_, err := os.Stat(f)
		require.ErrorIs(t, err, os.ErrNotExist, "the restarted node removed %s", f)
	}
	wctx, cancel := context.WithTimeout(ctx, podWait)
	require.NoError(t, leader.WaitConverged(wctx, svc.ID), describe(pc.podTasks(ctx, svc.ID)))
	cancel()
	pc.Eventually(func() error {
		if f := stagedFiles(id); len(f) != 0 {
			return fmt.Errorf("still staged: %v", f)
		}
		return nil
	}, podWait)
	require.NoError(t, leader.RemoveService(ctx, svc.ID))
	pc.waitContainers(svc.ID, 0)
}
