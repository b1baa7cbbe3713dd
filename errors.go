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

// Wire codes of the sentinel errors.
//
// An error crosses the network in an RPC reply ([rpcEnvelope]) and reaches
// the disk as a remembered outcome in the replicated dedupe table
// ([dedupeEntry], part of every snapshot) as its message and the code of
// the sentinel it wraps, so that errors.Is works on the other side and
// after a restore. Each sentinel's code is written here, once, and is part
// of the wire and disk formats:
//
//   - never change a code, never reuse one, and keep a line even if its
//     variable goes away (old peers and old snapshots still carry it);
//   - give a new sentinel the next free code at the end of the table;
//   - a code this table does not know (a newer peer's) decodes to an error
//     with the peer's message and no sentinel.
//
// TestErrorCodesArePinned holds a copy of the table and fails when an
// exported Err* variable of the package has no code, so renaming or moving
// a variable cannot change what is sent. Codes 1-18 are the ones nodes sent
// before this table existed (then an index into a list that init functions
// of several files appended to, in file-name order), so those nodes and
// their snapshots decode the same.
var errorCodes = []struct {
	code int
	err  error
}{
	{1, ErrNotFound},
	{2, ErrNameConflict},
	{3, ErrAmbiguous},
	{4, ErrNotManager},
	{5, ErrNoLeader},
	{6, ErrInvalidSpec},
	{7, ErrShutdown},
	{8, ErrInvalidToken},
	{9, ErrNotInSwarm},
	{10, ErrAlreadyInSwarm},
	{11, ErrLastManager},
	{12, ErrVersionConflict},
	{13, ErrNodeNotDown},
	{14, ErrQuorumLoss},
	{15, ErrInUse},
	{16, ErrLocked},
	{17, ErrInvalidUnlockKey},
	{18, ErrPermissionDenied},
	{19, ErrEventsTruncated},
}

const (
	// errCodeNone is no error (the zero value, omitted from the JSON).
	errCodeNone = 0
	// errCodeOther is an error that wraps none of the sentinels.
	errCodeOther = -1
)

// errorCode returns the code of the first sentinel of errorCodes, in table
// order, that err wraps; errCodeOther if none; errCodeNone for nil.
func errorCode(err error) int {
	if err == nil {
		return errCodeNone
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return errCodeOther
}

// errorFromCode rebuilds an error from its message and code: nil for
// errCodeNone, an error wrapping the code's sentinel, or, for
// errCodeOther and codes this node does not know, one with the message
// alone.
func errorFromCode(code int, msg string) error {
	if code == errCodeNone {
		return nil
	}
	for _, e := range errorCodes {
		if e.code == code {
			return &remoteError{msg: msg, sentinel: e.err}
		}
	}
	return &remoteError{msg: msg}
}
