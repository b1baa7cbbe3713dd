package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"time"

	"github.com/hashicorp/raft"
)

// rpcServer is the receiver net/rpc serves, one per connection. Its one
// method dispatches by name to the node's handlers, so the request and
// reply types can stay unexported, after authorizeRPC has checked the
// call against peer, the node whose certificate opened the connection
// (nil: none; tls.go).
type rpcServer struct {
	n    *Node
	peer *peerInfo
}

// serveRPCConn serves RPC on one connection from peer.
func (n *Node) serveRPCConn(c net.Conn, p *peerInfo) {
	s := rpc.NewServer()
	if err := s.RegisterName("Swarm", &rpcServer{n: n, peer: p}); err != nil {
		n.log.Error("rpc server", "error", err)
		return
	}
	s.ServeConn(c)
}

// Call is the single net/rpc entry point: req is "<method>\n<json args>",
// resp a JSON rpcEnvelope.
func (s *rpcServer) Call(req []byte, resp *[]byte) error {
	n := s.n
	method, body, ok := bytes.Cut(req, []byte("\n"))
	var env rpcEnvelope
	if !ok {
		env.setErr(invalidf("malformed request"))
	} else {
		var out any
		var err error
		if perr := n.guard("rpc "+trunc(string(method)), func() {
			out, err = n.authorizeRPC(s.peer, string(method), body)
			if err == nil && out == nil {
				out, err = n.dispatch(n.baseCtx, string(method), body)
			}
		}); perr != nil {
			err = perr
		}
		if n.tr.faults.dropReply(string(method)) {
			return errReplyDropped // served, but the reply is lost (faults.go)
		}
		if err != nil {
			env.setErr(err)
		} else if out != nil {
			b, err := json.Marshal(out)
			if err != nil {
				env.setErr(err)
			} else {
				env.Body = b
			}
		}
	}
	b, err := json.Marshal(&env)
	if err != nil {
		return err
	}
	*resp = b
	return nil
}

func decodeArgs[T any](body []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, invalidf("malformed request: %v", err)
	}
	return &v, nil
}

// serveArgs decodes a request's arguments and runs its handler.
func serveArgs[A, R any](body []byte, h func(*A) (R, error)) (any, error) {
	a, err := decodeArgs[A](body)
	if err != nil {
		return nil, err
	}
	return h(a)
}

// noReply adapts a handler that answers only with an error.
func noReply[A any](h func(*A) error) func(*A) (any, error) {
	return func(a *A) (any, error) { return nil, h(a) }
}

func (n *Node) dispatch(ctx context.Context, method string, body []byte) (any, error) {
	n.hangPoint()
	switch method {
	case "join":
		return serveArgs(body, func(a *joinArgs) (*joinReply, error) { return n.handleJoin(ctx, a) })
	case "addVoter":
		return serveArgs(body, func(a *addVoterArgs) (*applyReply, error) { return n.handleAddVoter(ctx, a) })
	case "apply":
		return serveArgs(body, func(a *applyArgs) (*applyReply, error) {
			if err := n.checkLeader(); err != nil {
				return nil, err
			}
			idx, err := n.applyLocal(ctx, a.Cmd)
			return &applyReply{Index: idx}, err
		})
	case "assignments":
		return serveArgs(body, func(a *assignArgs) (*assignReply, error) { return n.handleAssignments(ctx, a) })
	case "status":
		return serveArgs(body, noReply(func(a *statusArgs) error { return n.handleStatus(ctx, a) }))
	case "readIndex":
		return n.handleReadIndex(ctx)
	case "leave":
		return serveArgs(body, noReply(func(a *leaveArgs) error { return n.handleLeave(ctx, a) }))
	case "dataKey":
		return serveArgs(body, func(a *dataKeyArgs) (any, error) { return n.handleDataKey(ctx, a) })
	case "nodeMgmt":
		return serveArgs(body, func(a *nodeMgmtArgs) (*nodeMgmtReply, error) { return n.handleNodeMgmt(ctx, a) })
	case "heartbeat", "ping":
		return n.dispatchHeartbeat(ctx, method, body)
	}
	return n.dispatchSecurity(ctx, method, body)
}

// checkLeader fails unless this node is a manager and the leader.
func (n *Node) checkLeader() error {
	if err := n.checkManager(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return errNotLeader
	}
	return nil
}

type joinArgs struct {
	Token string
	// Rejoin is set by a node resuming from its DataDir; ClusterID is then
	// the swarm it belongs to.
	Rejoin    bool
	ClusterID string
	Node      NodeInfo
	Forwarded bool
	// CSR is the certificate signing request for the node's new key.
	CSR []byte
}

