package podman_test

// Cluster-level tests against the real rootless Podman: in-process swarms
// whose nodes all share one *podman.Runtime (one API socket), running
// real containers of localhost/podswarm/busybox:latest (scripts/setup.sh
// builds it). They skip without Podman (and with -short) unless
// SWARM_REQUIRE_PODMAN=1, see podmanRuntime in runtime_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/podman"
	"github.com/podswarm/swarm/swarmtest"
)

// podWait bounds the waits for real containers: image lookup, create and
// start take a few hundred milliseconds each, more under -race on 2 CPUs.
const podWait = 30 * time.Second

// podCluster is an in-process swarm whose nodes share one Podman runtime.
type podCluster struct {
	*swarmtest.Cluster
	t   *testing.T
	rt  *podman.Runtime
	cli string // the podman CLI
}

// newPodCluster starts a swarm on the Podman socket (skipping or failing
// as podmanRuntime does when there is none). When the test ends the swarm
// is shut down and every container its nodes left behind is removed.
func newPodCluster(t *testing.T, opts swarmtest.Options) *podCluster {
	t.Helper()
	rt := podmanRuntime(t) // skips with -short or without Podman; Close in t.Cleanup
	cli, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("SWARM_REQUIRE_PODMAN") == "1" {
			t.Fatalf("SWARM_REQUIRE_PODMAN=1 but the podman CLI is not installed (run scripts/setup.sh): %v", err)
		}
		t.Skipf("no podman CLI: %v", err)
	}
	opts.Runtime = func(string) swarm.Runtime { return rt }
	c := swarmtest.NewCluster(t, opts)
	pc := &podCluster{Cluster: c, t: t, rt: rt, cli: cli}
	// Runs before the cluster's own cleanup and the runtime's Close.
	t.Cleanup(pc.reap)
	return pc
}

// reap shuts the swarm down (its containers keep running, as after a
// crash) and removes every container labelled with one of its node IDs.
func (pc *podCluster) reap() {
	pc.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := map[string]bool{}
	for _, n := range pc.Nodes() {
		ids[n.ID()] = true
	}
	list, err := pc.rt.List(ctx, "")
	if err != nil {
		pc.t.Errorf("cleanup: listing containers: %v", err)
		return
	}
	for _, c := range list {
		if ids[c.NodeID] {
			if err := pc.rt.Remove(ctx, c.ID); err != nil {
				pc.t.Errorf("cleanup: removing %s: %v", c.Name, err)
			}
		}
	}
}

// podman runs the podman CLI against the cluster's socket.
func (pc *podCluster) podman(args ...string) (string, error) {
	cmd := exec.Command(pc.cli, append([]string{"--url", pc.rt.URI()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// psEntry is a container as `podman ps --format json` shows it.
type psEntry struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	Labels map[string]string `json:"Labels"`
	State  string            `json:"State"`
}

func (e psEntry) name() string {
	if len(e.Names) == 0 {
		return ""
	}
	return e.Names[0]
}

// ps lists, through the podman CLI, every container (in any state) that
// carries the service's ID label.
func (pc *podCluster) ps(serviceID string) ([]psEntry, error) {
	out, err := pc.podman("ps", "-a", "--format", "json", "--filter", "label="+swarm.LabelServiceID+"="+serviceID)
	if err != nil {
		return nil, err
	}
	var list []psEntry
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("podman ps output: %w: %s", err, out)
	}
	return list, nil
}

func runningOnly(list []psEntry) []psEntry {
	var out []psEntry
	for _, e := range list {
		if e.State == "running" {
			out = append(out, e)
		}
	}
	return out
}

// podTasks returns the service's tasks.
func (pc *podCluster) podTasks(ctx context.Context, svc string) []swarm.Task {
	pc.t.Helper()
	tasks, err := pc.Leader().Tasks(ctx, swarm.TaskFilter{Service: svc})
	require.NoError(pc.t, err)
	return tasks
}

// liveRunning returns the service's tasks that should run and do, by slot.
func liveRunning(tasks []swarm.Task) map[uint64]swarm.Task {
	out := map[uint64]swarm.Task{}
	for _, tk := range tasks {
		if tk.DesiredState == swarm.TaskRunning && tk.Status.State == swarm.TaskRunning {
			out[tk.Slot] = tk
		}
	}
	return out
}

func describe(tasks []swarm.Task) string {
	var b strings.Builder
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Slot < tasks[j].Slot })
	for _, tk := range tasks {
		fmt.Fprintf(&b, "\n  %s.%d %s desired=%s state=%s msg=%q err=%q", tk.ServiceName, tk.Slot, tk.ID, tk.DesiredState, tk.Status.State, tk.Status.Message, tk.Status.Err)
	}
	return b.String()
}

