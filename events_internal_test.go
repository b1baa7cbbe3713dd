package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// evFSM is an fsm fed with commands at increasing indexes, for the event
// derivation tests.
type evFSM struct {
	t     *testing.T
	f     *fsm
	index uint64
	now   time.Time
}

func newEvFSM(t *testing.T) *evFSM {
	return &evFSM{t: t, f: newFSM(), now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// apply applies c at the next index and returns the index.
func (e *evFSM) apply(c command) uint64 {
	e.t.Helper()
	e.index++
	e.now = e.now.Add(time.Second)
	c.Time = e.now
	data, err := encodeCommand(&c)
	require.NoError(e.t, err)
	if res := e.f.Apply(&raft.Log{Type: raft.LogCommand, Index: e.index, Data: data}); res != nil {
		require.NoError(e.t, res.(error))
	}
	return e.index
}

// events returns every held event after since.
func (e *evFSM) events(since uint64) []Event {
	e.t.Helper()
	sub, err := e.f.subscribe(since)
	require.NoError(e.t, err)
	defer e.f.ev.unsubscribe(sub)
	var out []Event
	for {
		got, err := e.f.ev.take(sub, make([]eventRec, 0, 16))
		require.NoError(e.t, err)
		if len(got) == 0 {
			return out
		}
		out = append(out, recEvents(got)...)
	}
}

// evKey is the gist of an event for table comparisons.
func evKey(e Event) string {
	s := fmt.Sprintf("%d/%d %s %s %s", e.Index, e.Seq, e.Type, e.Action, e.Name)
	if e.State != "" {
		s += " " + e.State
	}
	for _, k := range []string{"state.old", "desiredstate.old", "desiredstate.new", "replicas.old", "replicas.new",
		"image.old", "image.new", "availability.old", "availability.new", "state.new", "message", "updatestate.new"} {
		if v, ok := e.Attributes[k]; ok {
			s += " " + k + "=" + v
		}
	}
	return s
}

// recEvents converts ring records to events.
func recEvents(recs []eventRec) []Event {
	out := make([]Event, len(recs))
	for i := range recs {
		out[i] = recs[i].event()
	}
	return out
}

func evKeys(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = evKey(e)
	}
	return out
}

// TestEventsDerived checks the events each kind of command produces.
func TestEventsDerived(t *testing.T) {
	e := newEvFSM(t)
	e.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}}) // 1: starts the log
	e.apply(command{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n1", Hostname: "host1", Role: RoleWorker}})
	svc := &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "nginx:1", Mode: Replicated(2)}}
	e.apply(command{Type: cmdServiceCreate, Service: svc})
	task := func(id string, slot uint64) *Task {
		return &Task{ID: id, ServiceID: "s1", ServiceName: "web", Slot: slot, NodeID: "n1", SpecVersion: 1,
			DesiredState: TaskRunning, Status: TaskStatus{State: TaskAssigned}}
	}
	e.apply(command{Type: cmdTasks, Ops: []taskOp{
		{Op: opCreate, Task: task("t1", 1), FromService: true},
		{Op: opCreate, Task: task("t2", 2), FromService: true},
		{Op: opCreate, Task: &Task{ID: "stale", ServiceID: "s1", SpecVersion: 9}, FromService: true}, // skipped
	}})
	e.apply(command{Type: cmdTasks, Ops: []taskOp{
		{Op: opStatus, ID: "t1", NodeID: "n1", Status: &TaskStatus{State: TaskRunning, Message: "started"}},
		{Op: opStatus, ID: "t2", NodeID: "n1", Status: &TaskStatus{State: TaskStarting}},
		{Op: opStatus, ID: "t2", NodeID: "n1", Status: &TaskStatus{State: TaskRunning}},   // same entry: one event
		{Op: opStatus, ID: "t2", NodeID: "other", Status: &TaskStatus{State: TaskFailed}}, // not its node: skipped
		{Op: opStatus, ID: "nope", NodeID: "n1", Status: &TaskStatus{State: TaskFailed}},  // unknown: skipped
	}})
	e.apply(command{Type: cmdTasks, Ops: []taskOp{
		{Op: opStatus, ID: "t1", NodeID: "n1", Status: &TaskStatus{State: TaskRunning, Message: "healthy"}},
	}})
	up := *svc
	up.Spec.Mode = Replicated(3)
	up.Spec.Image = "nginx:2"
	e.apply(command{Type: cmdServiceUpdate, Service: &up})
	e.apply(command{Type: cmdTasks, Ops: []taskOp{{Op: opDesired, ID: "t1", State: TaskShutdown}}})
	e.apply(command{Type: cmdNodeUpdate, ID: "n1", Node: &NodeInfo{Availability: AvailabilityDrain}})
	e.apply(command{Type: cmdNodeState, ID: "n1", NodeState: NodeDown, Message: "heartbeat failure"})
	e.apply(command{Type: cmdServiceRemove, ID: "s1"})
	e.apply(command{Type: cmdTasks, Ops: []taskOp{{Op: opDelete, ID: "t1"}, {Op: opDelete, ID: "t2"}, {Op: opDelete, ID: "t2"}}})
	e.apply(command{Type: cmdNodeRemove, ID: "n1"})

	want := []string{
		"2/0 node create host1 ready",
		"3/0 service create web",
		"4/0 task create web.1 assigned",
		"4/1 task create web.2 assigned",
		"5/0 task state web.1 running state.old=assigned message=started",
		"5/1 task state web.2 running state.old=assigned",
		"6/0 task update web.1 running message=healthy",
		"7/0 service update web replicas.old=2 replicas.new=3 image.old=nginx:1 image.new=nginx:2",
		"8/0 task update web.1 running desiredstate.old=running desiredstate.new=shutdown",
		"9/0 node update host1 ready availability.old=active availability.new=drain",
		"10/0 node update host1 down state.old=ready state.new=down",
		"11/0 service remove web",
		"12/0 task remove web.1 running",
		"12/1 task remove web.2 running",
		"13/0 node remove host1 down",
	}
	all := e.events(1)
	assert.Equal(t, want, evKeys(all))
	for _, ev := range all {
		assert.Equal(t, time.Date(2025, 1, 1, 0, 0, int(ev.Index), 0, time.UTC), ev.Time.UTC())
		if ev.Type == EventTask {
			assert.Equal(t, "s1", ev.ServiceID)
			assert.Equal(t, "n1", ev.NodeID)
		}
	}
	// Resuming gives the tail; since 0 gives nothing held.
	assert.Equal(t, want[9:], evKeys(e.events(8)))
	assert.Empty(t, e.events(0))
	assert.Empty(t, e.events(99))
}

