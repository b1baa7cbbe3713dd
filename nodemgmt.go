package swarm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// Node management: the manager-set attributes of nodes (availability,
// labels, role), promotion and demotion, removal, and the node table with
// each manager's Raft status. Every change runs on the leader (other
// managers forward it there), which checks it against the Raft
// configuration before it writes; the node whose role changed then starts
// or stops its own Raft (noderole.go).

var (
	// ErrNodeNotDown means RemoveNode was asked to remove a node that is
	// still up: a ready node needs force, and a manager that is still
	// reachable must be demoted first, even with force (Swarm's rules).
	ErrNodeNotDown = errors.New("swarm: node is not down")
	// ErrQuorumLoss means a demotion or leadership hand-over would leave
	// the managers without a reachable quorum (or without another manager
	// to lead).
	ErrQuorumLoss = errors.New("swarm: the change would leave the managers without a quorum")
)

// cmdNodeSpec sets the manager-set attributes of a node: the non-empty
// fields of Node (Availability, Labels when non-nil, Role), under the
// command's Version check. Demoting the last manager fails in the FSM
// itself, so concurrent demotions cannot leave the swarm without one.
const cmdNodeSpec cmdType = "node-spec"

// applyNodeSpec applies cmdNodeSpec (deterministic; untouched on error).
func (s *state) applyNodeSpec(c *command, index uint64) error {
	old, ok := s.nodes[c.ID]
	if !ok {
		return notFoundf("node", c.ID)
	}
	if c.Version != 0 && c.Version != old.Version {
		return fmt.Errorf("%w: node %s is at version %d, not %d", ErrVersionConflict, c.ID, old.Version, c.Version)
	}
	if c.Node == nil {
		return invalidf("node-spec without a node")
	}
	nd := *old
	if c.Node.Availability != "" {
		nd.Availability = c.Node.Availability
	}
	if c.Node.Labels != nil {
		nd.Labels = c.Node.Labels
	}
	if r := c.Node.Role; r != "" && r != old.Role {
		if old.Role == RoleManager && s.managers() <= 1 {
			return fmt.Errorf("%w: node %s is the swarm's only manager", ErrLastManager, c.ID)
		}
		nd.Role = r
	}
	nd.UpdatedAt, nd.Version = c.Time, index
	s.nodes[nd.ID] = &nd
	return nil
}

// NodeUpdate is a change to a node's manager-set attributes; zero fields
// keep their current value.
type NodeUpdate struct {
	// Availability: active, pause or drain ("" keeps it).
	Availability Availability
	// Labels replace the node's labels when non-nil (an empty map clears them).
	Labels map[string]string
	// Role promotes (RoleManager) or demotes (RoleWorker) the node ("" keeps it).
	Role Role
}

func (u *NodeUpdate) validate() error {
	switch u.Availability {
	case "", AvailabilityActive, AvailabilityPause, AvailabilityDrain:
	default:
		return invalidf("availability %q (want active, pause or drain)", u.Availability)
	}
	if err := validateLabels("node labels", u.Labels); err != nil {
		return err
	}
	if u.Role != "" {
		return u.Role.valid()
	}
	return nil
}

// UpdateNode changes a node's availability, labels or role (Swarm's
// `docker node update`). version must be the node's Version the caller
// read (0 skips the check); a stale version fails with ErrVersionConflict.
// Draining a node moves its tasks elsewhere; pausing only keeps new ones
// away. A role change promotes or demotes the node as PromoteNode and
// DemoteNode do.
func (n *Node) UpdateNode(ctx context.Context, idOrName string, version uint64, u NodeUpdate) error {
	if err := u.validate(); err != nil {
		return err
	}
	u.Labels = copyMap(u.Labels)
	return n.nodeMgmt(ctx, &nodeMgmtArgs{Op: nodeOpUpdate, Ref: idOrName, Version: version, Update: u})
}

// PromoteNode makes a worker a manager (Swarm's `docker node promote`).
// It returns once the swarm has recorded the new role; the node then
// starts Raft and joins the Raft configuration as a voter, and its
// NodeInfo.ManagerStatus appears. A node that is down becomes a manager
// when it comes back. Promoting a manager does nothing.
func (n *Node) PromoteNode(ctx context.Context, idOrName string) error {
	return n.UpdateNode(ctx, idOrName, 0, NodeUpdate{Role: RoleManager})
}