type joinReply struct {
	// NodeID is the node's ID, assigned by the leader to a new node
	// (nodeid.go).
	NodeID    string
	ClusterID string
	Role      Role
	Managers  []string
	Index     uint64
	// DataKey and DataKeyID are the swarm's data-encryption key, for a
	// node that joins as a manager only (keys.go).
	DataKey   []byte `json:",omitempty"`
	DataKeyID string `json:",omitempty"`
	// Sec carries the node's certificate, the CA and the gossip keyring (tls.go).
	Sec *securityBundle `json:",omitempty"`
}

type addVoterArgs struct {
	NodeID, Addr string
	Forwarded    bool
}

type applyArgs struct{ Cmd *command }

type applyReply struct{ Index uint64 }

type assignArgs struct {
	NodeID string
	Since  uint64
	First  bool
	Wait   time.Duration
	// Role is the node's role as the agent last heard it, from the node
	// record at NodeVersion: the poll also ends when a newer record says
	// otherwise (the node was promoted or demoted).
	Role        Role
	NodeVersion uint64
}

// assignReply carries the node's tasks that changed after the request's
// Since (all of them when First), and the IDs of all its current tasks so
// the agent can forget deleted ones.
// Tasks travel without their specs; Specs holds each spec once, keyed by
// specKey.
type assignReply struct {
	Index uint64
	Tasks []*Task
	IDs   []string
	Specs map[string]ServiceSpec
	// Role and NodeVersion are the node record's ("" when the answering
	// manager has no record of the node).
	Role        Role
	NodeVersion uint64
	// Secrets and Configs hold the data (by ID) of the secrets and configs
	// that the reply's live tasks reference, and nothing else: a node
	// learns only what its own tasks use (secrets.go).
	Secrets map[string][]byte `json:",omitempty"`
	Configs map[string][]byte `json:",omitempty"`
	files   *filePayload
}

func specKey(t *Task) string { return t.ServiceID + "/" + uitoa(t.SpecVersion) }

type statusArgs struct {
	NodeID    string
	Ops       []taskOp
	Forwarded bool
}

type leaveArgs struct {
	NodeID    string
	Forwarded bool
}

// apply replicates a command through the leader and returns its index.
// On a follower it forwards to the leader, then waits until the local
// state has caught up, so a read after a write sees the write. While there
// is no leader it retries until ctx ends (or RPCTimeout, without a deadline).
// Every attempt carries the same request ID, generated here once per call:
// an attempt whose reply was lost after it committed is not applied again
// by the retry, which returns the first outcome (dedupe.go).
func (n *Node) apply(ctx context.Context, c *command) (uint64, error) {
	if err := n.checkManager(); err != nil {
		return 0, err
	}
	if c.ReqID == "" {
		cc := *c
		cc.ReqID = newRequestID()
		c = &cc
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RPCTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		idx, err := n.applyOnce(ctx, c)
		if err == nil {
			return idx, n.waitApplied(ctx, idx)
		}
		if !errors.Is(err, ErrNoLeader) && !errors.Is(err, errUnreachable) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %v (%v)", ErrNoLeader, ctx.Err(), err)
		case <-n.shutdownCh:
			return 0, ErrShutdown
		case <-time.After(min(10*time.Millisecond<<min(attempt, 4), 100*time.Millisecond)):
		}
	}
}

func (n *Node) applyOnce(ctx context.Context, c *command) (uint64, error) {
	r := n.raftNode()
	if r == nil {
		return 0, ErrNotManager // demoted meanwhile
	}
	if r.State() == raft.Leader {
		return n.applyLocal(ctx, c)
	}
	addr, _ := r.LeaderWithID()
	if addr == "" {
		return 0, ErrNoLeader
	}
	var reply applyReply
	if err := n.tr.call(ctx, string(addr), "apply", &applyArgs{Cmd: c}, &reply); err != nil {
		return 0, err
	}
	return reply.Index, nil
}

// applyLocal applies on this node, which must be the leader.
func (n *Node) applyLocal(ctx context.Context, c *command) (uint64, error) {
	cc := *c
	cc.Time = n.stampTime()
	data, err := encodeCommand(&cc)
	if err != nil {
		return 0, err
	}
	timeout := n.cfg.RPCTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	r := n.raftNode()
	if r == nil {
		return 0, ErrNotManager
	}
	f := r.Apply(data, timeout)
	if err := n.waitFuture(ctx, f); err != nil {
		return 0, err
	}
	switch resp := f.Response().(type) {
	case *applyOutcome:
		// A retry of a request ID that was applied before.
		return resp.Index, resp.Err
	case error:
		return f.Index(), resp
	}
	return f.Index(), nil
}