// TestEventsFromFirstEntryAreUnknown: a manager's first entry (or the first
// after a snapshot restore) sets the floor.
func TestEventsFromFirstEntryAreUnknown(t *testing.T) {
	e := newEvFSM(t)
	e.index = 4
	e.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}}) // 5
	_, err := e.f.subscribe(4)
	require.ErrorIs(t, err, ErrEventsTruncated)
	_, err = e.f.subscribe(5)
	require.NoError(t, err)
}

// TestEventsSameOnEveryManager: two fsms fed the same log derive the same
// events, even when one subscribes late.
func TestEventsSameOnEveryManager(t *testing.T) {
	a, b := newEvFSM(t), newEvFSM(t)
	for _, e := range []*evFSM{a, b} {
		e.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}})
		e.apply(command{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n1", Hostname: "h1"}})
		e.apply(command{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n0", Hostname: "h0"}})
		e.apply(command{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "x"}}})
	}
	assert.Equal(t, a.events(1), b.events(1))
}

// TestEventsRingOverflow covers the buffer's bound: resuming from an
// evicted entry fails, and a subscriber the ring overtakes is cut off.
func TestEventsRingOverflow(t *testing.T) {
	e := newEvFSM(t)
	e.f.ev.size = 5
	e.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}})
	e.apply(command{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "x"}}}) // 2
	slow, err := e.f.subscribe(1)
	require.NoError(t, err)
	slot := uint64(0)
	ops := func(ids ...string) []taskOp {
		var out []taskOp
		for _, id := range ids {
			slot++
			out = append(out, taskOp{Op: opCreate, Task: &Task{ID: id, ServiceID: "s1", ServiceName: "web", Slot: slot,
				SpecVersion: 1, Status: TaskStatus{State: TaskNew}}})
		}
		return out
	}
	e.apply(command{Type: cmdTasks, Ops: ops("a", "b", "c")}) // 3: 3 events
	got, err := e.f.ev.take(slow, make([]eventRec, 0, 2))
	require.NoError(t, err)
	assert.Equal(t, []string{"2/0 service create web", "3/0 task create web.1 new"}, evKeys(recEvents(got)))
	e.apply(command{Type: cmdTasks, Ops: ops("d", "e", "f")}) // 4: holds 3/1 .. 4/2, evicting 2/0 and 3/0

	_, err = e.f.subscribe(1)
	require.ErrorIs(t, err, ErrEventsTruncated)
	_, err = e.f.subscribe(2)
	require.ErrorIs(t, err, ErrEventsTruncated, "entry 3 is only partly held")
	held := e.events(3)
	assert.Equal(t, []string{"4/0 task create web.4 new", "4/1 task create web.5 new", "4/2 task create web.6 new"}, evKeys(held))
	// The slow one was at 3/1, still held.
	got, err = e.f.ev.take(slow, make([]eventRec, 0, 1))
	require.NoError(t, err)
	assert.Equal(t, []string{"3/1 task create web.2 new"}, evKeys(recEvents(got)))

	e.apply(command{Type: cmdTasks, Ops: ops("g", "h", "i")}) // 5: overtakes it
	_, err = e.f.ev.take(slow, make([]eventRec, 0, 8))
	require.ErrorIs(t, err, ErrEventsTruncated)
	e.f.ev.unsubscribe(slow)
}

