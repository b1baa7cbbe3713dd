package swarm

import (
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func applyCmd(t *testing.T, f *fsm, idx uint64, c *command) error {
	t.Helper()
	data, err := encodeCommand(c)
	require.NoError(t, err)
	res := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
	if res == nil {
		return nil
	}
	return res.(error)
}

func TestFSMTaskStatesOnlyMoveForward(t *testing.T) {
	f := newFSM()
	now := time.Unix(1000, 0).UTC()
	task := &Task{ID: "t1", ServiceID: "s1", NodeID: "n1", DesiredState: TaskRunning,
		Status: TaskStatus{State: TaskAssigned}}
	require.NoError(t, applyCmd(t, f, 1, &command{Type: cmdTasks, Time: now, Ops: []taskOp{{Op: opCreate, Task: task}}}))
	report := func(idx uint64, node string, st TaskState) {
		require.NoError(t, applyCmd(t, f, idx, &command{Type: cmdTasks, Time: now,
			Ops: []taskOp{{Op: opStatus, ID: "t1", NodeID: node, Status: &TaskStatus{State: st}}}}))
	}
	current := func() TaskState {
		var s TaskState
		f.read(func(st *state) { s = st.tasks["t1"].Status.State })
		return s
	}
	report(2, "n1", TaskRunning)
	require.Equal(t, TaskRunning, current())
	report(3, "n1", TaskStarting) // backwards: ignored
	require.Equal(t, TaskRunning, current())
	report(4, "n2", TaskFailed) // not the task's node: ignored
	require.Equal(t, TaskRunning, current())
	report(5, "n1", TaskFailed)
	require.Equal(t, TaskFailed, current())
	// Desired state only moves forward too.
	require.NoError(t, applyCmd(t, f, 6, &command{Type: cmdTasks, Time: now, Ops: []taskOp{{Op: opDesired, ID: "t1", State: TaskShutdown}}}))
	require.NoError(t, applyCmd(t, f, 7, &command{Type: cmdTasks, Time: now, Ops: []taskOp{{Op: opDesired, ID: "t1", State: TaskRunning}}}))
	f.read(func(st *state) { require.Equal(t, TaskShutdown, st.tasks["t1"].DesiredState) })
}

func TestFSMServiceConflictsAndVersions(t *testing.T) {
	f := newFSM()
	now := time.Unix(1000, 0).UTC()
	svc := &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "nginx"}}
	require.NoError(t, applyCmd(t, f, 1, &command{Type: cmdServiceCreate, Time: now, Service: svc}))
	dup := &Service{ID: "s2", Spec: ServiceSpec{Name: "web", Image: "nginx"}}
	require.ErrorIs(t, applyCmd(t, f, 2, &command{Type: cmdServiceCreate, Time: now, Service: dup}), ErrNameConflict)
	upd := &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "nginx:2"}}
	require.ErrorIs(t, applyCmd(t, f, 3, &command{Type: cmdServiceUpdate, Time: now, Service: upd, Version: 99}), ErrVersionConflict)
	require.NoError(t, applyCmd(t, f, 4, &command{Type: cmdServiceUpdate, Time: now, Service: upd, Version: 1}))
	f.read(func(st *state) {
		require.Equal(t, "nginx:2", st.services["s1"].Spec.Image)
		require.Equal(t, uint64(4), st.services["s1"].Version)
	})
}

// Applying the same log to two FSMs gives the same state, and a snapshot
// restores it exactly.
func TestFSMDeterministicAndSnapshot(t *testing.T) {
	cmds := []*command{
		{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c", Digest: "d", WorkerSecret: "w", ManagerSecret: "m"}},
		{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n1", Hostname: "a", Role: RoleManager}},
		{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "nginx"}}},
		{Type: cmdTasks, Ops: []taskOp{
			{Op: opCreate, Task: &Task{ID: "t1", ServiceID: "s1", Slot: 1, DesiredState: TaskRunning, Status: TaskStatus{State: TaskPending}}},
			{Op: opAssign, ID: "t1", NodeID: "n1"},
			{Op: opStatus, ID: "t1", NodeID: "n1", Status: &TaskStatus{State: TaskRunning}},
		}},
	}
	a, b := newFSM(), newFSM()
	for i, c := range cmds {
		c.Time = time.Unix(int64(2000+i), 0).UTC()
		require.NoError(t, applyCmd(t, a, uint64(i+1), c))
		require.NoError(t, applyCmd(t, b, uint64(i+1), c))
	}
	dump := func(f *fsm) string {
		var out []byte
		f.read(func(s *state) { out, _ = json.Marshal(s.export()) })
		return string(out)
	}
	require.Equal(t, dump(a), dump(b))
	snap, err := a.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	c := newFSM()
	require.NoError(t, c.Restore(sink))
	require.Equal(t, dump(a), dump(c))
	c.read(func(s *state) {
		require.Equal(t, TaskRunning, s.tasks["t1"].Status.State)
		require.Len(t, s.tasksByNode["n1"], 1)
	})
}

type memSink struct {
	buf []byte
	off int
}

func (m *memSink) Write(p []byte) (int, error) { m.buf = append(m.buf, p...); return len(p), nil }
func (m *memSink) Read(p []byte) (int, error) {
	if m.off >= len(m.buf) {
		return 0, io.EOF
	}
	n := copy(p, m.buf[m.off:])
	m.off += n
	return n, nil
}
func (m *memSink) Close() error  { return nil }
func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }

// FuzzDecodeCommand: any bytes decode to a command or an error, and a
// decoded command applies (or is refused) without panicking.
func FuzzDecodeCommand(f *testing.F) {
	seed := []*command{
		{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c"}},
		{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n1"}},
		{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "a", Image: "b"}}},
		{Type: cmdTasks, Ops: []taskOp{{Op: opCreate, Task: &Task{ID: "t", ServiceID: "s1", NodeID: "n1"}}, {Op: opStatus, ID: "t", NodeID: "n1", Status: &TaskStatus{State: TaskRunning}}, {Op: opDelete, ID: "t"}}},
		{Type: cmdNodeState, ID: "n1", NodeState: NodeDown},
	}
	for _, c := range seed {
		b, _ := encodeCommand(c)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, '{', '}'})
	f.Add([]byte{1, 'n', 'u', 'l', 'l'})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		st := newState()
		for i, s := range seed {
			st.apply(s, uint64(i+1))
		}
		st.index = 100
		_ = st.apply(c, 100)
	})
}
