package swarm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/stretchr/testify/require"
)

// buildSwarmd builds cmd/swarmd into a directory removed after tb; it
// skips tb when the binary cannot be built.
func buildSwarmd(tb testing.TB) string {
	tb.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	bin := filepath.Join(tb.TempDir(), "swarmd")
	if out, err := exec.Command(gobin, "build", "-o", bin, "./cmd/swarmd").CombinedOutput(); err != nil {
		tb.Skipf("cannot build cmd/swarmd, skipping the process test: %v: %s", err, out)
	}
	return bin
}

// syncBuffer is an io.Writer safe for a process's stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// procWorker is a swarmd worker process.
type procWorker struct {
	hostname string
	cmd      *exec.Cmd
	out      *syncBuffer
	id       string
}

func (w *procWorker) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	require.NoError(tb, w.cmd.Process.Signal(sig))
}

// procCluster is an in-process manager (DefaultConfig timings, no
// runtime: it runs no tasks) and swarmd worker processes on 127.0.0.x
// with the simulated runtime.
type procCluster struct {
	mgr     *swarm.Node
	workers []*procWorker
}

func newProcCluster(tb testing.TB, workers int) *procCluster {
	tb.Helper()
	bin := buildSwarmd(tb)
	cfg := swarm.DefaultConfig()
	cfg.Hostname = "manager-1"
	cfg.ListenAddr = "127.0.0.1:0"
	mgr := swarm.NewNode(cfg)
	require.NoError(tb, mgr.Init())
	tb.Cleanup(func() { mgr.Shutdown() })
	tok, err := mgr.JoinToken(swarm.RoleWorker)
	require.NoError(tb, err)
	pc := &procCluster{mgr: mgr}
	for i := range workers {
		w := &procWorker{hostname: fmt.Sprintf("proc-worker-%d", i+1), out: &syncBuffer{}}
		w.cmd = exec.Command(bin, "join", "-token", tok, "-runtime", "inmem", "-log-level", "warn",
			"-hostname", w.hostname, "-listen", fmt.Sprintf("127.0.0.%d:0", i+2), mgr.Addr())
		w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
		require.NoError(tb, w.cmd.Start())
		tb.Cleanup(func() {
			w.cmd.Process.Signal(syscall.SIGCONT)
			w.cmd.Process.Kill()
			w.cmd.Wait()
			if tb.Failed() {
				tb.Logf("%s output:\n%s", w.hostname, w.out.String())
			}
		})
		pc.workers = append(pc.workers, w)
	}
	require.Eventually(tb, func() bool {
		nodes, err := mgr.Nodes(context.Background())
		if err != nil {
			return false
		}
		ready := 0
		for _, nd := range nodes {
			for _, w := range pc.workers {
				if nd.Hostname == w.hostname && nd.State == swarm.NodeReady {
					w.id = nd.ID
					ready++
				}
			}
		}
		return ready == len(pc.workers)
	}, 30*time.Second, 20*time.Millisecond, "the swarmd workers join")
	return pc
}

// state returns the state of node id as the manager records it.
func (pc *procCluster) state(id string) swarm.NodeState {
	info, err := pc.mgr.Node(context.Background(), id)
	if err != nil {
		return ""
	}
	return info.State
}

// runningOn counts the service's tasks that should run and do, per node.
func (pc *procCluster) runningOn(svc string) map[string]int {
	tasks, err := pc.mgr.Tasks(context.Background(), swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, tk := range tasks {
		if tk.Status.State == swarm.TaskRunning {
			out[tk.NodeID]++
		}
	}
	return out
}

// dump logs the service's tasks and the nodes.
func (pc *procCluster) dump(tb testing.TB, svc string) {
	tasks, _ := pc.mgr.Tasks(context.Background(), swarm.TaskFilter{Service: svc})
	for _, tk := range tasks {
		tb.Logf("task %s slot %d node %s desired %s state %s %s %s", tk.ID, tk.Slot, tk.NodeID, tk.DesiredState, tk.Status.State, tk.Status.Message, tk.Status.Err)
	}
	nodes, _ := pc.mgr.Nodes(context.Background())
	for _, nd := range nodes {
		tb.Logf("node %s %s %s %s", nd.ID, nd.Hostname, nd.State, nd.Message)
	}
}

// settled reports whether every task the manager has for node id ended
// (the node's agent stopped what no longer belongs to it) or wants to run.
func (pc *procCluster) settled(svc, id string) bool {
	tasks, err := pc.mgr.Tasks(context.Background(), swarm.TaskFilter{Service: svc, Node: id})
	if err != nil {
		return false
	}
	for _, tk := range tasks {
		if tk.DesiredState != swarm.TaskRunning && !tk.Status.State.Terminal() {
			return false
		}
	}
	return true
}

// webOnWorkers is a service of the simulated runtime for the workers.
func webOnWorkers(replicas uint64) swarm.ServiceSpec {
	return swarm.ServiceSpec{Name: "web", Image: "nginx", Mode: swarm.Replicated(replicas),
		Placement: swarm.Placement{Constraints: []string{"node.role==worker"}}}
}

// A swarmd worker process stopped with SIGSTOP (its kernel still
// completes TCP handshakes) is marked down and its tasks run elsewhere;
// after SIGCONT it is ready again, has stopped the tasks that moved, and
// the service runs exactly its replicas.
func TestSIGSTOPWorkerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs swarmd processes")
	}
	pc := newProcCluster(t, 2)
	ctx := ctxT(t)
	const replicas = 4
	_, err := pc.mgr.CreateService(ctx, webOnWorkers(replicas))
	require.NoError(t, err)
	if err := pc.mgr.WaitConverged(ctx, "web"); err != nil {
		pc.dump(t, "web")
		t.Fatalf("not converged: %v", err)
	}
	per := pc.runningOn("web")
	victim := pc.workers[0]
	require.NotZero(t, per[victim.id], "the worker should run some replicas")

	victim.signal(t, syscall.SIGSTOP)
	require.Eventually(t, func() bool { return pc.state(victim.id) == swarm.NodeDown }, waitFor, 10*time.Millisecond,
		"a SIGSTOPped worker is marked down")
	require.Eventually(t, func() bool {
		per := pc.runningOn("web")
		return total(per) == replicas && per[victim.id] == 0
	}, waitFor, 10*time.Millisecond, "its tasks run elsewhere")

	victim.signal(t, syscall.SIGCONT)
	require.Eventually(t, func() bool { return pc.state(victim.id) == swarm.NodeReady }, waitFor, 10*time.Millisecond,
		"after SIGCONT the worker is ready again")
	require.Eventually(t, func() bool { return pc.settled("web", victim.id) }, waitFor, 10*time.Millisecond,
		"the worker stops the tasks that were moved")
	if err := pc.mgr.WaitConverged(ctx, "web"); err != nil {
		pc.dump(t, "web")
		t.Fatalf("not converged after SIGCONT: %v", err)
	}
	per = pc.runningOn("web")
	require.Equal(t, replicas, total(per))
	require.Zero(t, per[victim.id])
}
