package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The cancellable lifecycle. A daemon passes the context its SIGTERM
// cancels: a join that hangs (a manager that accepts connections and never
// answers, or none reachable) then returns at once instead of after its
// internal timeout. Init, Join, Leave and Unlock are these with
// context.Background().

// InitContext is [Node.Init] under ctx. If ctx ends before the swarm is
// initialised, InitContext returns an error wrapping ctx.Err() and the
// node is shut down, as after any failed Init (make a new Node to try
// again; a DataDir it wrote is resumed by the next Init).
func (n *Node) InitContext(ctx context.Context) error {
	if err := n.begin(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		n.Shutdown()
		return fmt.Errorf("swarm: init: %w", err)
	}
	if err := n.init(ctx); err != nil {
		n.Shutdown()
		return withCtxErr(ctx, err)
	}
	return nil
}

// JoinContext is [Node.Join] under ctx. If ctx ends before the node is
// admitted and running, JoinContext returns an error wrapping ctx.Err()
// and the node is shut down, as after any failed Join (make a new Node to
// try again). A node the leader admitted just before ctx ended is in the
// swarm's node table and shows as down until removed or rejoined from its
// DataDir.
func (n *Node) JoinContext(ctx context.Context, addr string) error {
	if err := n.begin(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		n.Shutdown()
		return fmt.Errorf("swarm: join %s: %w", addr, err)
	}
	if err := n.join(ctx, addr); err != nil {
		n.Shutdown()
		return withCtxErr(ctx, err)
	}
	return nil
}

// LeaveContext is [Node.Leave] under ctx, each step also bounded by
// Config.RPCTimeout. If ctx ends before the managers have recorded the
// departure, LeaveContext returns an error wrapping ctx.Err() and the node
// keeps running (the managers may already show it down): call Leave again,
// or Shutdown. Once the departure is recorded the node shuts down and
// wipes its DataDir whatever ctx says; if ctx ended while its containers
// were being stopped, the error (wrapping ctx.Err()) says that some may
// still run.
func (n *Node) LeaveContext(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return ErrShutdown
	}
	if !n.started {
		n.mu.Unlock()
		return ErrNotInSwarm
	}
	n.mu.Unlock()
	if err := n.lockedErr(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("swarm: leave: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, n.cfg.RPCTimeout)
	defer cancel()
	if err := n.leave(lctx); err != nil {
		return withCtxErr(ctx, err)
	}
	if a := n.agentRef(); a != nil {
		a.stopAll(lctx)
	}
	stopErr := ctx.Err()
	if ml := n.memberlistRef(); ml != nil {
		// The goodbye is a courtesy (the managers already marked the node
		// down): wait for it at most a second.
		ml.Leave(time.Second)
	}
	n.Shutdown()
	if err := wipeDataDir(n.cfg.DataDir); err != nil {
		return err
	}
	if stopErr != nil {
		return fmt.Errorf("swarm: left the swarm, but stopping its containers was cut short: %w", stopErr)
	}
	return nil
}

// UnlockContext is [Node.Unlock] under ctx. If ctx has ended already,
// UnlockContext returns an error wrapping ctx.Err() and the node stays
// locked (Unlock it later). If ctx ends while the unlocked node resumes,
// the node is shut down, as after a failed Init.
func (n *Node) UnlockContext(ctx context.Context, key string) error {
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	if stopped {
		return ErrShutdown
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("swarm: unlock: %w", err)
	}
	raw, err := parseUnlockKey(key)
	if err != nil {
		return err
	}
	k := n.keys
	k.mu.Lock()
	if !k.locked {
		k.mu.Unlock()
		return invalidf("Unlock: the node is not locked")
	}
	dek, err := k.file.open(raw)
	if err != nil {
		k.mu.Unlock()
		return err
	}
	ident, addr := k.ident, k.addr
	k.dek, k.keyID, k.fileVersion = dek, k.file.KeyID, k.file.RecordVersion
	k.locked, k.file, k.ident = false, nil, nil
	k.mu.Unlock()
	if err := n.resume(ctx, ident, addr); err != nil {
		n.Shutdown()
		return withCtxErr(ctx, err)
	}
	return nil
}

// JoinTokenContext returns the token that joins a node with the given
// role, read like every other read of the swarm's state (linearizable
// unless ctx carries [WithStaleReads]): a follower returns the token the
// leader holds, never one rotated away. Only managers know the tokens.
func (n *Node) JoinTokenContext(ctx context.Context, role Role) (string, error) {
	if err := role.valid(); err != nil {
		return "", err
	}
	if err := n.readBarrier(ctx); err != nil {
		return "", err
	}
	var cl *clusterRecord
	n.fsm.read(func(s *state) { cl = s.cluster })
	if cl == nil {
		return "", fmt.Errorf("%w: the swarm's state has not replicated to this manager yet", ErrNoLeader)
	}
	if role == RoleManager {
		return formatToken(cl.Digest, cl.ManagerSecret), nil
	}
	return formatToken(cl.Digest, cl.WorkerSecret), nil
}

// withCtxErr makes sure an error that ctx's end caused wraps ctx.Err():
// the steps below may report it as a timeout of their own, an unreachable
// peer or a missing leader.
func withCtxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil || errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, cerr)
}