// waitFuture waits for a Raft future, but no longer than ctx or the node's
// life: a future can stay pending forever when Raft shuts down under it
// (hashicorp/raft#498), which would hang its caller and Shutdown.
func (n *Node) waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return translateRaftErr(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
	case <-n.shutdownCh:
		return ErrShutdown
	}
}

// callManagers makes an RPC to some manager, trying each known one and
// retrying until ctx ends while none answers.
func (n *Node) callManagers(ctx context.Context, method string, args, reply any) error {
	for attempt := 0; ; attempt++ {
		var lastErr error = fmt.Errorf("%w: no manager address known", ErrNoLeader)
		for _, addr := range n.managerAddrs() {
			if addr == n.Addr() {
				continue
			}
			err := n.tr.call(ctx, addr, method, args, reply)
			if err == nil {
				return nil
			}
			lastErr = err
			if !errors.Is(err, errUnreachable) && !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrNotManager) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", lastErr, ctx.Err())
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(min(20*time.Millisecond<<min(attempt, 4), 200*time.Millisecond)):
		}
	}
}

// errNotLeader refuses a request that was forwarded once already and still
// did not reach the leader: the caller retries.
var errNotLeader = fmt.Errorf("%w: this manager is not the leader", ErrNoLeader)

// forwardUnlessLeader is how a request that only the leader may serve
// starts: on the leader it returns handled=false and the caller serves it;
// on another manager it forwards the request once (setting *forwarded
// first) and returns the leader's answer in reply with handled=true.
func (n *Node) forwardUnlessLeader(ctx context.Context, method string, forwarded *bool, args, reply any) (handled bool, err error) {
	if err := n.checkManager(); err != nil {
		return true, err
	}
	if n.IsLeader() {
		return false, nil
	}
	if *forwarded {
		return true, errNotLeader
	}
	*forwarded = true
	return true, n.forward(ctx, method, args, reply)
}

// forward sends a request that must run on the leader to the leader.
func (n *Node) forward(ctx context.Context, method string, args, reply any) error {
	for attempt := 0; ; attempt++ {
		r := n.raftNode()
		if r == nil {
			return ErrNotManager
		}
		addr, _ := r.LeaderWithID()
		var err error
		if addr == "" {
			err = ErrNoLeader
		} else if string(addr) == n.Addr() {
			err = fmt.Errorf("%w: leadership is changing", ErrNoLeader)
		} else {
			err = n.tr.call(ctx, string(addr), method, args, reply)
		}
		if err == nil || (!errors.Is(err, ErrNoLeader) && !errors.Is(err, errUnreachable)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(min(10*time.Millisecond<<min(attempt, 4), 100*time.Millisecond)):
		}
	}
}

// joinRPC asks the managers at peers to admit this node.
func (n *Node) joinRPC(ctx context.Context, peers []string, rejoin bool) (*joinReply, error) {
	// Every join gets the node a new certificate for a new key.
	key, err := newNodeKey()
	if err != nil {
		return nil, err
	}
	csr, err := newCSR(key, n.ID())
	if err != nil {
		return nil, err
	}
	args := &joinArgs{Token: n.cfg.JoinToken, Rejoin: rejoin, ClusterID: n.clusterIDRef(), Node: *n.selfInfo(ctx, n.Role()), CSR: csr}
	// A new node pins the swarm's CA by the token's digest before it
	// sends the token; a resuming one talks mutual TLS with the CA and the
	// certificate in its DataDir.
	var pin string
	if !rejoin {
		pin, _, _ = parseToken(n.cfg.JoinToken)
	}
	var lastErr error = fmt.Errorf("%w: no manager address", ErrNoLeader)
	for attempt := 0; ; attempt++ {
		for _, p := range peers {
			var reply joinReply
			var err error
			if rejoin {
				err = n.tr.call(ctx, p, "join", args, &reply)
			} else {
				err = n.tr.callPinned(ctx, p, pinnedTLSConfig(pin), "join", args, &reply)
			}
			if err == nil {
				if !rejoin {
					if err := n.takeAssignedID(reply.NodeID); err != nil {
						return nil, err
					}
				}
				if err := n.adoptBundle(reply.Sec, key, pin); err != nil {
					return nil, err
				}
				if reply.Role == RoleManager && !rejoin {
					if err := n.ensureRaft(); err != nil {
						return nil, err
					}
					var vr applyReply
					if err := n.tr.call(ctx, p, "addVoter", &addVoterArgs{NodeID: n.ID(), Addr: n.Addr()}, &vr); err != nil {
						return nil, fmt.Errorf("swarm: join as manager: %w", err)
					}
					// reply.Index (the node's record) is the entry to wait
					// for: the configuration change has no FSM index.
				}
				return &reply, nil
			}
			lastErr = err
			if !errors.Is(err, errUnreachable) && !errors.Is(err, ErrNoLeader) {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("swarm: join %v: %w", peers, lastErr)
		case <-n.shutdownCh:
			return nil, ErrShutdown
		case <-time.After(min(20*time.Millisecond<<min(attempt, 4), 200*time.Millisecond)):
		}
	}
}

func (n *Node) clusterIDRef() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.clusterID
}

