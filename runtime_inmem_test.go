package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/podswarm/swarm"
)

// inmemCfg is the config of the container of task on node.
func inmemCfg(node, task, image string) swarm.ContainerConfig {
	return swarm.ContainerConfig{
		Name:   "web.1." + task,
		NodeID: node,
		TaskID: task,
		Labels: map[string]string{
			swarm.LabelNodeID:    node,
			swarm.LabelTaskID:    task,
			swarm.LabelServiceID: "svc",
		},
		ServiceID: "svc", ServiceName: "web", Slot: 1,
		Spec: swarm.ServiceSpec{Name: "web", Image: image},
	}
}

func inmemCreate(t *testing.T, rt *swarm.InmemRuntime, cfg swarm.ContainerConfig) string {
	t.Helper()
	id, err := rt.Create(context.Background(), cfg)
	require.NoError(t, err)
	return id
}

// inmemRun creates and starts a container and waits until it runs.
func inmemRun(t *testing.T, rt *swarm.InmemRuntime, cfg swarm.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	id := inmemCreate(t, rt, cfg)
	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, rt.WaitReady(ctx, id))
	return id
}

// inmemWaitAsync calls Wait in a goroutine and delivers its result.
func inmemWaitAsync(rt *swarm.InmemRuntime, id string) <-chan swarm.ExitStatus {
	ch := make(chan swarm.ExitStatus, 1)
	go func() {
		st, err := rt.Wait(context.Background(), id)
		if err != nil {
			st = swarm.ExitStatus{ExitCode: -1, Message: err.Error()}
		}
		ch <- st
	}()
	return ch
}

func inmemRecv(t *testing.T, ch <-chan swarm.ExitStatus) swarm.ExitStatus {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return")
		return swarm.ExitStatus{}
	}
}

// inmemBlockedWaits counts the goroutines parked in InmemRuntime.Wait's select,
// so a test knows a Wait is under way before it removes the container.
func inmemBlockedWaits() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "swarm.(*InmemRuntime).Wait(") {
			n++
		}
	}
	return n
}

func TestInmemInfo(t *testing.T) {
	rt := swarm.NewInmemRuntime()
	info, err := rt.Info(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "inmem", info.Name)
	assert.Equal(t, runtime.GOOS, info.OS)
	assert.Equal(t, runtime.GOARCH, info.Arch)
	assert.Equal(t, swarm.Resources{NanoCPUs: 4e9, MemoryBytes: 8 << 30}, info.Resources)

	rt.SetResources(swarm.Resources{NanoCPUs: 1e9, MemoryBytes: 1 << 30})
	info, err = rt.Info(context.Background())
	require.NoError(t, err)
	assert.Equal(t, swarm.Resources{NanoCPUs: 1e9, MemoryBytes: 1 << 30}, info.Resources)
}

func TestInmemLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()

	cfg := inmemCfg("n1", "t1", "busybox")
	id := inmemCreate(t, rt, cfg)
	assert.Len(t, id, 64)
	info, ok := rt.Container(id)
	require.True(t, ok)
	assert.Equal(t, swarm.ContainerInfo{ID: id, Name: cfg.Name, NodeID: "n1", ServiceID: "svc", TaskID: "t1"}, info)
	got, ok := rt.Config(id)
	require.True(t, ok)
	assert.Equal(t, cfg, got)
	assert.Zero(t, rt.Running(""))

	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, rt.WaitReady(ctx, id))
	require.NoError(t, rt.Start(ctx, id), "starting a running container is a no-op")
	assert.Equal(t, 1, rt.Running("n1"))
	assert.Equal(t, 1, rt.Running(""))
	info, _ = rt.Container(id)
	assert.True(t, info.Running)

	// Wait honours its context while the container runs.
	short, cancel := context.WithCancel(ctx)
	cancel()
	_, err := rt.Wait(short, id)
	require.ErrorIs(t, err, context.Canceled)

	w1, w2 := inmemWaitAsync(rt, id), inmemWaitAsync(rt, id)
	require.NoError(t, rt.Stop(ctx, id, 10*time.Second))
	for _, w := range []<-chan swarm.ExitStatus{w1, w2} {
		st := inmemRecv(t, w)
		assert.Equal(t, 143, st.ExitCode)
		assert.False(t, st.Unhealthy)
	}
	require.NoError(t, rt.Stop(ctx, id, 0), "stopping a stopped container is not an error")
	st, err := rt.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, 143, st.ExitCode, "Wait on an exited container returns at once")
	assert.Zero(t, rt.Running(""))
	require.Error(t, rt.Start(ctx, id), "an exited container is not restarted")

	require.NoError(t, rt.Remove(ctx, id))
	_, ok = rt.Container(id)
	assert.False(t, ok)
	assert.Empty(t, rt.Containers())
	assert.Equal(t, 1, rt.Created())
}

