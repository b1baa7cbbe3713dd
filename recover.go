package swarm

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// The node runs inside someone else's process: a bug in one of its
// goroutines must not take that process down. The long-lived loops (the
// orchestrator and scheduler pass, liveness, the status batcher, the
// agent's loops, event pumps, RPC handlers) run each iteration's work
// through guard, which recovers a panic, logs it with its stack and turns
// it into an error, so the loop goes on with its next iteration. The
// orchestrator goes further and guards each service on its own
// (orch_guard.go): one service's bug is shown on that service and the
// rest of the swarm keeps converging.

// errPanic is wrapped by the error guard returns for a recovered panic.
var errPanic = fmt.Errorf("swarm: internal error (recovered panic)")

// panics counts the panics the package has recovered, for tests.
var panics atomic.Int64

// guard runs fn; a panic in it is recovered, logged as an error with its
// stack, and returned as an error wrapping errPanic that names what.
func (n *Node) guard(what string, fn func()) error { return catchPanic(n.log, what, fn) }

// guardErr is guard for a function that returns an error.
func (n *Node) guardErr(what string, fn func() error) (err error) {
	if perr := n.guard(what, func() { err = fn() }); perr != nil {
		return perr
	}
	return err
}

// endGoroutine, deferred at the top of a goroutine whose end is harmless
// (an event pump, one connection's handler), recovers its panic and logs
// it: the goroutine ends, the process does not.
func (n *Node) endGoroutine(what string) {
	if r := recover(); r != nil {
		panicked(n.log, what, r)
	}
}

// catchPanic is guard for code without a Node (the FSM, the transport);
// log may be nil.
func catchPanic(log hclog.Logger, what string, fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicked(log, what, r)
		}
	}()
	fn()
	return nil
}

func panicked(log hclog.Logger, what string, r any) error {
	panics.Add(1)
	if log != nil {
		log.Error("recovered from a panic; please report this bug", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
	return fmt.Errorf("%w in %s: %v", errPanic, what, r)
}