// handleJoin admits a node (on the leader; other managers forward).
func (n *Node) handleJoin(ctx context.Context, a *joinArgs) (*joinReply, error) {
	var fwdReply joinReply
	if handled, err := n.forwardUnlessLeader(ctx, "join", &a.Forwarded, a, &fwdReply); handled {
		return &fwdReply, err
	}
	var (
		cl       *clusterRecord
		existing *NodeInfo
	)
	n.fsm.read(func(s *state) { cl, existing = s.cluster, s.nodes[a.Node.ID] })
	if cl == nil {
		return nil, fmt.Errorf("%w: the swarm is not initialised yet", ErrNoLeader)
	}
	var role Role
	if a.Rejoin {
		if a.Node.ID == "" {
			return nil, invalidf("join without a node ID")
		}
		if a.ClusterID != cl.ID {
			return nil, fmt.Errorf("%w: the node's DataDir belongs to swarm %s, not %s", ErrInvalidToken, a.ClusterID, cl.ID)
		}
		if existing == nil {
			return nil, fmt.Errorf("%w: node %s was removed from the swarm; clear its DataDir to join again", ErrNotFound, a.Node.ID)
		}
		role = existing.Role
	} else {
		var err error
		if role, err = cl.roleForToken(a.Token); err != nil {
			return nil, err
		}
	}
	pub, err := csrPublicKey(a.CSR)
	if err != nil {
		return nil, err
	}
	if !a.Rejoin {
		// The leader names a new node; the ID it asked with is ignored.
		if a.Node.ID, err = assignedNodeID(cl.ID, pub); err != nil {
			return nil, err
		}
		if _, gone := cl.Revoked[a.Node.ID]; gone {
			return nil, removedErr(a.Node.ID)
		}
		n.fsm.read(func(s *state) { existing = s.nodes[a.Node.ID] })
		// The same key again: a retry of a join whose reply was lost,
		// from the same address, is answered again.
		if existing != nil && existing.Addr != a.Node.Addr {
			return nil, fmt.Errorf("%w: node ID %s is already in the swarm", ErrNameConflict, a.Node.ID)
		}
	}
	// A new node starts gossip once it has the keyring (the reply); it
	// joins gossip itself. A resuming one gossips already.
	if a.Node.GossipAddr != "" && a.Rejoin {
		if _, err := n.memberlistRef().Join([]string{a.Node.GossipAddr}); err != nil {
			return nil, fmt.Errorf("swarm: cannot reach the joining node's gossip address %s: %w", a.Node.GossipAddr, err)
		}
	}
	sec, err := n.issueBundle(ctx, a.Node.ID, role, pub)
	if err != nil {
		return nil, err
	}
	node := a.Node
	node.Role, node.State, node.Message = role, NodeReady, ""
	idx, err := n.applyLocal(ctx, &command{Type: cmdNodeUpsert, Node: &node})
	if err != nil {
		return nil, err
	}
	if a.Rejoin && role == RoleManager {
		if _, err := n.addVoter(ctx, node.ID, node.Addr); err != nil {
			return nil, err
		}
	}
	n.notifyMembers()
	reply := &joinReply{NodeID: node.ID, ClusterID: cl.ID, Role: role, Managers: n.managerAddrs(), Index: idx, Sec: sec}
	if role == RoleManager {
		reply.DataKey, reply.DataKeyID = n.joinDataKey()
	}
	return reply, nil
}