func TestInmemStopSignal(t *testing.T) {
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	for sig, code := range map[string]int{"SIGKILL": 137, "INT": 130, "9": 137, "": 143} {
		cfg := inmemCfg("n1", "t-"+sig, "busybox")
		cfg.Spec.StopSignal = sig
		id := inmemRun(t, rt, cfg)
		require.NoError(t, rt.Stop(ctx, id, time.Second))
		st, err := rt.Wait(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, code, st.ExitCode, sig)
	}
}

func TestInmemStartDelay(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()

	rt.SetStartDelay(20 * time.Millisecond)
	id := inmemCreate(t, rt, inmemCfg("n1", "t1", "busybox"))
	begin := time.Now()
	require.NoError(t, rt.Start(ctx, id))
	require.NoError(t, rt.WaitReady(ctx, id))
	assert.GreaterOrEqual(t, time.Since(begin), 20*time.Millisecond)
	assert.Equal(t, 1, rt.Running("n1"))

	// A Stop during the delay cancels the start: WaitReady fails, Wait returns.
	rt.SetStartDelay(time.Hour)
	id2 := inmemCreate(t, rt, inmemCfg("n1", "t2", "busybox"))
	require.NoError(t, rt.Start(ctx, id2))
	info, _ := rt.Container(id2)
	assert.False(t, info.Running)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, rt.WaitReady(short, id2), context.DeadlineExceeded)
	ready := make(chan error, 1)
	go func() { ready <- rt.WaitReady(ctx, id2) }()
	w := inmemWaitAsync(rt, id2)
	require.NoError(t, rt.Stop(ctx, id2, 0))
	require.Error(t, <-ready)
	assert.Equal(t, 143, inmemRecv(t, w).ExitCode)

	// A behaviour's negative StartDelay overrides the runtime's delay.
	rt.SetBehavior(func(swarm.ContainerConfig) swarm.InmemBehavior {
		return swarm.InmemBehavior{StartDelay: -1}
	})
	id3 := inmemCreate(t, rt, inmemCfg("n1", "t3", "busybox"))
	require.NoError(t, rt.Start(ctx, id3))
	info, _ = rt.Container(id3)
	assert.True(t, info.Running, "runs as soon as Start returns")

	// Removing a starting container stops its timer (goleak checks).
	rt.SetBehavior(nil)
	id4 := inmemCreate(t, rt, inmemCfg("n1", "t4", "busybox"))
	require.NoError(t, rt.Start(ctx, id4))
	require.NoError(t, rt.Remove(ctx, id4))
	for _, id := range []string{id, id2, id3} {
		require.NoError(t, rt.Remove(ctx, id))
	}
}

func TestInmemExitCodes(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()

	for _, code := range []int{0, 3} {
		id := inmemCreate(t, rt, inmemCfg("n1", fmt.Sprint("exit", code), fmt.Sprint("inmem/exit:", code)))
		require.NoError(t, rt.Start(ctx, id))
		require.NoError(t, rt.WaitReady(ctx, id), "it did run, briefly")
		st, err := rt.Wait(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, code, st.ExitCode)
		info, _ := rt.Container(id)
		assert.False(t, info.Running)
	}

	rt.SetBehavior(func(c swarm.ContainerConfig) swarm.InmemBehavior {
		if c.TaskID == "job" {
			return swarm.InmemBehavior{RunFor: 10 * time.Millisecond, ExitCode: 7}
		}
		return swarm.InmemBehavior{}
	})
	id := inmemRun(t, rt, inmemCfg("n1", "job", "busybox"))
	st, err := rt.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, swarm.ExitStatus{ExitCode: 7, Message: "exited"}, st)
	other := inmemRun(t, rt, inmemCfg("n1", "other", "busybox"))
	assert.Equal(t, 1, rt.Running("n1"))

	// A container stopped before its RunFor elapses has its timer stopped.
	rt.SetBehavior(func(swarm.ContainerConfig) swarm.InmemBehavior {
		return swarm.InmemBehavior{RunFor: time.Hour}
	})
	long := inmemRun(t, rt, inmemCfg("n1", "long", "busybox"))
	require.NoError(t, rt.Remove(ctx, long))
	require.NoError(t, rt.Remove(ctx, other))
}

