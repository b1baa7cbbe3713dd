package chaos

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The campaign's knobs: `make chaos SEED=7 CYCLES=50` passes them here.
var (
	seedFlag   = flag.Int64("chaos.seed", 0, "schedule seed (0: from the clock, printed)")
	cyclesFlag = flag.Int("chaos.cycles", 3, "fault/heal cycles per target")
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
	w.t.Log(string(p))
	return len(p), nil
}

// TestChaosInproc runs the campaign against a 3-manager, 2-worker
// in-process cluster: crashes, restarts, symmetric, asymmetric and leader
// partitions. It needs root (iptables on loopback) and skips without.
func TestChaosInproc(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	tgt := NewInproc(t, 3, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep := Run(ctx, tgt, Options{Seed: seed(t), Cycles: *cyclesFlag, Log: logWriter{t}})
	tgt.Close()
	rep.Print(os.Stdout)
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutine leak after the campaign's cluster shut down: %v", err)
	}
	if rep.Failed() {
		t.Errorf("chaos campaign (seed %d): %d invariant(s) failed", rep.Seed, len(rep.Violations))
	}
}
