package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// faultHook injects RPC faults into one node's transport, for tests only:
// nothing in the package sets a fault, and an unused hook costs one atomic
// load per call. Tests reach it through Faults (faults_export_test.go);
// the rules apply to the node's RPC (not to Raft's own streams):
//
//   - DropReplies: the node serves a request of the method as usual, then
//     does not deliver the reply: the caller sees a failed call (wrapping
//     errUnreachable), exactly as when a connection drops after the
//     server handled the request. This is the "committed, but the reply
//     was lost" case that exactly-once writes must survive.
//   - Delay: the node's outgoing calls of the method wait first.
//   - Cut: the node's outgoing calls to an address fail at once with
//     errUnreachable (a link cut in one direction).
//
// The zero value has no faults; all methods are safe for concurrent use.
type faultHook struct {
	active atomic.Bool
	mu     sync.Mutex
	drop   map[string]int // method -> replies still to drop (<0: all)
	delay  map[string]time.Duration
	cut    map[string]bool
	// dropped counts the replies dropped, by method.
	dropped map[string]int
}

// errReplyDropped is what a caller sees of a reply that DropReplies dropped.
var errReplyDropped = errors.New("fault injection: reply dropped")

// DropReplies drops the replies of the next count requests of method this
// node serves (count < 0: all of them, until Reset).
func (f *faultHook) DropReplies(method string, count int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drop == nil {
		f.drop = map[string]int{}
	}
	f.drop[method] = count
	f.active.Store(true)
}

// Delay makes this node's outgoing calls of method wait d before they are
// sent (0 removes the delay).
func (f *faultHook) Delay(method string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delay == nil {
		f.delay = map[string]time.Duration{}
	}
	f.delay[method] = d
	f.active.Store(true)
}

// Cut makes this node's outgoing calls to addr fail (cut) or work again.
func (f *faultHook) Cut(addr string, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut == nil {
		f.cut = map[string]bool{}
	}
	f.cut[addr] = cut
	f.active.Store(true)
}

// Dropped returns how many replies of method were dropped so far.
func (f *faultHook) Dropped(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped[method]
}

// Reset removes every fault (the counts of Dropped stay).
func (f *faultHook) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop, f.delay, f.cut = nil, nil, nil
	f.active.Store(false)
}

// dropReply reports whether the reply to a request of method that was
// just served must be dropped, and counts it.
func (f *faultHook) dropReply(method string) bool {
	if !f.active.Load() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	left, ok := f.drop[method]
	if !ok || left == 0 {
		return false
	}
	if left > 0 {
		f.drop[method] = left - 1
	}
	if f.dropped == nil {
		f.dropped = map[string]int{}
	}
	f.dropped[method]++
	return true
}

// beforeCall applies the client-side faults to an outgoing call.
func (f *faultHook) beforeCall(ctx context.Context, addr, method string) error {
	if !f.active.Load() {
		return nil
	}
	f.mu.Lock()
	cut, d := f.cut[addr], f.delay[method]
	f.mu.Unlock()
	if cut {
		return fmt.Errorf("%w: %s: fault injection: link cut", errUnreachable, addr)
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