func TestInmemCreateAndStartErrors(t *testing.T) {
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()

	_, err := rt.Create(ctx, inmemCfg("n1", "t1", ""))
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = rt.Create(ctx, inmemCfg("n1", "t1", "inmem/exit:x"))
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = rt.Create(ctx, inmemCfg("n1", "t1", swarm.InmemImageFailCreate))
	require.ErrorContains(t, err, "image not found")
	require.NotErrorIs(t, err, swarm.ErrInvalidSpec)

	// Names are unique among existing containers, as in Docker.
	id := inmemCreate(t, rt, inmemCfg("n1", "t1", "busybox"))
	_, err = rt.Create(ctx, inmemCfg("n1", "t1", "busybox"))
	require.ErrorIs(t, err, swarm.ErrNameConflict)
	require.NoError(t, rt.Remove(ctx, id))
	inmemCreate(t, rt, inmemCfg("n1", "t1", "busybox"))

	errBad := fmt.Errorf("%w: no such device", swarm.ErrInvalidSpec)
	errStart := errors.New("oci runtime error")
	rt.SetBehavior(func(c swarm.ContainerConfig) swarm.InmemBehavior {
		switch c.TaskID {
		case "bad":
			return swarm.InmemBehavior{CreateError: errBad}
		case "nostart":
			return swarm.InmemBehavior{StartError: errStart}
		}
		return swarm.InmemBehavior{}
	})
	_, err = rt.Create(ctx, inmemCfg("n1", "bad", "busybox"))
	require.ErrorIs(t, err, errBad)
	id = inmemCreate(t, rt, inmemCfg("n1", "nostart", "busybox"))
	require.ErrorIs(t, rt.Start(ctx, id), errStart)
	require.Error(t, rt.WaitReady(ctx, id))
	st, err := rt.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, 128, st.ExitCode)
	assert.Equal(t, 3, rt.Created(), "failed Creates do not count")
}

func TestInmemUnhealthy(t *testing.T) {
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	rt.SetBehavior(func(swarm.ContainerConfig) swarm.InmemBehavior {
		return swarm.InmemBehavior{Unhealthy: true}
	})

	cfg := inmemCfg("n1", "sick", "busybox")
	cfg.Spec.Healthcheck = &swarm.Healthcheck{Test: []string{"CMD", "false"}}
	id := inmemCreate(t, rt, cfg)
	require.NoError(t, rt.Start(ctx, id))
	require.Error(t, rt.WaitReady(ctx, id))
	st, err := rt.Wait(ctx, id)
	require.NoError(t, err)
	assert.True(t, st.Unhealthy)
	info, _ := rt.Container(id)
	assert.True(t, info.Running, "an unhealthy container still runs until stopped")
	require.NoError(t, rt.Stop(ctx, id, 0))
	st, err = rt.Wait(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, swarm.ExitStatus{ExitCode: 143, Unhealthy: true, Message: "stopped"}, st)

	// Without a healthcheck, Unhealthy has no effect.
	id = inmemRun(t, rt, inmemCfg("n1", "fine", "busybox"))
	require.NoError(t, rt.Stop(ctx, id, 0))
}

func TestInmemCrash(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()

	a := inmemRun(t, rt, inmemCfg("n1", "a", "busybox"))
	b := inmemRun(t, rt, inmemCfg("n1", "b", "busybox"))
	c := inmemRun(t, rt, inmemCfg("n1", "c", "busybox"))
	d := inmemRun(t, rt, inmemCfg("n2", "d", "busybox"))

	wa1, wa2 := inmemWaitAsync(rt, a), inmemWaitAsync(rt, a)
	require.NoError(t, rt.Crash(a, 2))
	assert.Equal(t, swarm.ExitStatus{ExitCode: 2, Message: "crashed"}, inmemRecv(t, wa1))
	assert.Equal(t, 2, inmemRecv(t, wa2).ExitCode)
	require.Error(t, rt.Crash(a, 2), "not running any more")

	wb := inmemWaitAsync(rt, b)
	require.NoError(t, rt.CrashTask("b", 139))
	assert.Equal(t, 139, inmemRecv(t, wb).ExitCode)

	wc, wd := inmemWaitAsync(rt, c), inmemWaitAsync(rt, d)
	rt.CrashNode("n1")
	assert.Equal(t, 137, inmemRecv(t, wc).ExitCode)
	assert.Equal(t, 1, rt.Running(""))
	assert.Equal(t, 1, rt.Running("n2"), "other nodes keep running")
	require.NoError(t, rt.Stop(ctx, d, 0))
	assert.Equal(t, 143, inmemRecv(t, wd).ExitCode)

	require.ErrorIs(t, rt.Crash("nope", 1), swarm.ErrNotFound)
	require.ErrorIs(t, rt.CrashTask("nope", 1), swarm.ErrNotFound)
	rt.CrashNode("nope")
}