// TestEventsPump covers delivery: backlog then live events, the final
// notice of a subscriber cut off, and closing on ctx and done.
func TestEventsPump(t *testing.T) {
	e := newEvFSM(t)
	e.f.ev.size = 4
	e.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}})
	e.apply(command{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n1", Hostname: "h1"}}) // 2

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	run := func(sub *eventSub) chan Event {
		out := make(chan Event) // unbuffered: the pump waits for the reader
		go e.f.ev.pump(ctx, done, sub, out)
		return out
	}
	subscribe := func(since uint64) *eventSub {
		sub, err := e.f.subscribe(since)
		require.NoError(t, err)
		return sub
	}
	start := func(since uint64) chan Event { return run(subscribe(since)) }
	next := func(ch chan Event) Event {
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "closed")
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return Event{}
		}
	}
	drain := func(ch chan Event) (last Event) {
		timeout := time.After(5 * time.Second)
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return last
				}
				last = ev
			case <-timeout:
				t.Fatal("not closed")
			}
		}
	}
	live := start(1)
	assert.Equal(t, "2/0 node create h1 ready", evKey(next(live)))
	e.apply(command{Type: cmdNodeState, ID: "n1", NodeState: NodeDown}) // 3
	ev := next(live)
	assert.Equal(t, "3/0 node update h1 down state.old=ready state.new=down", evKey(ev))
	ev.Attributes["state.new"] = "mine" // receivers own their copy
	assert.Equal(t, "down", e.events(2)[0].Attributes["state.new"])

	// A subscriber whose pump has not taken its events when the ring
	// overtakes it gets the notice, then the channel closes.
	behind := subscribe(0)
	for i := range 6 { // more than the ring holds
		e.apply(command{Type: cmdNodeUpsert, Node: &NodeInfo{ID: fmt.Sprint("m", i), Hostname: "h"}})
	}
	last := drain(run(behind))
	require.ErrorIs(t, last.Err, ErrEventsTruncated)
	assert.Equal(t, Event{Err: last.Err}, last)

	// ctx and done close the channel.
	cancel()
	drain(live)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	other := start(0)
	close(done)
	drain(other)
	e.f.ev.mu.Lock()
	assert.Empty(t, e.f.ev.subs, "pumps unsubscribe")
	e.f.ev.mu.Unlock()
}

