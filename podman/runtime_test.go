package podman_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/podman"
)

// testImage is built by scripts/setup.sh from busybox-static.
const testImage = "localhost/podswarm/busybox:latest"

// podmanRuntime connects to the Podman socket (CONTAINER_HOST or Podman's
// discovery). Without one the test is skipped, unless SWARM_REQUIRE_PODMAN=1
// (CI), where a missing Podman fails it. The Podman tests run in parallel
// with each other (they mostly wait) and after the package's sequential
// tests, whose goroutine-leak checks they so stay out of.
func podmanRuntime(t *testing.T) *podman.Runtime {
	t.Helper()
	if testing.Short() {
		t.Skip("Podman integration test: skipped with -short")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := podman.NewRuntime(ctx, "")
	if err != nil {
		if os.Getenv("SWARM_REQUIRE_PODMAN") == "1" {
			t.Fatalf("SWARM_REQUIRE_PODMAN=1 but Podman is not reachable (run scripts/setup.sh): %v", err)
		}
		t.Skipf("no Podman (set CONTAINER_HOST, or run scripts/setup.sh as root): %v", err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// testContainer is a container config with a unique name and node ID.
func testContainer(t *testing.T, spec swarm.ServiceSpec) swarm.ContainerConfig {
	t.Helper()
	id := randHex(6)
	if spec.Image == "" {
		spec.Image = testImage
	}
	svc := strings.ToLower(nonName.ReplaceAllString(t.Name(), "-"))
	if len(svc) > 40 {
		svc = svc[:40]
	}
	taskID := "task" + id
	c := swarm.ContainerConfig{
		Name:        "podswarm-test-" + svc + "." + id,
		NodeID:      "node" + id,
		ServiceID:   "svc" + id,
		ServiceName: svc,
		TaskID:      taskID,
		Slot:        1,
		Spec:        spec,
	}
	c.Labels = map[string]string{
		swarm.LabelNodeID:      c.NodeID,
		swarm.LabelServiceID:   c.ServiceID,
		swarm.LabelServiceName: c.ServiceName,
		swarm.LabelTaskID:      c.TaskID,
		swarm.LabelManagedBy:   "true",
		"test.label":           "yes",
	}
	return c
}

// create creates the container and removes it when the test ends.
func create(t *testing.T, rt *podman.Runtime, c swarm.ContainerConfig) string {
	t.Helper()
	id, err := rt.Create(testCtx(t, time.Minute), c)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, rt.Remove(ctx, id))
	})
	return id
}

// run creates and starts the container and waits until it is ready.
func run(t *testing.T, rt *podman.Runtime, c swarm.ContainerConfig) string {
	t.Helper()
	id := create(t, rt, c)
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, rt.WaitReady(ctx, id))
	return id
}

func TestPodmanInfo(t *testing.T) {
	rt := podmanRuntime(t)
	info, err := rt.Info(testCtx(t, 10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, "podman", info.Name)
	assert.True(t, info.Rootless, "the test socket must be a rootless Podman")
	assert.True(t, rt.Rootless())
	assert.Greater(t, info.Resources.NanoCPUs, int64(0))
	assert.Equal(t, int64(0), info.Resources.NanoCPUs%1e9, "whole CPUs")
	assert.Greater(t, info.Resources.MemoryBytes, int64(0))
	assert.Equal(t, "linux", info.OS)
	assert.NotEmpty(t, info.Arch)
}

func TestPodmanNoSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	t.Parallel()
	ctx := testCtx(t, 10*time.Second)
	_, err := podman.NewRuntime(ctx, "unix:///nonexistent/podman.sock")
	require.ErrorIs(t, err, podman.ErrNoPodman)
	assert.Contains(t, err.Error(), "/nonexistent/podman.sock")
	assert.Contains(t, err.Error(), "podman system service")
}

