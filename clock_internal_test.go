package swarm

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Stored times follow the log: an entry stamped before the previous one
// (a leader whose clock is behind) is applied just after it; a node's
// report never sets the time a state was reached, and the slot order is
// the creating entries' order.
func TestFSMClockIsMonotonicAndLeaderStamped(t *testing.T) {
	f := newFSM()
	t0 := time.Unix(10000, 0).UTC()
	task := &Task{ID: "a", ServiceID: "s", NodeID: "n", Slot: 1, DesiredState: TaskRunning,
		Status: TaskStatus{State: TaskAssigned, Timestamp: t0.Add(time.Hour)}}
	require.NoError(t, applyCmd(t, f, 5, &command{Type: cmdTasks, Time: t0, Ops: []taskOp{{Op: opCreate, Task: task}}}))
	// The next leader's clock is an hour behind.
	behind := t0.Add(-time.Hour)
	older := &Task{ID: "z", ServiceID: "s", NodeID: "n", Slot: 1, DesiredState: TaskRunning, Status: TaskStatus{State: TaskAssigned}}
	require.NoError(t, applyCmd(t, f, 6, &command{Type: cmdTasks, Time: behind, Ops: []taskOp{{Op: opCreate, Task: older}}}))
	// The node's clock is an hour ahead.
	require.NoError(t, applyCmd(t, f, 7, &command{Type: cmdTasks, Time: behind.Add(time.Second), Ops: []taskOp{
		{Op: opStatus, ID: "a", NodeID: "n", Status: &TaskStatus{State: TaskRunning, Timestamp: t0.Add(time.Hour)}}}}))
	// The same state again, with a new message, keeps the time it was reached.
	require.NoError(t, applyCmd(t, f, 8, &command{Type: cmdTasks, Time: t0.Add(time.Minute), Ops: []taskOp{
		{Op: opStatus, ID: "a", NodeID: "n", Status: &TaskStatus{State: TaskRunning, Message: "still"}}}}))

	var a, z Task
	var clock time.Time
	f.read(func(s *state) { a, z, clock = *s.tasks["a"], *s.tasks["z"], s.clock })
	require.Equal(t, t0, a.CreatedAt)
	require.Equal(t, t0.Add(time.Nanosecond), z.CreatedAt, "an entry stamped in the past is applied just after the last one")
	require.Equal(t, t0.Add(time.Minute), a.UpdatedAt)
	require.Equal(t, "still", a.Status.Message)
	require.Equal(t, t0.Add(2*time.Nanosecond), a.Status.Timestamp, "running since the leader received the report")
	require.Equal(t, t0.Add(time.Minute), clock)
	require.Equal(t, []uint64{5, 6}, []uint64{a.CreatedIndex, z.CreatedIndex})
	require.True(t, newerTask(&z, &a), "z was created by the later entry, whatever its ID and time")

	// The clock survives a snapshot.
	snap, err := f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(snap.(*fsmSnapshot).data))
	g := newFSM()
	require.NoError(t, g.Restore(io.NopCloser(&buf)))
	last, appliedAt := g.lastStamp()
	require.Equal(t, t0.Add(time.Minute), last)
	require.True(t, appliedAt.IsZero())
}

// A leader whose clock is behind the last stored time starts its cluster
// clock there plus the time elapsed since it applied that entry, and its
// stamps then advance with its own clock; one whose clock is ahead uses
// its clock.
func TestClusterClockNeverGoesBack(t *testing.T) {
	var off time.Duration
	n := &Node{cfg: Config{Clock: func() time.Time { return time.Now().Add(off) }}, fsm: newFSM()}
	n.fsm.now = n.now
	stored := time.Now().UTC().Add(10 * time.Minute) // the previous leader ran 10 minutes ahead
	require.NoError(t, applyCmd(t, n.fsm, 1, &command{Type: cmdNodeUpsert, Time: stored, Node: &NodeInfo{ID: "x"}}))
	off = -time.Hour
	n.startClock()
	s1 := n.stampTime()
	require.True(t, s1.After(stored), "%v after %v", s1, stored)
	require.Less(t, s1.Sub(stored), time.Minute)
	// The wall clock steps back further: stamps still move forward.
	off = -2 * time.Hour
	s2 := n.stampTime()
	require.True(t, s2.After(s1))
	require.True(t, !n.clusterNow().Before(s2))
	n.stopClock()

	// A clock ahead of the cluster's: cluster time follows it.
	off = time.Hour
	require.True(t, n.clusterNow().After(stored.Add(40*time.Minute)))
}
