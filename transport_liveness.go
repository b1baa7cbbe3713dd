package swarm

import (
	"net/rpc"
	"sync"
	"time"
)

// replyClock remembers when each pooled RPC client last got a reply. A
// call that times out drops its client (and so redials, with a TLS
// handshake) only if nothing came back on that connection since the call
// was sent: a partitioned or hung peer answers nothing, but a busy one
// keeps answering other calls. Dropping on every timeout made an
// overloaded leader collapse: each timeout cost every caller a new
// handshake, which overloaded it more (measured: 3 managers + 100 workers
// on the in-memory network never converged 10k replicas).
type replyClock struct {
	mu   sync.Mutex
	last map[*rpc.Client]time.Time
}

func (r *replyClock) replied(c *rpc.Client) {
	now := time.Now()
	r.mu.Lock()
	if r.last == nil {
		r.last = map[*rpc.Client]time.Time{}
	}
	r.last[c] = now
	r.mu.Unlock()
}

// silentSince reports whether c has had no reply since t.
func (r *replyClock) silentSince(c *rpc.Client, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.last[c]
	return !ok || last.Before(t)
}

func (r *replyClock) forget(c *rpc.Client) {
	r.mu.Lock()
	delete(r.last, c)
	r.mu.Unlock()
}

func (r *replyClock) reset() {
	r.mu.Lock()
	r.last = nil
	r.mu.Unlock()
}
