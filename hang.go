package swarm

import (
	"sync"
	"sync/atomic"
)

// The hang hook is for tests only: it makes a node's process stop
// answering while its sockets stay open and its kernel keeps accepting
// connections, as a SIGSTOPped or deadlocked process does. While a node
// hangs, its RPC handlers, its heartbeats and its agent's loops block at
// hangPoint; gossip (memberlist's own goroutines) and Raft keep running,
// so only the session heartbeat can tell. Nothing outside tests sets it.

var (
	hangMu    sync.Mutex
	hangGates = map[*Node]chan struct{}{}
	// hanging counts the hung nodes, so that hangPoint costs one atomic
	// load when none is.
	hanging atomic.Int32
)

// hang makes n stop answering until the returned release is called (or n
// shuts down). Calling release more than once is harmless.
func (n *Node) hang() (release func()) {
	hangMu.Lock()
	defer hangMu.Unlock()
	if _, ok := hangGates[n]; ok {
		return func() {}
	}
	ch := make(chan struct{})
	hangGates[n] = ch
	hanging.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			hangMu.Lock()
			delete(hangGates, n)
			hangMu.Unlock()
			hanging.Add(-1)
			close(ch)
		})
	}
}

// hangPoint blocks while n hangs.
func (n *Node) hangPoint() {
	if hanging.Load() == 0 {
		return
	}
	hangMu.Lock()
	ch := hangGates[n]
	hangMu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-n.shutdownCh:
	}
}