// waitContainers waits until the service has exactly want containers (in
// any state) on the socket.
func (pc *podCluster) waitContainers(serviceID string, want int) {
	pc.t.Helper()
	pc.Eventually(func() error {
		list, err := pc.ps(serviceID)
		if err != nil {
			return err
		}
		if len(list) != want {
			names := make([]string, 0, len(list))
			for _, e := range list {
				names = append(names, e.name()+" ("+e.State+")")
			}
			return fmt.Errorf("%d containers, want %d: %v", len(list), want, names)
		}
		return nil
	}, podWait)
}

// uniqueName is a service name unique to this run.
func uniqueName(prefix string) string { return prefix + "-" + randHex(4) }

// sleepSpec is a service of busybox sleep that stops at once: the init
// forwards SIGTERM to sleep (which as PID 1 would ignore it).
func sleepSpec(name string, replicas uint64) swarm.ServiceSpec {
	grace := time.Second
	return swarm.ServiceSpec{
		Name: name, Image: testImage, Args: []string{"sleep", "3600"},
		Mode: swarm.Replicated(replicas), Init: true, StopGracePeriod: &grace,
	}
}

// hostUIDs returns the Uid line (real, effective, saved, fs) of a host process.
func hostUIDs(t *testing.T, pid int) []string {
	t.Helper()
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	require.NoError(t, err)
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Uid:") {
			return strings.Fields(l)[1:]
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return nil
}

