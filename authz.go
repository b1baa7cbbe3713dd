package swarm

import (
	"encoding/json"
	"fmt"
	"time"
)

// Authorization on the control port. The TLS handshake (tls.go) proves
// who the peer is: a node of this swarm with its role, or no one (a node
// that joins). What it may then do is decided here, per stream kind and
// per RPC, before anything is dispatched.

// isRevoked reports whether id names a node removed from the swarm: from
// the state on a manager, from what the managers last said on a worker.
func (n *Node) isRevoked(id string) bool {
	var (
		have, revoked bool
	)
	if f := n.fsmRef(); f != nil {
		f.read(func(s *state) {
			if s.cluster != nil {
				have = true
				_, revoked = s.cluster.Revoked[id]
			}
		})
	}
	if have {
		return revoked
	}
	n.sec.mu.RLock()
	defer n.sec.mu.RUnlock()
	return n.sec.revoked[id]
}

func (n *Node) fsmRef() *fsm {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fsm
}

func permissionf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrPermissionDenied}, args...)...)
}

func removedErr(id string) error {
	return fmt.Errorf("%w: node %s was removed from the swarm and its certificate is revoked; clear its DataDir to join again", ErrNotFound, id)
}

// requireManagerPeer allows managers only: a manager certificate, of a
// node whose record (when this node has one) still says manager.
func (n *Node) requireManagerPeer(p *peerInfo) error {
	if p == nil {
		return permissionf("a certificate of this swarm is required")
	}
	if p.Role != RoleManager {
		return permissionf("node %s holds a worker certificate; this needs a manager", p.ID)
	}
	if role, _ := n.recordRole(p.ID); role != "" && role != RoleManager {
		return permissionf("node %s is no longer a manager", p.ID)
	}
	return nil
}

// admitStream decides whether a peer may open a Raft or log stream: both
// are for managers only.
func (n *Node) admitStream(p *peerInfo, kind byte) error {
	switch kind {
	case connRPC:
		return nil // authorised per call (authorizeRPC)
	case connRaft, connLogs:
		if p != nil && n.isRevoked(p.ID) {
			return removedErr(p.ID)
		}
		return n.requireManagerPeer(p)
	}
	return permissionf("unknown connection kind %q", kind)
}

// authArgs is what authorizeRPC reads of any request: the fields that say
// whom it is about and whether a manager forwarded it.
type authArgs struct {
	NodeID    string
	Node      struct{ ID string }
	Forwarded bool
	Rejoin    bool
	Op        nodeMgmtOp
	Ref       string
}

// authorizeRPC decides whether peer p may make the call, before it is
// dispatched. A peer without a certificate may only join with a token;
// a node may ask about itself (assignments, status, leave, its own
// record, its certificate, the security state); everything else, and
// every request a manager forwards, needs a manager. Unknown methods are
// manager-only. A removed node is refused, except that its agent is told
// it has no tasks (reply), so it stops them as Swarm's does.
func (n *Node) authorizeRPC(p *peerInfo, method string, body []byte) (reply any, err error) {
	var a authArgs
	switch method {
	case "join", "assignments", "status", "leave", "renewCert", "secState", "dataKey", "nodeMgmt", "heartbeat":
		// The rules below read the request; the others (the big ones:
		// apply) need only the peer.
		if len(body) > 0 {
			if err := json.Unmarshal(body, &a); err != nil {
				return nil, invalidf("malformed request: %v", err)
			}
		}
	}
	if p != nil && n.isRevoked(p.ID) {
		if method == "assignments" {
			return n.removedAssignments(body)
		}
		return nil, removedErr(p.ID)
	}
	self := func(id string) error {
		if p == nil {
			return permissionf("a certificate of this swarm is required")
		}
		if id != p.ID {
			return permissionf("node %s may not act for node %s", p.ID, id)
		}
		return nil
	}
	switch method {
	case "join":
		switch {
		case a.Forwarded:
			return nil, n.requireManagerPeer(p)
		case a.Rejoin:
			// A node resumes with its own certificate; one that expired
			// must join afresh.
			return nil, self(a.Node.ID)
		}
		return nil, nil // the token decides (handleJoin)
	case "assignments":
		return nil, self(a.NodeID)
	case "status", "leave", "renewCert", "secState", "heartbeat":
		if a.Forwarded {
			return nil, n.requireManagerPeer(p)
		}
		return nil, self(a.NodeID)
	case "dataKey":
		// Only a manager gets the data key, and only for itself.
		if err := n.requireManagerPeer(p); err != nil {
			return nil, err
		}
		return nil, self(a.NodeID)
	case "nodeMgmt":
		if a.Op == nodeOpRecord && !a.Forwarded && p != nil && a.Ref == p.ID {
			return nil, nil
		}
	}
	return nil, n.requireManagerPeer(p)
}

// removedIndex is the assignments index a removed node's agent is given.
const removedIndex = ^uint64(0)

// removedAssignments answers a removed node's assignments poll: no tasks
// (at once), then empty long polls.
func (n *Node) removedAssignments(body []byte) (any, error) {
	a, err := decodeArgs[assignArgs](body)
	if err != nil {
		return nil, err
	}
	if a.First || a.Since != removedIndex {
		return &assignReply{Index: removedIndex}, nil
	}
	t := time.NewTimer(min(max(a.Wait, 0), time.Minute))
	defer t.Stop()
	select {
	case <-t.C:
	case <-n.shutdownCh:
	}
	return &assignReply{Index: removedIndex}, nil
}
