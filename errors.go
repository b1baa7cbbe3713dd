package swarm

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Sentinel errors. Every error returned by the package that has one of these
// causes wraps it, so callers test with errors.Is.
var (
	// ErrNotFound means the named service, task, node or other object does not exist.
	ErrNotFound = errors.New("swarm: not found")
	// ErrNameConflict means an object with the same name already exists.
	ErrNameConflict = errors.New("swarm: name conflicts with an existing object")
	// ErrAmbiguous means an ID prefix matches more than one object.
	ErrAmbiguous = errors.New("swarm: ambiguous reference")
	// ErrNotManager means the call needs a manager node and this node is a worker.
	ErrNotManager = errors.New("swarm: this node is not a swarm manager")
	// ErrNoLeader means the managers have no leader at the moment (no quorum or an election is under way).
	ErrNoLeader = errors.New("swarm: no leader")
	// ErrInvalidSpec means a spec or argument is malformed; the wrapping message names the field.
	ErrInvalidSpec = errors.New("swarm: invalid spec")
	// ErrShutdown means the node has been shut down or has left the swarm.
	ErrShutdown = errors.New("swarm: node is shut down")
	// ErrInvalidToken means a join token is malformed, unknown or of the wrong cluster.
	ErrInvalidToken = errors.New("swarm: invalid join token")
	// ErrNotInSwarm means the node has not been initialised or joined yet.
	ErrNotInSwarm = errors.New("swarm: node is not part of a swarm")
	// ErrAlreadyInSwarm means Init or Join was called on a node that is already part of a swarm.
	ErrAlreadyInSwarm = errors.New("swarm: node is already part of a swarm")
	// ErrLastManager means the operation would remove the swarm's last manager.
	ErrLastManager = errors.New("swarm: cannot remove the last manager")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...)
}

// translateRaftErr maps hashicorp/raft's errors onto the package's sentinels.
func translateRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrShutdown, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// ErrVersionConflict means an update carried a version that is no longer
// current: someone else changed the object since it was read.
var ErrVersionConflict = errors.New("swarm: update out of sequence (version conflict)")

// ErrPermissionDenied means the peer's certificate does not allow the
// request: no certificate of this swarm, a worker certificate on a
// manager-only endpoint, or a request about another node.
var ErrPermissionDenied = errors.New("swarm: permission denied")

func notFoundf(kind, ref string) error { return fmt.Errorf("%w: %s %q", ErrNotFound, kind, ref) }

func ambiguousf(kind, ref string) error {
	return fmt.Errorf("%w: %s %q matches more than one %s", ErrAmbiguous, kind, ref, kind)
}
