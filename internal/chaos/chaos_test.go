package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/podswarm/swarm/internal/loopfilter"
	"go.uber.org/goleak"
)

// The campaign's knobs: `make chaos SEED=7 CYCLES=50` passes them here.
var (
	seedFlag   = flag.Int64("chaos.seed", 0, "schedule seed (0: from the clock, printed)")
	cyclesFlag = flag.Int("chaos.cycles", 3, "fault/heal cycles per target")
	budgetFlag = flag.Duration("chaos.budget", 70*time.Second, "stop starting cycles after this long per target (0: no limit); a cycle cut short is not counted")
	swarmdFlag = flag.String("chaos.swarmd", "", "swarmd binary for TestChaosSwarmd (empty: built into a temp dir)")
)

func seed(t *testing.T) int64 {
	s := *seedFlag
	if s == 0 {
		s = time.Now().UnixNano() % 1_000_000
	}
	t.Logf("chaos seed %d (rerun with SEED=%d)", s, s)
	return s
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// budget returns the campaign's context: it ends after -chaos.budget.
func budget() (context.Context, context.CancelFunc) {
	if *budgetFlag <= 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), *budgetFlag)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chaos campaign needs root (iptables on loopback, tmpfs mounts)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("chaos campaign needs iptables (scripts/setup.sh installs it)")
	}
}

// TestChaosInproc runs the campaign against a 3-manager, 2-worker
// in-process cluster: crashes, restarts, symmetric, asymmetric and leader
// partitions. It needs root (iptables on loopback) and skips without.
func TestChaosInproc(t *testing.T) {
	needRoot(t)
	ignore := goleak.IgnoreCurrent()
	tgt := NewInproc(t, 3, 2)
	ctx, cancel := budget()
	defer cancel()
	rep := Run(ctx, tgt, Options{Seed: seed(t), Cycles: *cyclesFlag, Log: logWriter{t}})
	closed := make(chan struct{})
	if rep.Aborted == "" {
		go func() { tgt.Close(); close(closed) }()
	}
	hung := false
	select {
	case <-closed:
		// hashicorp/raft never answers the future of an entry that was
		// committed but not yet applied when Raft shut down (Apply futures
		// have no shutdown channel: hashicorp/raft#498). Node.waitFuture
		// returns to its caller on shutdown, but the goroutine it parks on
		// such a future stays; nothing else may.
		if err := goleak.Find(ignore, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error")); err != nil {
			rep.Violations = append(rep.Violations, fmt.Sprintf("goroutine leak after the cluster shut down: %v", err))
		}
	case <-time.After(60 * time.Second):
		rep.Violations = append(rep.Violations, "Node.Shutdown hung for 60s when the campaign closed its cluster")
		hung = true
	case <-aborted(rep):
		hung = true
	}
	if hung {
		// A node whose Shutdown never returns: report it with the stacks
		// and end the process, since the cleanups would hang on it too.
		buf := make([]byte, 8<<20)
		buf = buf[:runtime.Stack(buf, true)]
		path := filepath.Join(os.TempDir(), fmt.Sprintf("chaos-shutdown-hang-%d.txt", rep.Seed))
		os.WriteFile(path, buf, 0o600)
		rep.Print(os.Stdout)
		fmt.Printf("goroutine stacks: %s\n", path)
		removeOwnChains()
		fmt.Printf("--- FAIL: TestChaosInproc: chaos campaign (seed %d): %d invariant(s) failed\n", rep.Seed, len(rep.Violations))
		os.Exit(1)
	}
	rep.Print(os.Stdout)
	if rep.Failed() {
		t.Errorf("chaos campaign (seed %d): %d invariant(s) failed", rep.Seed, len(rep.Violations))
	}
}

// aborted returns a closed channel when the campaign aborted, else nil.
func aborted(rep *Report) <-chan struct{} {
	if rep.Aborted == "" {
		return nil
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// removeOwnChains removes the iptables chains of this process's swarmtest
// clusters (PSW-<pid>-*), for when the test must exit without its cleanups.
func removeOwnChains() {
	loopfilter.RemovePrefix(fmt.Sprintf("PSW-%d-", os.Getpid()))
}

// TestChaosSwarmd runs the campaign against 3 manager and 2 worker swarmd
// processes on 127.0.0.x (managers' data dirs on 64 MiB tmpfs mounts):
// kill -9, SIGSTOP/SIGCONT, SIGTERM, restarts, partitions and a full disk.
func TestChaosSwarmd(t *testing.T) {
	needRoot(t)
	bin := *swarmdFlag
	dir := t.TempDir()
	if bin == "" {
		bin = filepath.Join(dir, "swarmd")
		// swarmd imports package podman, which needs these build tags
		// (the Makefile's TAGS); GOFLAGS need not carry them.
		args := []string{"build", "-tags=remote,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,containers_image_openpgp", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/podswarm/swarm/cmd/swarmd")...).CombinedOutput()
		if err != nil {
			t.Fatalf("build swarmd: %v\n%s", err, out)
		}
	}
	tgt, err := NewSwarmd(bin, dir, 3, 2)
	if err != nil {
		t.Fatalf("start swarmd cluster: %v", err)
	}
	defer tgt.Close()
	ctx, cancel := budget()
	defer cancel()
	rep := Run(ctx, tgt, Options{
		Seed: seed(t), Cycles: *cyclesFlag, Log: logWriter{t},
		// swarmd runs DefaultConfig (LAN timings): slower detection and
		// elections than the in-process DefaultLocalConfig.
		FaultWindow: 4 * time.Second, OpTimeout: 4 * time.Second,
		ConvergeTimeout: 60 * time.Second, DetectionBound: 10 * time.Second, Sample: 200 * time.Millisecond,
	})
	rep.Print(os.Stdout)
	if rep.Failed() {
		t.Errorf("chaos campaign (seed %d): %d invariant(s) failed", rep.Seed, len(rep.Violations))
	}
}