func TestInmemListPerNode(t *testing.T) {
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	a2 := inmemRun(t, rt, inmemCfg("A", "2", "busybox"))
	a1 := inmemCreate(t, rt, inmemCfg("A", "1", "busybox"))
	b1 := inmemRun(t, rt, inmemCfg("B", "1x", "busybox"))
	// Without a LabelNodeID label, ContainerConfig.NodeID decides.
	noLabel := swarm.ContainerConfig{Name: "bare", NodeID: "B", Spec: swarm.ServiceSpec{Image: "busybox"}}
	bare := inmemCreate(t, rt, noLabel)

	la, err := rt.List(ctx, "A")
	require.NoError(t, err)
	require.Len(t, la, 2)
	assert.Equal(t, []string{a1, a2}, []string{la[0].ID, la[1].ID}, "sorted by name")
	assert.False(t, la[0].Running)
	assert.True(t, la[1].Running)

	lb, err := rt.List(ctx, "B")
	require.NoError(t, err)
	require.Len(t, lb, 2)
	assert.Equal(t, []string{bare, b1}, []string{lb[0].ID, lb[1].ID})
	assert.Equal(t, "B", lb[0].NodeID)

	lc, err := rt.List(ctx, "C")
	require.NoError(t, err)
	assert.Empty(t, lc)
	assert.Len(t, rt.Containers(), 4)

	require.NoError(t, rt.Remove(ctx, a2))
	la, err = rt.List(ctx, "A")
	require.NoError(t, err)
	require.Len(t, la, 1)
	assert.Equal(t, a1, la[0].ID)
	assert.Equal(t, 1, rt.Running(""))
}

func TestInmemRemoveRunning(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	id := inmemRun(t, rt, inmemCfg("n1", "t1", "busybox"))
	w := inmemWaitAsync(rt, id)
	require.Eventually(t, func() bool { return inmemBlockedWaits() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, rt.Remove(ctx, id))
	assert.Equal(t, 143, inmemRecv(t, w).ExitCode, "a Wait under way returns")
	_, err := rt.Wait(ctx, id)
	require.ErrorIs(t, err, swarm.ErrNotFound)
	require.NoError(t, rt.Remove(ctx, id), "removing twice is fine")
	assert.Zero(t, rt.Running(""))
}

func TestInmemUnknownIDs(t *testing.T) {
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	require.NoError(t, rt.Stop(ctx, "nope", time.Second))
	require.NoError(t, rt.Remove(ctx, "nope"))
	require.ErrorIs(t, rt.Start(ctx, "nope"), swarm.ErrNotFound)
	require.ErrorIs(t, rt.WaitReady(ctx, "nope"), swarm.ErrNotFound)
	_, err := rt.Wait(ctx, "nope")
	require.ErrorIs(t, err, swarm.ErrNotFound)
	_, ok := rt.Container("nope")
	assert.False(t, ok)
	_, ok = rt.Config("nope")
	assert.False(t, ok)
}

func TestInmemConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	rt.SetBehavior(func(c swarm.ContainerConfig) swarm.InmemBehavior {
		return swarm.InmemBehavior{StartDelay: time.Millisecond}
	})
	const nodes, perNode = 8, 50
	var wg sync.WaitGroup
	for n := range nodes {
		node := fmt.Sprint("node", n)
		wg.Go(func() {
			ids := make([]string, 0, perNode)
			for i := range perNode {
				id, err := rt.Create(ctx, inmemCfg(node, fmt.Sprint(node, "-", i), "busybox"))
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, rt.Start(ctx, id))
				ids = append(ids, id)
			}
			var inner sync.WaitGroup
			for i, id := range ids {
				inner.Go(func() {
					assert.NoError(t, rt.WaitReady(ctx, id))
					w := inmemWaitAsync(rt, id)
					if i%2 == 0 {
						assert.NoError(t, rt.CrashTask(fmt.Sprint(node, "-", i), 1))
					} else {
						assert.NoError(t, rt.Stop(ctx, id, 0))
					}
					assert.Contains(t, []int{1, 143}, (<-w).ExitCode)
					_, err := rt.List(ctx, node)
					assert.NoError(t, err)
					assert.NoError(t, rt.Remove(ctx, id))
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	assert.Equal(t, nodes*perNode, rt.Created())
	assert.Empty(t, rt.Containers())
}

func BenchmarkInmemCreateStart(b *testing.B) {
	ctx := context.Background()
	rt := swarm.NewInmemRuntime()
	cfgs := make([]swarm.ContainerConfig, 100)
	for i := range cfgs {
		cfgs[i] = inmemCfg(fmt.Sprint("node", i), "", "busybox")
	}
	i := 0
	for b.Loop() {
		cfg := cfgs[i%len(cfgs)]
		cfg.Name = fmt.Sprint("c", i)
		id, err := rt.Create(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