// DemoteNode makes a manager a worker (Swarm's `docker node demote`): it
// leaves the Raft configuration, stops Raft, and keeps running its tasks
// as a worker. A leader hands leadership to another reachable manager
// first. It fails with ErrLastManager for the swarm's last manager and
// with ErrQuorumLoss when the managers left could not reach a quorum.
// Demoting a worker does nothing.
func (n *Node) DemoteNode(ctx context.Context, idOrName string) error {
	return n.UpdateNode(ctx, idOrName, 0, NodeUpdate{Role: RoleWorker})
}

// RemoveNode removes a node from the swarm (Swarm's `docker node rm`).
// Only a node that is down can be removed unless force is set; a manager
// must be demoted first unless it is down, in which case it also leaves
// the Raft configuration (ErrNodeNotDown otherwise, even with force). Its
// tasks are replaced on other nodes, and it cannot rejoin with its old
// identity (ErrNotFound): clear its DataDir to join afresh. A force-removed
// node that still runs stops its tasks as they are deleted.
func (n *Node) RemoveNode(ctx context.Context, idOrName string, force bool) error {
	return n.nodeMgmt(ctx, &nodeMgmtArgs{Op: nodeOpRemove, Ref: idOrName, Force: force})
}

// Nodes returns the swarm's nodes, sorted by hostname then ID.
func (n *Node) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if err := n.readBarrier(ctx); err != nil {
		return nil, err
	}
	v := n.raftView()
	var out []NodeInfo
	n.fsm.read(func(s *state) {
		for _, nd := range s.nodes {
			out = append(out, v.info(nd))
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Hostname != out[j].Hostname {
			return out[i].Hostname < out[j].Hostname
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Node returns one node by full ID, exact hostname or unique ID prefix.
func (n *Node) Node(ctx context.Context, idOrName string) (NodeInfo, error) {
	if err := n.readBarrier(ctx); err != nil {
		return NodeInfo{}, err
	}
	v := n.raftView()
	var (
		out NodeInfo
		err error
	)
	n.fsm.read(func(s *state) {
		var nd *NodeInfo
		if nd, err = s.lookupNode(idOrName); err == nil {
			out = v.info(nd)
		}
	})
	return out, err
}

// raftView is what NodeInfo needs from Raft and gossip, taken before
// the state is read (never under the FSM lock).
type raftView struct {
	self     string
	leaderID string
	voters   map[string]string // node ID -> Raft address
	alive    map[string]bool
}

func (n *Node) raftView() raftView {
	v := raftView{self: n.ID(), alive: n.aliveMembers()}
	if r := n.raftNode(); r != nil {
		_, id := r.LeaderWithID()
		v.leaderID = string(id)
	}
	v.voters, _ = n.raftVoters()
	return v
}

// info returns a copy of nd for callers, with leadership and manager status.
func (v *raftView) info(nd *NodeInfo) NodeInfo {
	c := *nd
	c.Labels, c.EngineLabels = copyMap(nd.Labels), copyMap(nd.EngineLabels)
	c.Leader = v.leaderID != "" && c.ID == v.leaderID
	c.ManagerStatus = nil
	if addr, ok := v.voters[c.ID]; ok {
		ms := &ManagerStatus{Leader: c.Leader, Addr: addr, Reachability: ReachabilityUnknown}
		switch {
		case c.ID == v.self || c.Leader || v.alive[c.ID]:
			ms.Reachability = ReachabilityReachable
		case c.State == NodeDown:
			ms.Reachability = ReachabilityUnreachable
		}
		c.ManagerStatus = ms
	}
	return c
}

// raftVoters returns the voters of this manager's latest Raft
// configuration by node ID (empty on a worker).
func (n *Node) raftVoters() (map[string]string, error) {
	out := map[string]string{}
	r := n.raftNode()
	if r == nil {
		return out, ErrNotManager
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return out, translateRaftErr(err)
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out[string(s.ID)] = string(s.Address)
		}
	}
	return out, nil
}

type nodeMgmtOp string

const (
	nodeOpUpdate nodeMgmtOp = "update"
	nodeOpRemove nodeMgmtOp = "remove"
	// nodeOpRecord reads a node's role and version on the leader.
	nodeOpRecord nodeMgmtOp = "record"
)

// nodeMgmtArgs is a node management request; it runs on the leader.
type nodeMgmtArgs struct {
	Op        nodeMgmtOp
	Ref       string
	Version   uint64
	Update    NodeUpdate
	Force     bool
	Forwarded bool
}

type nodeMgmtReply struct {
	// Index is the log index of the change (0 when nothing was written).
	Index uint64
	// Found, Role and Version answer nodeOpRecord.
	Found   bool
	Role    Role
	Version uint64
}

// nodeMgmt runs a node management request from the public API: on the
// leader, or forwarded to it; then waits until this manager's state
// reflects it (read-your-writes).
func (n *Node) nodeMgmt(ctx context.Context, a *nodeMgmtArgs) error {
	if err := n.checkManager(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*n.cfg.RPCTimeout)
		defer cancel()
	}
	reply, err := n.handleNodeMgmt(ctx, a)
	if err != nil {
		return err
	}
	if reply.Index > 0 && n.raftNode() != nil {
		return n.waitApplied(ctx, reply.Index)
	}
	return nil
}

// handleNodeMgmt serves node management on the leader; other managers
// forward to it.
func (n *Node) handleNodeMgmt(ctx context.Context, a *nodeMgmtArgs) (*nodeMgmtReply, error) {
	fwd := *a // the caller's args stay as they were
	var reply nodeMgmtReply
	if handled, err := n.forwardUnlessLeader(ctx, "nodeMgmt", &fwd.Forwarded, &fwd, &reply); handled {
		if err != nil {
			return nil, err
		}
		return &reply, nil
	}
	switch a.Op {
	case nodeOpRecord:
		reply := &nodeMgmtReply{}
		n.fsm.read(func(s *state) {
			if nd, ok := s.nodes[a.Ref]; ok {
				reply.Found, reply.Role, reply.Version = true, nd.Role, nd.Version
			}
		})
		return reply, nil
	case nodeOpUpdate:
		return n.leaderUpdateNode(ctx, a)
	case nodeOpRemove:
		return n.leaderRemoveNode(ctx, a)
	}
	return nil, invalidf("unknown node operation %q", a.Op)
}

// leaderUpdateNode applies an UpdateNode on the leader. A demotion is
// checked against the Raft configuration first; a leader that demotes
// itself hands leadership over and lets the new leader do it.
func (n *Node) leaderUpdateNode(ctx context.Context, a *nodeMgmtArgs) (*nodeMgmtReply, error) {
	u := a.Update
	if err := u.validate(); err != nil {
		return nil, err
	}
	var (
		nd       *NodeInfo
		managers int
		err      error
	)
	n.fsm.read(func(s *state) {
		nd, err = s.lookupNode(a.Ref)
		managers = s.managers()
	})
	if err != nil {
		return nil, err
	}
	if a.Version != 0 && a.Version != nd.Version {
		return nil, fmt.Errorf("%w: node %s is at version %d, not %d", ErrVersionConflict, nd.ID, nd.Version, a.Version)
	}
	demote := u.Role == RoleWorker && nd.Role == RoleManager
	if u.Availability == "" && u.Labels == nil && (u.Role == "" || u.Role == nd.Role) {
		// Nothing to write (promoting a manager, demoting a worker). A
		// demotion interrupted before the Raft removal finishes here.
		if u.Role == RoleWorker && nd.ID != n.ID() {
			return &nodeMgmtReply{}, n.removeVoter(ctx, nd.ID)
		}
		return &nodeMgmtReply{}, nil
	}
	if demote {
		if managers <= 1 {
			return nil, fmt.Errorf("%w: node %s is the swarm's only manager", ErrLastManager, nd.ID)
		}
		if err := n.checkQuorumWithout(nd.ID); err != nil {
			return nil, err
		}
		if nd.ID == n.ID() {
			if err := n.transferLeadership(ctx); err != nil {
				return nil, err
			}
			fwd := *a
			fwd.Forwarded = true
			var reply nodeMgmtReply
			if err := n.forward(ctx, "nodeMgmt", &fwd, &reply); err != nil {
				return nil, err
			}
			// This node has left the Raft configuration, perhaps before the
			// entry that demoted it reached it: it cannot wait to apply
			// that index (the caller would hang until its deadline), and as
			// a worker it serves no reads that would need it.
			return &nodeMgmtReply{}, nil
		}
	}
	// The role is written first: the demoted node hears of it through
	// Raft while it is still a voter, then leaves the configuration.
	idx, err := n.applyLocal(ctx, &command{Type: cmdNodeSpec, ID: nd.ID, Version: a.Version,
		Node: &NodeInfo{Availability: u.Availability, Labels: u.Labels, Role: u.Role}})
	if err != nil {
		return nil, err
	}
	if demote {
		if err := n.removeVoter(ctx, nd.ID); err != nil {
			// The role is recorded: reconcileManagers retries the removal.
			return nil, err
		}
	}
	n.log.Info("node updated", "node", nd.ID, "availability", u.Availability, "role", u.Role)
	return &nodeMgmtReply{Index: idx}, nil
}

// leaderRemoveNode applies a RemoveNode on the leader.
func (n *Node) leaderRemoveNode(ctx context.Context, a *nodeMgmtArgs) (*nodeMgmtReply, error) {
	var (
		nd       *NodeInfo
		managers int
		err      error
	)
	n.fsm.read(func(s *state) {
		nd, err = s.lookupNode(a.Ref)
		managers = s.managers()
	})
	if err != nil {
		return nil, err
	}
	if nd.State == NodeReady && !a.Force {
		return nil, fmt.Errorf("%w: node %s is not down and can't be removed", ErrNodeNotDown, nd.ID)
	}
	voters, err := n.raftVoters()
	if err != nil {
		return nil, err
	}
	if _, voter := voters[nd.ID]; voter || nd.Role == RoleManager {
		if nd.ID == n.ID() || nd.State != NodeDown || n.aliveMembers()[nd.ID] {
			return nil, fmt.Errorf("%w: node %s is a manager that is still reachable; demote it before removing it", ErrNodeNotDown, nd.ID)
		}
		if nd.Role == RoleManager && managers <= 1 {
			return nil, fmt.Errorf("%w: node %s is the swarm's only manager", ErrLastManager, nd.ID)
		}
		if err := n.removeVoter(ctx, nd.ID); err != nil {
			return nil, err
		}
	}
	idx, err := n.applyLocal(ctx, &command{Type: cmdNodeRemove, ID: nd.ID})
	if err != nil {
		return nil, err
	}
	n.log.Info("node removed", "node", nd.ID, "hostname", nd.Hostname)
	return &nodeMgmtReply{Index: idx}, nil
}

// checkQuorumWithout fails if the voters left after removing id could not
// reach a quorum among the ones this manager can reach.
func (n *Node) checkQuorumWithout(id string) error {
	voters, err := n.raftVoters()
	if err != nil {
		return err
	}
	if _, ok := voters[id]; !ok {
		return nil
	}
	alive, self := n.aliveMembers(), n.ID()
	remaining, reachable := 0, 0
	for v := range voters {
		if v == id {
			continue
		}
		remaining++
		if v == self || alive[v] {
			reachable++
		}
	}
	if remaining == 0 {
		return fmt.Errorf("%w: node %s is the only Raft voter", ErrLastManager, id)
	}
	if reachable < remaining/2+1 {
		return fmt.Errorf("%w: removing %s leaves %d managers of which only %d are reachable", ErrQuorumLoss, id, remaining, reachable)
	}
	return nil
}

// transferLeadership hands the leadership to a reachable voter and
// returns once this node has stepped down.
func (n *Node) transferLeadership(ctx context.Context) error {
	r := n.raftNode()
	if r == nil {
		return ErrNotManager
	}
	voters, err := n.raftVoters()
	if err != nil {
		return err
	}
	alive, self := n.aliveMembers(), n.ID()
	var ids []string
	for id := range voters {
		if id != self && alive[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: no other reachable manager to hand leadership to", ErrQuorumLoss)
	}
	sort.Strings(ids)
	n.log.Info("handing leadership over", "to", ids[0])
	f := r.LeadershipTransferToServer(raft.ServerID(ids[0]), raft.ServerAddress(voters[ids[0]]))
	if err := f.Error(); err != nil {
		return translateRaftErr(err)
	}
	return nil
}

// removeVoter removes a node from the Raft configuration (on the leader);
// a node that is not a voter is left alone.
func (n *Node) removeVoter(ctx context.Context, id string) error {
	voters, err := n.raftVoters()
	if err != nil {
		return err
	}
	if _, ok := voters[id]; !ok {
		return nil
	}
	r := n.raftNode()
	if r == nil {
		return ErrNotManager
	}
	timeout := n.cfg.RPCTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), 0)
	}
	if err := n.waitFuture(ctx, r.RemoveServer(raft.ServerID(id), 0, timeout)); err != nil {
		return err
	}
	n.log.Info("removed from the raft configuration", "node", id)
	return nil
}

// reconcileManagers runs on the leader's liveness tick: voters whose
// record says worker leave the Raft configuration (a demotion whose
// removal failed), and a leader demoted that way hands leadership over.
func (n *Node) reconcileManagers(ctx context.Context) {
	voters, err := n.raftVoters()
	if err != nil || !n.IsLeader() {
		return
	}
	var stale []string
	n.fsm.read(func(s *state) {
		for id := range voters {
			if nd, ok := s.nodes[id]; ok && nd.Role == RoleWorker {
				stale = append(stale, id)
			}
		}
	})
	self := n.ID()
	for _, id := range stale {
		if id == self {
			err = n.transferLeadership(ctx)
		} else {
			err = n.removeVoter(ctx, id)
		}
		if err != nil {
			n.log.Debug("removing a demoted manager from raft failed", "node", id, "error", err)
		}
	}
}