func TestPodmanExitCode(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{Command: []string{"sh", "-c", "exit 3"}})
	id := run(t, rt, c)
	st, err := rt.Wait(testCtx(t, 30*time.Second), id)
	require.NoError(t, err)
	assert.Equal(t, 3, st.ExitCode)
	assert.False(t, st.OOMKilled)
	assert.False(t, st.Unhealthy)
}

func TestPodmanStop(t *testing.T) {
	rt := podmanRuntime(t)
	// sleep as PID 1 ignores SIGTERM: Stop must SIGKILL it after the grace.
	id := run(t, rt, testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "300"}}))
	ctx := testCtx(t, 30*time.Second)
	done := make(chan swarm.ExitStatus, 1)
	go func() {
		st, err := rt.Wait(ctx, id)
		assert.NoError(t, err)
		done <- st
	}()
	require.NoError(t, rt.Stop(ctx, id, 500*time.Millisecond))
	select {
	case st := <-done:
		assert.Equal(t, 137, st.ExitCode, "SIGKILLed after the grace")
	case <-ctx.Done():
		t.Fatal("Wait did not return after Stop")
	}
	// Stopping a stopped container is fine.
	require.NoError(t, rt.Stop(ctx, id, time.Second))
}

func TestPodmanStopSignalInit(t *testing.T) {
	rt := podmanRuntime(t)
	// With an init, SIGTERM reaches sleep and ends it at once.
	grace := 20 * time.Second
	id := run(t, rt, testContainer(t, swarm.ServiceSpec{
		Args: []string{"sleep", "300"}, Init: true, StopSignal: "SIGTERM", StopGracePeriod: &grace,
	}))
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, rt.Stop(ctx, id, grace))
	st, err := rt.Wait(ctx, id)
	require.NoError(t, err)
	// 137 would mean SIGKILL at the end of the grace period.
	assert.NotEqual(t, 137, st.ExitCode, "SIGTERM, not the grace period, ended it")
}

func TestPodmanWaitBeforeStart(t *testing.T) {
	rt := podmanRuntime(t)
	ctx := testCtx(t, 30*time.Second)
	id := create(t, rt, testContainer(t, swarm.ServiceSpec{Command: []string{"sh", "-c", "exit 5"}}))
	ready := make(chan error, 1)
	go func() { ready <- rt.WaitReady(ctx, id) }()
	exited := make(chan swarm.ExitStatus, 1)
	go func() {
		st, err := rt.Wait(ctx, id)
		assert.NoError(t, err)
		exited <- st
	}()
	// Podman's own wait returns at once for a created container; ours
	// waits for the start.
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-ready:
		t.Fatalf("WaitReady returned before Start: %v", err)
	case st := <-exited:
		t.Fatalf("Wait returned before Start: %+v", st)
	default:
	}
	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, <-ready)
	assert.Equal(t, 5, (<-exited).ExitCode)

	// Removed while Wait waits for the start: ErrNotFound.
	id2 := create(t, rt, testContainer(t, swarm.ServiceSpec{Args: []string{"true"}}))
	go func() {
		time.Sleep(300 * time.Millisecond)
		assert.NoError(t, rt.Remove(ctx, id2))
	}()
	_, err := rt.Wait(ctx, id2)
	require.ErrorIs(t, err, swarm.ErrNotFound)
}

func TestPodmanWaitCancel(t *testing.T) {
	rt := podmanRuntime(t)
	id := run(t, rt, testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "300"}}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := rt.Wait(ctx, id)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Wait returns when its context ends")
}

func TestPodmanRootlessProcess(t *testing.T) {
	rt := podmanRuntime(t)
	id := run(t, rt, testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "300"}}))
	pid, err := rt.HostPID(testCtx(t, 10*time.Second), id)
	require.NoError(t, err)
	require.Greater(t, pid, 0)
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	require.NoError(t, err)
	var uidLine string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Uid:") {
			uidLine = l
		}
	}
	require.NotEmpty(t, uidLine)
	for _, f := range strings.Fields(uidLine)[1:] {
		assert.NotEqual(t, "0", f, "container root must not be host root: %s", uidLine)
	}
}

