package swarm

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Role changes at runtime. The leader records a node's role; the node
// itself makes its running role follow the record: a promoted worker
// starts Raft and asks to be added as a voter, a demoted manager (already
// out of the Raft configuration, or about to be) stops Raft, drops its
// Raft state and carries on as a worker whose agent talks to the managers
// over RPC.
//
// The node hears of a change from its own state (managers: onApply), from
// its agent's assignments long poll (the reply carries the node record's
// role), or, failing those, from a periodic check. Whatever the hint, the
// one goroutine that acts (roleLoop) first reads the record on the leader,
// so a stale manager can never make a node flap.

// roleCheckInterval is how often roleLoop checks a node that may have
// missed news of its role (a manager without a leader or outside the Raft
// configuration, a worker without an agent).
const roleCheckInterval = 2 * time.Second

func (n *Node) startRoleLoop() {
	n.wg.Add(1)
	go n.roleLoop()
}

// noticeRole wakes roleLoop when role (from a node record) differs from
// the node's running role.
func (n *Node) noticeRole(role Role) {
	if role == "" || role == n.Role() {
		return
	}
	select {
	case n.roleWake <- struct{}{}:
	default:
	}
}

// noticeOwnRecord runs after every applied entry on a manager: a change to
// this node's record may change its role.
func (n *Node) noticeOwnRecord(c *command) {
	var id string
	switch c.Type {
	case cmdNodeSpec, cmdNodeUpdate:
		id = c.ID
	case cmdNodeUpsert:
		if c.Node != nil {
			id = c.Node.ID
		}
	default:
		return
	}
	if id == "" || id != n.ID() {
		return
	}
	role, _ := n.recordRole(id)
	n.noticeRole(role)
}

// recordRole returns the role and version of a node's record in this
// manager's state ("" when it has none).
func (n *Node) recordRole(id string) (Role, uint64) {
	var (
		role Role
		ver  uint64
	)
	n.fsm.read(func(s *state) {
		if nd, ok := s.nodes[id]; ok {
			role, ver = nd.Role, nd.Version
		}
	})
	return role, ver
}

// noteRole passes the role an assignments reply carries to the node, once
// per newer version of the node record (so the agent's next poll does not
// return at once for the same news).
func (a *agent) noteRole(reply *assignReply) {
	if reply.Role == "" || reply.NodeVersion <= a.roleVer {
		return
	}
	a.roleSeen, a.roleVer = reply.Role, reply.NodeVersion
	a.n.noticeRole(reply.Role)
}

// roleLoop owns the node's role changes until Shutdown.
func (n *Node) roleLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(roleCheckInterval)
	defer tick.Stop()
	var check, retry bool
	for attempt := 0; ; {
		if check {
			err := n.reconcileRole()
			if err != nil && retry && !n.isStopped() {
				n.log.Debug("role change failed, retrying", "error", err)
				attempt++
				select {
				case <-n.shutdownCh:
					return
				case <-time.After(backoff(attempt)):
				}
				continue
			}
			if err != nil {
				n.log.Debug("role check failed", "error", err)
			}
			check, retry, attempt = false, false, 0
		}
		select {
		case <-n.shutdownCh:
			return
		case <-n.roleWake:
			// Explicit news is retried until it is acted on: nothing
			// would bring it again.
			check, retry = true, true
		case <-tick.C:
			check = n.roleSuspect()
		}
	}
}

// roleSuspect reports whether the node may have missed news of its role.
func (n *Node) roleSuspect() bool {
	r := n.raftNode()
	role := n.Role()
	switch {
	case r == nil:
		// A worker's agent hears of a promotion; without one, ask.
		return role == RoleManager || n.agentRef() == nil
	case role != RoleManager:
		return true // a promotion that has not finished
	}
	if addr, _ := r.LeaderWithID(); addr == "" {
		return true // demoted and removed while cut off, perhaps
	}
	voters, err := n.raftVoters()
	_, ok := voters[n.ID()]
	return err == nil && !ok
}

// reconcileRole reads this node's record on the leader and starts or
// stops Raft to match it.
func (n *Node) reconcileRole() error {
	ctx, cancel := context.WithTimeout(n.baseCtx, n.cfg.RPCTimeout)
	defer cancel()
	rec, err := n.ownRecord(ctx)
	if err != nil {
		return err
	}
	switch {
	case !rec.Found:
		// Removed from the swarm (RemoveNode with force): nothing to
		// run; its agent stops the tasks as they are deleted.
		return nil
	case rec.Role == RoleManager && n.Role() != RoleManager:
		return n.promoteSelf(ctx)
	case rec.Role == RoleWorker && (n.Role() != RoleWorker || n.raftNode() != nil):
		return n.demoteSelf()
	}
	return nil
}