// A 3-replica service on 3 nodes sharing one rootless socket: 3 running
// containers, Swarm's names and labels, unprivileged on the host; a killed
// container's task fails and is replaced in its slot; scaling to 0 and
// removing the service leave no containers.
func TestPodmanClusterService(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := testCtx(t, 2*time.Minute)
	leader := pc.Leader()
	name := uniqueName("pcsvc")
	svc, err := leader.CreateService(ctx, sleepSpec(name, 3))
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, podWait)
	require.NoError(t, leader.WaitConverged(wctx, svc.ID), "tasks: %s", describe(pc.podTasks(ctx, svc.ID)))
	cancel()

	tasks := liveRunning(pc.podTasks(ctx, svc.ID))
	require.Len(t, tasks, 3)
	nodes := map[string]bool{}
	for _, tk := range tasks {
		nodes[tk.NodeID] = true
	}
	assert.Len(t, nodes, 3, "spread: one replica per node")

	// What Podman sees: 3 running containers, named and labelled as Swarm does.
	list, err := pc.ps(svc.ID)
	require.NoError(t, err)
	require.Len(t, list, 3)
	byTask := map[string]psEntry{}
	for _, e := range list {
		assert.Equal(t, "running", e.State, e.name())
		byTask[e.Labels[swarm.LabelTaskID]] = e
	}
	for slot, tk := range tasks {
		e, ok := byTask[tk.ID]
		require.True(t, ok, "no container labelled with task %s", tk.ID)
		assert.Equal(t, fmt.Sprintf("%s.%d.%s", name, slot, tk.ID), e.name())
		assert.Equal(t, svc.ID, e.Labels[swarm.LabelServiceID])
		assert.Equal(t, name, e.Labels[swarm.LabelServiceName])
		assert.Equal(t, tk.NodeID, e.Labels[swarm.LabelNodeID])
		assert.Equal(t, strconv.FormatUint(slot, 10), e.Labels[swarm.LabelTaskSlot])
		assert.Equal(t, e.ID, tk.Status.ContainerID)
		// Each node lists exactly its own container.
		own, err := pc.rt.List(ctx, tk.NodeID)
		require.NoError(t, err)
		var mine []string
		for _, c := range own {
			if c.ServiceID == svc.ID {
				mine = append(mine, c.ID)
			}
		}
		assert.Equal(t, []string{e.ID}, mine, "node %s lists its own container only", tk.NodeID)

		// The container's processes are not root on the host.
		pid, err := pc.rt.HostPID(ctx, e.ID)
		require.NoError(t, err)
		require.Greater(t, pid, 0)
		uids := hostUIDs(t, pid)
		for _, u := range uids {
			assert.NotEqual(t, "0", u, "container %s runs as host root: Uid %v", e.name(), uids)
		}
	}

	// podman kill: the task fails (non-zero exit) and a new task runs in its slot.
	victim := tasks[2]
	_, err = pc.podman("kill", victim.Status.ContainerID)
	require.NoError(t, err)
	pc.Eventually(func() error {
		all := pc.podTasks(ctx, svc.ID)
		var old *swarm.Task
		for i := range all {
			if all[i].ID == victim.ID {
				old = &all[i]
			}
		}
		if old == nil {
			return fmt.Errorf("killed task %s gone from the history: %s", victim.ID, describe(all))
		}
		if old.Status.State != swarm.TaskFailed {
			return fmt.Errorf("killed task is %s: %s", old.Status.State, describe(all))
		}
		live := liveRunning(all)
		repl, ok := live[2]
		if !ok || repl.ID == victim.ID || len(live) != 3 {
			return fmt.Errorf("slot 2 not replaced yet: %s", describe(all))
		}
		return nil
	}, podWait)
	all := pc.podTasks(ctx, svc.ID)
	for _, tk := range all {
		if tk.ID == victim.ID {
			assert.Contains(t, tk.Status.Err, "non-zero exit", "the killed task's error")
		}
	}
	repl := liveRunning(all)[2]
	list, err = pc.ps(svc.ID)
	require.NoError(t, err)
	var replacement *psEntry
	for i := range list {
		if list[i].Labels[swarm.LabelTaskID] == repl.ID {
			replacement = &list[i]
		}
	}
	require.NotNil(t, replacement, "the replacement task %s has a container", repl.ID)
	assert.Equal(t, "running", replacement.State)
	assert.Equal(t, fmt.Sprintf("%s.2.%s", name, repl.ID), replacement.name())
	assert.Len(t, runningOnly(list), 3, "3 running containers after the replacement")

	// Scale to 0: every container goes, the killed task's exited one too.
	require.NoError(t, leader.ScaleService(ctx, svc.ID, 0))
	pc.waitContainers(svc.ID, 0)
	pc.Eventually(func() error {
		if live := liveRunning(pc.podTasks(ctx, svc.ID)); len(live) != 0 {
			return fmt.Errorf("%d tasks still running", len(live))
		}
		return nil
	}, podWait)

	// Back to 2, then remove: nothing left, neither tasks nor containers.
	require.NoError(t, leader.ScaleService(ctx, svc.ID, 2))
	wctx, cancel = context.WithTimeout(ctx, podWait)
	require.NoError(t, leader.WaitConverged(wctx, svc.ID), "tasks: %s", describe(pc.podTasks(ctx, svc.ID)))
	cancel()
	pc.waitContainers(svc.ID, 2)
	require.NoError(t, leader.RemoveService(ctx, svc.ID))
	pc.waitContainers(svc.ID, 0)
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
	left, err := pc.rt.List(ctx, "")
	require.NoError(t, err)
	for _, c := range left {
		assert.NotEqual(t, svc.ID, c.ServiceID, "container %s of the removed service", c.Name)
	}
}