func TestPodmanLabelsAndList(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "300"}})
	id := create(t, rt, c)
	ctx := testCtx(t, 30*time.Second)

	find := func(nodeID string) *swarm.ContainerInfo {
		list, err := rt.List(ctx, nodeID)
		require.NoError(t, err)
		for i := range list {
			if list[i].ID == id {
				return &list[i]
			}
		}
		return nil
	}
	got := find(c.NodeID)
	require.NotNil(t, got, "List finds the container by its node ID")
	assert.Equal(t, c.Name, got.Name)
	assert.Equal(t, c.NodeID, got.NodeID)
	assert.Equal(t, c.ServiceID, got.ServiceID)
	assert.Equal(t, c.TaskID, got.TaskID)
	assert.False(t, got.Running)
	assert.Nil(t, find("othernode"+randHex(4)), "not listed for another node")

	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, rt.WaitReady(ctx, id))
	got = find(c.NodeID)
	require.NotNil(t, got)
	assert.True(t, got.Running)

	// Same name again: a name conflict.
	_, err := rt.Create(ctx, c)
	require.ErrorIs(t, err, swarm.ErrNameConflict)
}

func TestPodmanHealthcheckUnhealthy(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{
		Args: []string{"sleep", "300"},
		Healthcheck: &swarm.Healthcheck{
			Test: []string{"CMD", "false"}, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, Retries: 1,
		},
	})
	id := create(t, rt, c)
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, rt.Start(ctx, id))
	err := rt.WaitReady(ctx, id)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unhealthy")
	st, err := rt.Wait(ctx, id)
	require.NoError(t, err)
	assert.True(t, st.Unhealthy)
}

func TestPodmanHealthcheckHealthy(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{
		Args: []string{"sleep", "300"},
		Healthcheck: &swarm.Healthcheck{
			Test: []string{"CMD-SHELL", "test -d /tmp"}, Interval: 200 * time.Millisecond, Retries: 2,
		},
	})
	id := create(t, rt, c)
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, rt.WaitReady(ctx, id))

	// Healthy and running: Wait blocks until it ends.
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := rt.Wait(wctx, id)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestPodmanHealthcheckExitBeforeHealthy(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{
		Args:        []string{"sh", "-c", "sleep 1; exit 4"},
		Healthcheck: &swarm.Healthcheck{Test: []string{"CMD", "true"}, Interval: time.Minute},
	})
	id := create(t, rt, c)
	ctx := testCtx(t, 30*time.Second)
	require.NoError(t, rt.Start(ctx, id))
	err := rt.WaitReady(ctx, id)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited with code 4")
}

func TestPodmanHealthcheckNone(t *testing.T) {
	rt := podmanRuntime(t)
	// NONE disables the image's healthcheck: ready as soon as it runs.
	c := testContainer(t, swarm.ServiceSpec{
		Args:        []string{"sleep", "300"},
		Healthcheck: &swarm.Healthcheck{Test: []string{"NONE"}},
	})
	run(t, rt, c)
}

func TestPodmanUnknownImage(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{Image: "localhost/nope:latest"})
	_, err := rt.Create(testCtx(t, time.Minute), c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not found")
	assert.Contains(t, err.Error(), "localhost/nope:latest")
	assert.ErrorIs(t, err, swarm.ErrNotFound)
}

