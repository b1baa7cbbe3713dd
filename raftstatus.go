package swarm

// RaftStatus is a manager's own view of Raft at one instant: what an
// operator checks first in an outage, and what a chaos test samples to
// prove that no two managers lead in the same term.
type RaftStatus struct {
	// State is "Leader", "Follower", "Candidate" or "Shutdown"; "" on a
	// node that runs no Raft (a worker, or before Init/Join).
	State string
	// Term is the current Raft term (0 without Raft).
	Term uint64
	// LeaderID is the node ID of the leader this node knows of ("" when
	// it knows none).
	LeaderID string
	// AppliedIndex is the last log index applied to this node's state.
	AppliedIndex uint64
}

// RaftStatus returns this node's Raft state and term. It never blocks on
// the Raft loop, so it answers even while the node is partitioned. State
// and Term are read so that they belong together: when the term moves
// while State is read, the read is retried, so a reported Leader is a
// leader of the reported Term.
func (n *Node) RaftStatus() RaftStatus {
	r := n.raftNode()
	if r == nil {
		return RaftStatus{}
	}
	var st RaftStatus
	for i := 0; i < 10; i++ {
		before := r.CurrentTerm()
		state := r.State()
		after := r.CurrentTerm()
		st = RaftStatus{State: state.String(), Term: after}
		if before == after {
			break
		}
	}
	_, lid := r.LeaderWithID()
	st.LeaderID = string(lid)
	st.AppliedIndex = r.AppliedIndex()
	return st
}