// TestEventsRestoreCutsOff: a snapshot restore replaces the state, so the
// events before it are gone and current subscribers are cut off.
func TestEventsRestoreCutsOff(t *testing.T) {
	e := newEvFSM(t)
	e.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}})
	e.apply(command{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "x"}}})
	sub, err := e.f.subscribe(0)
	require.NoError(t, err)

	other := newEvFSM(t)
	other.apply(command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c1"}})
	other.apply(command{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "x"}}})
	other.apply(command{Type: cmdServiceCreate, Service: &Service{ID: "s2", Spec: ServiceSpec{Name: "db", Image: "x"}}})
	snap, err := other.f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(snap.(*fsmSnapshot).data))
	require.NoError(t, e.f.Restore(io.NopCloser(&buf)))
	e.index = 3

	_, err = e.f.subscribe(2)
	require.ErrorIs(t, err, ErrEventsTruncated)
	_, err = e.f.ev.take(sub, make([]eventRec, 0, 4))
	require.ErrorIs(t, err, ErrEventsTruncated)
	// After the restore, changes are derived against the restored state.
	e.apply(command{Type: cmdServiceRemove, ID: "s2"})
	assert.Equal(t, []string{"4/0 service remove db"}, evKeys(e.events(3)))
}

// BenchmarkApplyTaskBatch times applying batches of 1,000 task status
// reports (state changes), decoded, with ("fsm", what Apply costs) and
// without ("state") the events they derive.
func BenchmarkApplyTaskBatch(b *testing.B) {
	const batch = 1000
	for _, withEvents := range []bool{false, true} {
		name := "state"
		if withEvents {
			name = "fsm"
		}
		b.Run(name, func(b *testing.B) {
			f := newFSM()
			index := uint64(0)
			apply := func(data []byte) {
				index++
				if !withEvents {
					c, err := decodeCommand(data)
					if err == nil {
						f.st.index = index
						err = f.st.apply(c, index)
					}
					if err != nil {
						b.Fatal(err)
					}
					return
				}
				if res := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data}); res != nil {
					b.Fatal(res)
				}
			}
			enc := func(c *command) []byte {
				data, err := encodeCommand(c)
				require.NoError(b, err)
				return data
			}
			apply(enc(&command{Type: cmdClusterInit, Cluster: &clusterRecord{ID: "c"}}))
			apply(enc(&command{Type: cmdNodeUpsert, Node: &NodeInfo{ID: "n1"}}))
			apply(enc(&command{Type: cmdServiceCreate, Service: &Service{ID: "s1", Spec: ServiceSpec{Name: "web", Image: "x"}}}))
			// Each round creates fresh tasks, then walks them through five
			// states; only the state reports are timed.
			states := []TaskState{TaskAccepted, TaskPreparing, TaskReady, TaskStarting, TaskRunning}
			b.ReportAllocs()
			b.ResetTimer()
			for round := 0; round*len(states) < b.N; round++ {
				b.StopTimer()
				ops := make([]taskOp, batch)
				for i := range ops {
					ops[i] = taskOp{Op: opCreate, Task: &Task{ID: fmt.Sprint("t", round, "-", i), ServiceID: "s1",
						ServiceName: "web", Slot: uint64(i + 1), NodeID: "n1", SpecVersion: 1, Status: TaskStatus{State: TaskAssigned}}}
				}
				apply(enc(&command{Type: cmdTasks, Ops: ops}))
				var entries [][]byte
				for _, st := range states {
					for i := range ops {
						ops[i] = taskOp{Op: opStatus, ID: fmt.Sprint("t", round, "-", i), NodeID: "n1", Status: &TaskStatus{State: st}}
					}
					entries = append(entries, enc(&command{Type: cmdTasks, Ops: ops}))
				}
				b.StartTimer()
				for k := 0; k < len(entries) && round*len(states)+k < b.N; k++ {
					apply(entries[k])
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