func TestPodmanInvalidSpecs(t *testing.T) {
	rt := podmanRuntime(t)
	missing := filepath.Join(t.TempDir(), "missing")
	grace := -time.Second
	cases := []struct {
		name string
		spec swarm.ServiceSpec
		want string
	}{
		{"bind source missing", swarm.ServiceSpec{Mounts: []swarm.Mount{{Type: swarm.MountBind, Source: missing, Target: "/data"}}}, missing},
		{"unknown ulimit", swarm.ServiceSpec{Ulimits: []swarm.Ulimit{{Name: "bogus", Soft: 1, Hard: 1}}}, "bogus"},
		{"ulimit soft above hard", swarm.ServiceSpec{Ulimits: []swarm.Ulimit{{Name: "nofile", Soft: 100, Hard: 10}}}, "nofile"},
		{"ingress port", swarm.ServiceSpec{Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}, "ingress"},
		{"bad stop signal", swarm.ServiceSpec{StopSignal: "SIGNOPE"}, "SIGNOPE"},
		{"negative grace", swarm.ServiceSpec{StopGracePeriod: &grace}, "stop_grace_period"},
		{"bad capability", swarm.ServiceSpec{CapAdd: []string{"NOT_A_CAP"}}, "NOT_A_CAP"},
		{"bad healthcheck", swarm.ServiceSpec{Healthcheck: &swarm.Healthcheck{Test: []string{"RUN", "x"}}}, "healthcheck"},
		{"env without value", swarm.ServiceSpec{Env: []string{"JUSTKEY"}}, "JUSTKEY"},
		{"relative dir", swarm.ServiceSpec{Dir: "rel"}, "dir"},
		{"unknown mount type", swarm.ServiceSpec{Mounts: []swarm.Mount{{Type: "nfs", Target: "/x"}}}, "nfs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.Create(testCtx(t, 30*time.Second), testContainer(t, tc.spec))
			require.ErrorIs(t, err, swarm.ErrInvalidSpec)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestPodmanLimits(t *testing.T) {
	rt := podmanRuntime(t)
	// Limits are applied, or refused as invalid where this host cannot
	// enforce them (rootless on cgroup v1); never silently dropped.
	c := testContainer(t, swarm.ServiceSpec{
		Args:      []string{"sleep", "300"},
		Resources: swarm.ResourceRequirements{Limits: swarm.Resources{MemoryBytes: 64 << 20, NanoCPUs: 5e8}},
		PidsLimit: 100,
	})
	id, err := rt.Create(testCtx(t, 30*time.Second), c)
	if err != nil {
		require.ErrorIs(t, err, swarm.ErrInvalidSpec)
		t.Logf("limits refused on this host: %v", err)
		return
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), id) })
}

func TestPodmanSpecHonoured(t *testing.T) {
	rt := podmanRuntime(t)
	// A host directory the rootless user can read.
	dir, err := os.MkdirTemp("", "podswarm-bind-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("from-host\n"), 0o644))

	script := strings.Join([]string{
		`test "$(cat /b/f)" = from-host`,
		`! touch /b/new 2>/dev/null`, // read-only bind
		`echo x > /t/y`,              // tmpfs
		`grep -q ' /t tmpfs' /proc/mounts`,
		`echo v > /v/z`, // anonymous volume
		`test "$FOO" = bar`,
		`test "$(pwd)" = /tmp`,
		`test "$(hostname)" = myhost`,
		`test "$(id -u)" = 65534`,
		`test "$(ulimit -n)" = 512`,
		`test "$(ulimit -Hn)" = 768`,
		`! touch /rootfs-is-ro 2>/dev/null`,
	}, " && ")
	c := testContainer(t, swarm.ServiceSpec{
		Command:  []string{"sh", "-c"},
		Args:     []string{script},
		Env:      []string{"FOO=bar"},
		Dir:      "/tmp",
		Hostname: "myhost",
		User:     "nobody",
		ReadOnly: true,
		Ulimits:  []swarm.Ulimit{{Name: "nofile", Soft: 512, Hard: 768}},
		CapDrop:  []string{"ALL"},
		Mounts: []swarm.Mount{
			{Type: swarm.MountBind, Source: dir, Target: "/b", ReadOnly: true},
			{Type: swarm.MountTmpfs, Target: "/t", TmpfsSizeBytes: 1 << 20},
			{Type: swarm.MountVolume, Target: "/v"},
		},
		Ports: []swarm.PortConfig{{TargetPort: 80, PublishMode: swarm.PublishHost}},
	})
	id := run(t, rt, c)
	st, err := rt.Wait(testCtx(t, 30*time.Second), id)
	require.NoError(t, err)
	if st.ExitCode != 0 {
		var lines []string
		out := make(chan swarm.LogLine, 100)
		_ = rt.Logs(testCtx(t, 10*time.Second), id, swarm.LogOptions{Tail: -1}, out)
		close(out)
		for l := range out {
			lines = append(lines, l.Text)
		}
		t.Fatalf("spec checks failed in the container (exit %d): %v", st.ExitCode, lines)
	}
}

func collectLogs(t *testing.T, rt *podman.Runtime, id string, opts swarm.LogOptions) []swarm.LogLine {
	t.Helper()
	out := make(chan swarm.LogLine)
	var lines []swarm.LogLine
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range out {
			lines = append(lines, l)
		}
	}()
	err := rt.Logs(testCtx(t, 30*time.Second), id, opts, out)
	close(out)
	<-done
	require.NoError(t, err)
	return lines
}