// A failing healthcheck: each task fails as unhealthy, its container is
// stopped, and a new task replaces it in the slot, again and again.
func TestPodmanClusterHealthcheck(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := testCtx(t, 2*time.Minute)
	leader := pc.Leader()
	spec := sleepSpec(uniqueName("pchealth"), 1)
	spec.Healthcheck = &swarm.Healthcheck{
		Test: []string{"CMD", "false"}, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, Retries: 1,
	}
	svc, err := leader.CreateService(ctx, spec)
	require.NoError(t, err)

	var failed []swarm.Task
	pc.Eventually(func() error {
		all := pc.podTasks(ctx, svc.ID)
		failed = failed[:0]
		for _, tk := range all {
			if tk.Status.State == swarm.TaskRunning {
				return fmt.Errorf("task %s reached running with a failing healthcheck", tk.ID)
			}
			// Failed, and already replaced (the orchestrator moved its
			// desired state on: a failed task is never revived).
			if tk.Status.State == swarm.TaskFailed && tk.DesiredState != swarm.TaskRunning {
				failed = append(failed, tk)
			}
		}
		if len(failed) < 3 {
			return fmt.Errorf("%d failed and replaced tasks, want 3: %s", len(failed), describe(all))
		}
		return nil
	}, podWait)
	for _, tk := range failed {
		assert.Equal(t, uint64(1), tk.Slot)
		assert.Contains(t, tk.Status.Err, "unhealthy", "task %s", tk.ID)
	}
	// A failed task's container is stopped: at most the current task's
	// container runs.
	pc.Eventually(func() error {
		all := pc.podTasks(ctx, svc.ID)
		live := map[string]bool{}
		for _, tk := range all {
			if tk.DesiredState == swarm.TaskRunning && !tk.Status.State.Terminal() {
				live[tk.ID] = true
			}
		}
		list, err := pc.ps(svc.ID)
		if err != nil {
			return err
		}
		for _, e := range runningOnly(list) {
			if !live[e.Labels[swarm.LabelTaskID]] {
				return fmt.Errorf("container %s of an ended task is still running", e.name())
			}
		}
		return nil
	}, podWait)

	require.NoError(t, leader.RemoveService(ctx, svc.ID))
	pc.waitContainers(svc.ID, 0)
}