// ownRecord asks the leader for this node's role and record version.
func (n *Node) ownRecord(ctx context.Context) (*nodeMgmtReply, error) {
	args := &nodeMgmtArgs{Op: nodeOpRecord, Ref: n.ID()}
	if n.IsLeader() {
		return n.handleNodeMgmt(ctx, args)
	}
	var reply nodeMgmtReply
	if err := n.callManagers(ctx, "nodeMgmt", args, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// promoteSelf starts Raft on a promoted worker and has the leader add it
// as a voter. The leader sends it the log (or a snapshot) from the start.
func (n *Node) promoteSelf(ctx context.Context) error {
	// A manager certificate first: Raft streams and addVoter are for
	// managers only (tls.go).
	if c := n.sec.get(); c == nil || c.role() != RoleManager {
		if err := n.renewCert(ctx); err != nil {
			return err
		}
		if c := n.sec.get(); c.role() != RoleManager {
			return fmt.Errorf("swarm: promoted, but the certificate issued is a %s's", c.role())
		}
	}
	if n.raftNode() == nil {
		// A worker keeps no Raft state: start from nothing.
		if err := n.wipeRaftData(); err != nil {
			return err
		}
		n.fsm.reset()
		if err := n.startRaft(false); err != nil {
			return err
		}
	}
	if err := n.callManagers(ctx, "addVoter", &addVoterArgs{NodeID: n.ID(), Addr: n.Addr()}, nil); err != nil {
		return fmt.Errorf("swarm: promoted, but joining the raft configuration failed: %w", err)
	}
	n.setRole(RoleManager, nil)
	n.log.Info("promoted to manager", "node", n.ID())
	return nil
}

// demoteSelf stops Raft on a demoted manager, drops its Raft state and
// replicated state, and makes it a worker.
func (n *Node) demoteSelf() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return ErrShutdown
	}
	// From here on checkManager fails: handlers and the agent go remote.
	r, stop, stores := n.raft, n.raftStop, n.stores
	n.raft, n.raftStop, n.stores = nil, nil, nil
	n.mu.Unlock()
	var managers []string
	if r != nil {
		if f := r.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if string(s.ID) != n.ID() {
					managers = append(managers, string(s.Address))
				}
			}
		}
		if err := r.Shutdown().Error(); err != nil {
			n.log.Warn("raft shutdown", "error", err)
		}
		close(stop)
		n.stopLeading()
	}
	closeAll(stores)
	if err := n.wipeRaftData(); err != nil {
		n.log.Warn("removing raft state failed", "error", err)
	}
	n.forgetDataKey() // a worker never holds the data key
	n.fsm.reset()
	n.setRole(RoleWorker, managers)
	n.wakeCert() // a worker's certificate replaces the manager's
	n.log.Info("demoted to worker", "node", n.ID())
	return nil
}

// setRole records the node's running role, publishes it over gossip (so
// workers find or stop using this manager) and saves it in DataDir.
func (n *Node) setRole(role Role, managers []string) {
	n.mu.Lock()
	n.role, n.ident.Role = role, role
	if len(managers) > 0 {
		n.ident.Managers = managers
	}
	ml, stopped := n.ml, n.stopped
	n.mu.Unlock()
	if stopped {
		return
	}
	if ml != nil {
		// UpdateNode waits until the news has been gossiped (a few gossip
		// rounds) and cannot be interrupted by Shutdown: wait briefly; on
		// a timeout the broadcast still goes out.
		if err := ml.UpdateNode(max(20*n.cfg.GossipInterval, 500*time.Millisecond)); err != nil {
			n.log.Debug("publishing the node's role over gossip is slow", "error", err)
		}
	}
	if err := n.saveIdentity(); err != nil {
		n.log.Warn("saving the node's role failed", "error", err)
	}
}

// wipeRaftData removes the Raft log, stable store and snapshots from DataDir.
func (n *Node) wipeRaftData() error {
	if n.cfg.DataDir == "" {
		return nil
	}
	for _, name := range []string{"raft.db", "snapshots"} {
		if err := os.RemoveAll(filepath.Join(n.cfg.DataDir, name)); err != nil {
			return fmt.Errorf("swarm: remove raft state: %w", err)
		}
	}
	return nil
}

// reset empties the state (a node's Raft is stopped or not yet started).
// Waiters wake up and see the change.
func (f *fsm) reset() {
	f.mu.Lock()
	f.st = newState()
	f.dedupe = nil // rebuilt from the log with the state (dedupe.go)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}

// raftStream is one Raft instance's stream layer over the node's shared
// listener. Closing it (Raft's transport does when Raft shuts down) ends
// its Accept and closes every connection it accepted or dialled, so a
// demoted manager's Raft leaves no goroutine behind while the node runs on.
type raftStream struct {
	t      *transport
	closed chan struct{}

	mu    sync.Mutex
	conns map[*raftConn]struct{} // nil once closed
}

var _ raft.StreamLayer = (*raftStream)(nil)

func newRaftStream(t *transport) *raftStream {
	return &raftStream{t: t, closed: make(chan struct{}), conns: map[*raftConn]struct{}{}}
}

// raftConn untracks itself when Raft closes it.
type raftConn struct {
	net.Conn
	s    *raftStream
	once sync.Once
}

func (c *raftConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

func (s *raftStream) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		c.Close()
		return nil, net.ErrClosed
	}
	rc := &raftConn{Conn: c, s: s}
	s.conns[rc] = struct{}{}
	return rc, nil
}

// Accept implements net.Listener.
func (s *raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.t.raftConns:
		return s.track(c)
	case <-s.t.done:
		return nil, net.ErrClosed
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *raftStream) Close() error {
	s.mu.Lock()
	conns := s.conns
	if conns != nil {
		s.conns = nil
		close(s.closed)
	}
	s.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return nil
}

// Addr implements net.Listener.
func (s *raftStream) Addr() net.Addr { return advertisedAddr(s.t.advertise) }

// Dial implements raft.StreamLayer.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.t.dial(ctx, string(address), connRaft)
	if err != nil {
		return nil, err
	}
	return s.track(c)
}
