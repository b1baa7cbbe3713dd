package swarm

import "github.com/hashicorp/raft"

// unpipelinedTransport is Raft's network transport without pipelined
// replication. hashicorp/raft's netPipeline can deadlock when a follower
// answers an append with Success=false (for example when its disk is full):
// pipelineDecode returns and closes finishCh while the send loop parks on
// inprogressCh, so replicate never returns and the follower, still getting
// heartbeats, never receives another entry nor calls an election. The chaos
// campaign hit it (a follower whose DataDir filled stayed behind for good,
// and Shutdown hung on the stuck goroutine); grafana/pyroscope#5518 found the
// same. Without a pipeline, Raft sends one AppendEntries at a time per
// follower, each carrying up to MaxAppendEntries entries, and the leader's
// batching of task changes keeps the entry count low.
type unpipelinedTransport struct {
	*raft.NetworkTransport
}

// AppendEntriesPipeline implements raft.Transport: it always declines, and
// Raft falls back to plain AppendEntries.
func (unpipelinedTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