// A node shut down (its containers keep running) and restarted from its
// DataDir, once quickly (it adopts its container) and once after the swarm
// declared it down and replaced its task elsewhere (it removes its stale
// container): never two containers for one slot.
func TestPodmanClusterNodeRestart(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 2, Persistent: true})
	ctx := testCtx(t, 2*time.Minute)
	leader := pc.Leader()
	svc, err := leader.CreateService(ctx, sleepSpec(uniqueName("pcrestart"), 3))
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, podWait)
	require.NoError(t, leader.WaitConverged(wctx, svc.ID), "tasks: %s", describe(pc.podTasks(ctx, svc.ID)))
	cancel()

	// oneRunningPerSlot checks that each of the 3 slots has exactly one
	// container and that it runs the slot's live task.
	oneRunningPerSlot := func() error {
		list, err := pc.ps(svc.ID)
		if err != nil {
			return err
		}
		live := liveRunning(pc.podTasks(ctx, svc.ID))
		perSlot := map[string][]string{}
		for _, e := range list {
			slot := e.Labels[swarm.LabelTaskSlot]
			perSlot[slot] = append(perSlot[slot], e.name()+" ("+e.State+")")
		}
		for slot := uint64(1); slot <= 3; slot++ {
			s := strconv.FormatUint(slot, 10)
			if len(perSlot[s]) != 1 {
				return fmt.Errorf("slot %d has %d containers: %v", slot, len(perSlot[s]), perSlot[s])
			}
			tk, ok := live[slot]
			if !ok {
				return fmt.Errorf("slot %d has no running task", slot)
			}
			if want := fmt.Sprintf("%s.%d.%s (running)", tk.ServiceName, slot, tk.ID); perSlot[s][0] != want {
				return fmt.Errorf("slot %d: container %s, want %s", slot, perSlot[s][0], want)
			}
		}
		if len(perSlot) != 3 {
			return fmt.Errorf("containers in %d slots, want 3: %v", len(perSlot), perSlot)
		}
		return nil
	}
	require.NoError(t, oneRunningPerSlot())

	// 1. A quick restart: the node's container kept running and is adopted.
	const worker = 2
	before := liveRunning(pc.podTasks(ctx, svc.ID))
	pc.Restart(worker)
	pc.WaitReady()
	pc.Eventually(oneRunningPerSlot, podWait)
	after := liveRunning(pc.podTasks(ctx, svc.ID))
	for slot, tk := range before {
		if tk.NodeID == pc.Node(worker).ID() {
			assert.Equal(t, tk.ID, after[slot].ID, "the restarted node's task kept running (adopted)")
		}
	}

	// 2. Down long enough to be replaced: its container is stale on return.
	victim := pc.Node(worker).ID()
	var stale string
	for _, tk := range after {
		if tk.NodeID == victim {
			stale = tk.Status.ContainerID
		}
	}
	require.NotEmpty(t, stale, "the worker runs a task")
	pc.Crash(worker)
	pc.Eventually(func() error {
		nd, err := leader.Node(ctx, victim)
		if err != nil {
			return err
		}
		if nd.State != swarm.NodeDown {
			return fmt.Errorf("node is %s", nd.State)
		}
		live := liveRunning(pc.podTasks(ctx, svc.ID))
		if len(live) != 3 {
			return fmt.Errorf("%d of 3 running", len(live))
		}
		for _, tk := range live {
			if tk.NodeID == victim {
				return fmt.Errorf("task %s still on the down node", tk.ID)
			}
		}
		return nil
	}, podWait)
	// While it is down its container still runs: two for that slot.
	list, err := pc.ps(svc.ID)
	require.NoError(t, err)
	assert.Len(t, runningOnly(list), 4, "the down node's container keeps running until it returns")
	pc.Restart(worker)
	pc.WaitReady()
	pc.Eventually(oneRunningPerSlot, podWait)
	// And it stays that way.
	time.Sleep(time.Second) // a settle period: a duplicate would show up now
	require.NoError(t, oneRunningPerSlot())
	list, err = pc.ps(svc.ID)
	require.NoError(t, err)
	for _, e := range list {
		assert.NotEqual(t, stale, e.ID, "the stale container was removed")
	}

	require.NoError(t, leader.RemoveService(ctx, svc.ID))
	pc.waitContainers(svc.ID, 0)
}