// handleAddVoter adds a node that joined with the manager token to the
// Raft configuration (or updates its address).
func (n *Node) handleAddVoter(ctx context.Context, a *addVoterArgs) (*applyReply, error) {
	var reply applyReply
	if handled, err := n.forwardUnlessLeader(ctx, "addVoter", &a.Forwarded, a, &reply); handled {
		return &reply, err
	}
	var node *NodeInfo
	n.fsm.read(func(s *state) { node = s.nodes[a.NodeID] })
	if node == nil || node.Role != RoleManager {
		return nil, fmt.Errorf("%w: node %s is not a manager of this swarm", ErrNotManager, a.NodeID)
	}
	idx, err := n.addVoter(ctx, a.NodeID, a.Addr)
	return &applyReply{Index: idx}, err
}

func (n *Node) addVoter(ctx context.Context, id, addr string) (uint64, error) {
	timeout := n.cfg.RPCTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	r := n.raftNode()
	if r == nil {
		return 0, ErrNotManager
	}
	f := r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
	if err := n.waitFuture(ctx, f); err != nil {
		return 0, err
	}
	return f.Index(), nil
}

// handleLeave marks a leaving node down and, for a manager, removes it
// from the Raft configuration (on the leader; others forward).
func (n *Node) handleLeave(ctx context.Context, a *leaveArgs) error {
	if handled, err := n.forwardUnlessLeader(ctx, "leave", &a.Forwarded, a, nil); handled {
		return err
	}
	var node *NodeInfo
	n.fsm.read(func(s *state) { node = s.nodes[a.NodeID] })
	if node == nil {
		return notFoundf("node", a.NodeID)
	}
	if _, err := n.applyLocal(ctx, &command{Type: cmdNodeState, ID: a.NodeID, NodeState: NodeDown, Message: msgNodeLeft}); err != nil {
		return err
	}
	if node.Role == RoleManager {
		return n.removeVoter(ctx, a.NodeID)
	}
	return nil
}

// handleStatus records an agent's batch of status reports. The leader
// merges the batches of all agents that arrive while a write is in flight
// into one log entry; other managers forward to the leader.
func (n *Node) handleStatus(ctx context.Context, a *statusArgs) error {
	if err := n.checkManager(); err != nil {
		return err
	}
	for i := range a.Ops {
		a.Ops[i].Op = opStatus
		a.Ops[i].NodeID = a.NodeID
	}
	if b := n.statusBatcherRef(); b != nil {
		return b.submit(ctx, a.Ops)
	}
	if a.Forwarded {
		return errNotLeader
	}
	a.Forwarded = true
	return n.forward(ctx, "status", a, nil)
}

// handleAssignments is the agents' long poll: it answers with the node's
// tasks as soon as they changed after Since (at once when First), or
// empty-handed after Wait.
func (n *Node) handleAssignments(ctx context.Context, a *assignArgs) (*assignReply, error) {
	wait := min(max(a.Wait, 0), time.Minute)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Checked on every wake-up: a manager demoted meanwhile sends its
		// agents elsewhere.
		if err := n.checkManager(); err != nil {
			return nil, err
		}
		ch, _ := n.fsm.waitCh()
		role, ver := n.recordRole(a.NodeID)
		reply, ok := n.assignments(a.NodeID, a.Since, a.First)
		if !ok && a.Role != "" && role != "" && role != a.Role && ver > a.NodeVersion {
			reply, ok = &assignReply{Index: a.Since}, true // role news only
		}
		if ok {
			if err := n.openFiles(ctx, reply); err != nil {
				return nil, err
			}
			reply.Role, reply.NodeVersion = role, ver
			return reply, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return &assignReply{Index: a.Since, Role: role, NodeVersion: ver}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// assignments returns the node's tasks if they changed after since.
func (n *Node) assignments(nodeID string, since uint64, first bool) (*assignReply, bool) {
	var reply *assignReply
	n.fsm.read(func(s *state) {
		idx := s.nodeIndex[nodeID]
		if !first && idx <= since {
			return
		}
		tasks := s.tasksByNode[nodeID]
		reply = &assignReply{Index: idx, IDs: make([]string, 0, len(tasks))}
		for id, t := range tasks {
			reply.IDs = append(reply.IDs, id)
			if first || s.agentIndex[id] > since {
				if reply.Specs == nil {
					reply.Specs = map[string]ServiceSpec{}
				}
				k := specKey(t)
				if _, ok := reply.Specs[k]; !ok {
					reply.Specs[k] = t.Spec
				}
				slim := *t
				slim.Spec = ServiceSpec{}
				reply.Tasks = append(reply.Tasks, &slim)
			}
		}
		reply.files = s.filesFor(reply)
	})
	return reply, reply != nil
}