func TestPodmanLogs(t *testing.T) {
	rt := podmanRuntime(t)
	// The long line is longer than Podman's log buffer: it is split in the
	// log file and must come back whole.
	long := strings.Repeat("x", 20000)
	c := testContainer(t, swarm.ServiceSpec{Command: []string{"sh", "-c",
		`echo hello; echo oops >&2; head -c 20000 /dev/zero | tr '\0' x; echo; echo world`}})
	id := run(t, rt, c)
	_, err := rt.Wait(testCtx(t, 30*time.Second), id)
	require.NoError(t, err)

	lines := collectLogs(t, rt, id, swarm.LogOptions{Tail: -1, Timestamps: true})
	var stdout, stderr []string
	for _, l := range lines {
		assert.False(t, l.Time.IsZero(), "timestamps asked for")
		assert.WithinDuration(t, time.Now(), l.Time, time.Minute)
		if l.Stream == 1 {
			stdout = append(stdout, l.Text)
		} else {
			assert.Equal(t, 2, l.Stream)
			stderr = append(stderr, l.Text)
		}
	}
	assert.Equal(t, []string{"hello", long, "world"}, stdout)
	assert.Equal(t, []string{"oops"}, stderr)

	past := collectLogs(t, rt, id, swarm.LogOptions{Tail: -1, Since: time.Now().Add(-time.Hour)})
	assert.Len(t, past, 4)

	tail := collectLogs(t, rt, id, swarm.LogOptions{Tail: 1})
	require.Len(t, tail, 1)
	assert.Equal(t, "world", tail[0].Text)
	assert.True(t, tail[0].Time.IsZero())

	future := collectLogs(t, rt, id, swarm.LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)})
	assert.Empty(t, future)
}

func TestPodmanLogsFollow(t *testing.T) {
	rt := podmanRuntime(t)
	c := testContainer(t, swarm.ServiceSpec{Command: []string{"sh", "-c", "echo one; sleep 1; echo two"}})
	id := run(t, rt, c)
	// collectLogs fails if the stream only ends with its context: follow
	// must end when the container exits.
	lines := collectLogs(t, rt, id, swarm.LogOptions{Follow: true, Tail: -1})
	var texts []string
	for _, l := range lines {
		texts = append(texts, l.Text)
	}
	assert.Equal(t, []string{"one", "two"}, texts)

	// Follow on a running container ends with the context.
	id2 := run(t, rt, testContainer(t, swarm.ServiceSpec{Args: []string{"sleep", "300"}}))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	out := make(chan swarm.LogLine, 10)
	err := rt.Logs(ctx, id2, swarm.LogOptions{Follow: true, Tail: -1}, out)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
}

func TestPodmanRemoveMissing(t *testing.T) {
	rt := podmanRuntime(t)
	require.NoError(t, rt.Remove(testCtx(t, 10*time.Second), "podswarm-test-missing-"+randHex(4)))
}