// Bad input gives clear errors: a bad ulimit fails CreateService with
// ErrInvalidSpec; an unknown image and a missing bind source (both only
// known on the node) reject the task with a message that says what is wrong.
func TestPodmanClusterBadInput(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := testCtx(t, 2*time.Minute)
	leader := pc.Leader()

	// Bad ulimits: refused by the managers, no task is created.
	for _, u := range []swarm.Ulimit{{Name: "bogus", Soft: 1, Hard: 1}, {Name: "nofile", Soft: 100, Hard: 10}} {
		spec := sleepSpec(uniqueName("pculimit"), 1)
		spec.Ulimits = []swarm.Ulimit{u}
		_, err := leader.CreateService(ctx, spec)
		require.ErrorIs(t, err, swarm.ErrInvalidSpec, "ulimit %+v", u)
		assert.Contains(t, err.Error(), u.Name)
		_, err = leader.Service(ctx, spec.Name)
		assert.ErrorIs(t, err, swarm.ErrNotFound, "no service was created")
	}

	// rejected waits for a rejected task of the service and returns its error.
	rejected := func(svcID string) string {
		var msg string
		pc.Eventually(func() error {
			all := pc.podTasks(ctx, svcID)
			for _, tk := range all {
				if tk.Status.State == swarm.TaskRejected {
					msg = tk.Status.Err
					return nil
				}
				if tk.Status.State == swarm.TaskRunning {
					return fmt.Errorf("task %s runs: %s", tk.ID, describe(all))
				}
			}
			return fmt.Errorf("no rejected task yet: %s", describe(all))
		}, podWait)
		return msg
	}

	// An unknown image: the service is accepted (the image is a node's
	// business), its tasks are rejected with the pull's error.
	image := "localhost/podswarm/no-such-image-" + randHex(4) + ":latest"
	spec := sleepSpec(uniqueName("pcimage"), 1)
	spec.Image = image
	svc, err := leader.CreateService(ctx, spec)
	require.NoError(t, err)
	msg := rejected(svc.ID)
	t.Logf("unknown image: %s", msg)
	assert.Contains(t, msg, image)
	assert.Contains(t, msg, "not found")

	// A missing bind source: only the node can tell (it is a path on the
	// node's host), so the runtime refuses the container at create time
	// and the task is rejected with the path in the message.
	missing := filepath.Join(t.TempDir(), "missing")
	spec2 := sleepSpec(uniqueName("pcbind"), 1)
	spec2.Mounts = []swarm.Mount{{Type: swarm.MountBind, Source: missing, Target: "/data"}}
	svc2, err := leader.CreateService(ctx, spec2)
	require.NoError(t, err)
	msg = rejected(svc2.ID)
	t.Logf("missing bind source: %s", msg)
	assert.Contains(t, msg, missing)
	assert.Contains(t, msg, "does not exist")

	// A relative bind source is caught by the managers.
	spec3 := sleepSpec(uniqueName("pcbind"), 1)
	spec3.Mounts = []swarm.Mount{{Type: swarm.MountBind, Target: "/data"}}
	_, err = leader.CreateService(ctx, spec3)
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)

	// No container was ever created for the rejected tasks.
	for _, id := range []string{svc.ID, svc2.ID} {
		list, err := pc.ps(id)
		require.NoError(t, err)
		assert.Empty(t, list)
		require.NoError(t, leader.RemoveService(ctx, id))
	}
}

// Host-mode published ports without a fixed host port: Podman picks a free
// one per replica (all in-process nodes share this host), PublishedPorts
// tells which, and each replica serves its own page there.
func TestPodmanClusterHostPorts(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := testCtx(t, 2*time.Minute)
	leader := pc.Leader()
	spec := sleepSpec(uniqueName("pcweb"), 2)
	spec.Args = nil
	spec.Command = []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"}
	spec.Ports = []swarm.PortConfig{{TargetPort: 8080, PublishMode: swarm.PublishHost}}
	svc, err := leader.CreateService(ctx, spec)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, podWait)
	require.NoError(t, leader.WaitConverged(wctx, svc.ID), "tasks: %s", describe(pc.podTasks(ctx, svc.ID)))
	cancel()

	seen := map[uint32]bool{}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, tk := range liveRunning(pc.podTasks(ctx, svc.ID)) {
		ports, err := pc.rt.PublishedPorts(ctx, tk.Status.ContainerID)
		require.NoError(t, err)
		require.Len(t, ports, 1)
		p := ports[0]
		assert.Equal(t, uint32(8080), p.TargetPort)
		assert.Equal(t, "tcp", p.Protocol)
		assert.Equal(t, swarm.PublishHost, p.PublishMode)
		require.NotZero(t, p.PublishedPort)
		assert.False(t, seen[p.PublishedPort], "two replicas on host port %d", p.PublishedPort)
		seen[p.PublishedPort] = true
		url := fmt.Sprintf("http://127.0.0.1:%d/", p.PublishedPort)
		pc.Eventually(func() error {
			resp, err := client.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			// Podman's default hostname is the container ID's first 12 characters.
			if got, want := strings.TrimSpace(string(body)), tk.Status.ContainerID[:12]; got != want {
				return fmt.Errorf("%s answered %q, want %q", url, got, want)
			}
			return nil
		}, podWait)
	}
	assert.Len(t, seen, 2)
	require.NoError(t, leader.RemoveService(ctx, svc.ID))
	pc.waitContainers(svc.ID, 0)
}
