package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ErrEventsTruncated means events a subscriber asked for are no longer held
// by the manager: it asked to resume from an index older than the manager's
// event buffer, or it fell so far behind that the buffer overtook it. The
// caller should re-list the objects it follows and subscribe again.
var ErrEventsTruncated = errors.New("swarm: events truncated")

// EventType is the kind of object an Event is about.
type EventType string

// Event types.
const (
	EventService EventType = "service"
	EventTask    EventType = "task"
	EventNode    EventType = "node"
	EventSecret  EventType = "secret"
	EventConfig  EventType = "config"
)

// Event actions (Event.Action).
const (
	// ActionCreate: the object was created.
	ActionCreate = "create"
	// ActionUpdate: the object changed (for a task: anything but its
	// status state, e.g. its desired state or status message).
	ActionUpdate = "update"
	// ActionRemove: the object was deleted.
	ActionRemove = "remove"
	// ActionState: a task's status state changed (Event.State is the new
	// one, Attributes["state.old"] the previous one).
	ActionState = "state"
)

// Event is one change to the swarm's state, as a manager applied it. Every
// manager derives the same events, in the same order, from the same log
// entries, so (Index, Seq) identifies an event across managers.
type Event struct {
	// Index is the Raft log index of the change; Seq its position among
	// the events of that entry (from 0).
	Index uint64
	Seq   int
	// Time is when the leader proposed the change.
	Time time.Time
	// Type and Action say what happened to which kind of object.
	Type   EventType
	Action string
	// ID is the object's ID; Name its name when known (service name, node
	// hostname, task name such as "web.3").
	ID   string
	Name string
	// ServiceID and NodeID are set on task events.
	ServiceID, NodeID string
	// State is the task's new status state, or the node's new state.
	State string
	// Attributes hold details of the change, Docker style: "replicas.old"
	// and "replicas.new", "image.old"/"image.new",
	// "updatestate.old"/"updatestate.new" for services;
	// "state.old"/"state.new", "availability.old"/"availability.new",
	// "role.old"/"role.new" for nodes; "state.old",
	// "desiredstate.old"/"desiredstate.new", "message", "error" for tasks.
	// Nil when there is nothing to add.
	Attributes map[string]string
	// Err is set only on the final event of a stream the manager cut off:
	// it wraps ErrEventsTruncated and every other field is zero. The
	// channel is closed right after it.
	Err error
}

// eventBufferSize is how many events a manager keeps for subscribers that
// resume or lag behind.
const eventBufferSize = 10_000

// eventChanSize is the buffer of each subscriber's channel; the real
// backlog is the shared ring of eventBufferSize events.
const eventChanSize = 64

// Events streams the swarm's changes as this manager applies them, in
// commit order: services, tasks and nodes created, updated, removed, and
// tasks changing state (see Event). It works on any manager, leader or
// follower.
//
// since is a Raft index: the stream starts with the events of the entries
// after it (the manager's backlog first, then live events); 0 means from
// now on (on a follower, after catching up with what the leader had
// applied, as for other reads). To resume, pass the Index of the last
// event handled; its entry's remaining events are then skipped, so a
// stream that may have ended partway through an entry resumes from
// Index-1, skipping the (Index, Seq) pairs already handled. To list and
// then follow, read Info.AppliedIndex before listing and pass it. An index
// older than this manager's buffer (the last 10,000 events, and nothing
// from before the manager's last restart or snapshot restore) fails with
// an error wrapping ErrEventsTruncated: re-list, then subscribe with 0.
// An index beyond the last one the swarm has applied fails with
// ErrInvalidSpec.
//
// The channel is closed when ctx ends or the node shuts down. Applying
// changes never waits for a subscriber: one that falls more than the
// buffer behind is cut off with a final Event whose Err wraps
// ErrEventsTruncated, then its channel is closed. Receivers own the
// events they get, Attributes included.
func (n *Node) Events(ctx context.Context, since uint64) (<-chan Event, error) {
	if err := n.checkManager(); err != nil {
		return nil, err
	}
	if since == 0 {
		// "Now" is at least what the leader had applied: a lagging
		// follower does not replay older changes as if they were new.
		if err := n.readBarrier(ctx); err != nil {
			return nil, err
		}
	}
	f := n.fsm
	if since > f.appliedIndex() {
		// Perhaps only this manager lags; else the index was never written.
		if err := n.readBarrier(ctx); err != nil {
			return nil, err
		}
		if cur := f.appliedIndex(); since > cur {
			return nil, invalidf("since %d is beyond the last applied index %d", since, cur)
		}
	}
	sub, err := f.subscribe(since)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		f.ev.unsubscribe(sub)
		return nil, ErrShutdown
	}
	n.wg.Add(1)
	n.mu.Unlock()
	out := make(chan Event, eventChanSize)
	go func() {
		defer n.wg.Done()
		defer n.endGoroutine("event pump") // the stream ends, the node goes on
		f.ev.pump(ctx, n.shutdownCh, sub, out)
	}()
	return out, nil
}

// eventLog derives events from applied commands and keeps the recent ones
// in a ring for subscribers. It lives in the fsm; recordEvents runs under
// the fsm's write lock (lock order: fsm.mu, then eventLog.mu), the
// subscribers' pumps take only eventLog.mu. The zero value is ready.
//
// To tell a create from an update, or a task's state change from another
// change, it mirrors the state's object maps: they hold the objects as of
// the last recorded entry (objects are immutable, so the mirrors share
// them with the state and cost one map entry per object).
type eventLog struct {
	mu sync.Mutex
	// size is the ring's capacity (0: eventBufferSize); tests shrink it.
	size int
	// st is the state the mirrors follow; a different fsm state means a
	// snapshot was restored and the mirrors must be rebuilt.
	st       *state
	services map[string]*Service
	nodes    map[string]*NodeInfo
	tasks    map[string]*Task

	// ring holds the events numbered lo..next-1 at ring[seq%len(ring)].
	ring     []eventRec
	lo, next uint64
	// floor is the lowest index a subscriber may resume from: the events
	// of every entry after it are held.
	floor uint64
	subs  map[*eventSub]struct{}
}

// eventSub is one subscriber's position in the ring.
type eventSub struct {
	cursor uint64        // number of the next event to deliver
	after  uint64        // skip events with an Index up to this one
	wake   chan struct{} // poked (never blocking) when events are added
	err    error         // set when the subscriber is cut off
}

// recordEvents derives the events of an applied command from the command
// and the state after it. fsm.Apply calls it with the write lock held,
// only for commands that applied without error.
func (f *fsm) recordEvents(c *command, index uint64) {
	l := &f.ev
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != f.st {
		// First entry since start or since a snapshot restore: the state
		// before it is unknown, so its events are too.
		l.reset(f.st, index)
		return
	}
	before := l.next
	l.derive(f.st, c, index)
	if l.next != before {
		l.wakeAll()
	}
}

// subscribe registers a subscriber for the events after index since (0:
// after the current applied index).
func (f *fsm) subscribe(since uint64) (*eventSub, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	l := &f.ev
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != f.st {
		l.reset(f.st, f.st.index)
	}
	sub := &eventSub{cursor: l.next, wake: make(chan struct{}, 1)}
	if since != 0 {
		if since < l.floor {
			return nil, fmt.Errorf("%w: the events after index %d are no longer held (this manager holds those after index %d)",
				ErrEventsTruncated, since, l.floor)
		}
		sub.after = since
		// The first held event after since (indexes never decrease).
		lo, hi := l.lo, l.next
		for lo < hi {
			mid := lo + (hi-lo)/2
			if l.at(mid).ev.Index <= since {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		sub.cursor = lo
	}
	if l.subs == nil {
		l.subs = map[*eventSub]struct{}{}
	}
	l.subs[sub] = struct{}{}
	return sub, nil
}

// unsubscribe forgets a subscriber.
func (l *eventLog) unsubscribe(sub *eventSub) {
	l.mu.Lock()
	delete(l.subs, sub)
	l.mu.Unlock()
}

// pump delivers a subscriber's events to out until ctx ends, done closes
// or the subscriber is cut off (then a final event carries the error); it
// closes out when it returns.
func (l *eventLog) pump(ctx context.Context, done <-chan struct{}, sub *eventSub, out chan<- Event) {
	defer close(out)
	defer l.unsubscribe(sub)
	buf := make([]eventRec, 0, eventChanSize)
	for {
		var err error
		buf, err = l.take(sub, buf[:0])
		for i := range buf {
			select {
			case out <- buf[i].event():
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
		if err != nil {
			select {
			case out <- Event{Err: err}:
			case <-ctx.Done():
			case <-done:
			}
			return
		}
		if len(buf) == 0 {
			select {
			case <-sub.wake:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}
}

// take appends to buf the subscriber's next events (up to cap(buf)) and
// advances its cursor; the error is set once the subscriber is cut off.
func (l *eventLog) take(sub *eventSub, buf []eventRec) ([]eventRec, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sub.err != nil {
		return buf, sub.err
	}
	if sub.cursor < l.lo {
		sub.err = fmt.Errorf("%w: the subscriber fell more than %d events behind", ErrEventsTruncated, l.capacity())
		return buf, sub.err
	}
	for ; sub.cursor < l.next && len(buf) < cap(buf); sub.cursor++ {
		if e := l.at(sub.cursor); e.ev.Index > sub.after {
			buf = append(buf, *e)
		}
	}
	return buf, nil
}

func (l *eventLog) capacity() int {
	if l.size > 0 {
		return l.size
	}
	return eventBufferSize
}

// at returns the held event numbered seq.
func (l *eventLog) at(seq uint64) *eventRec { return &l.ring[seq%uint64(len(l.ring))] }

// add appends an event to the ring, evicting the oldest when it is full.
func (l *eventLog) add(e *eventRec) {
	if l.ring == nil {
		l.ring = make([]eventRec, l.capacity())
	}
	if l.next-l.lo == uint64(len(l.ring)) {
		old := l.at(l.lo)
		l.floor = max(l.floor, old.ev.Index)
		*old = eventRec{}
		l.lo++
	}
	*l.at(l.next) = *e
	l.next++
}

// wakeAll pokes every subscriber, never blocking.
func (l *eventLog) wakeAll() {
	for sub := range l.subs {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// reset rebuilds the mirrors from st and drops the held events: only
// entries after index can be resumed from, and current subscribers, who
// would miss changes, are cut off.
func (l *eventLog) reset(st *state, index uint64) {
	l.st = st
	l.services = maps.Clone(st.services)
	l.nodes = maps.Clone(st.nodes)
	l.tasks = maps.Clone(st.tasks)
	for seq := l.lo; seq < l.next; seq++ {
		*l.at(seq) = eventRec{}
	}
	l.lo = l.next
	l.floor = index
	for sub := range l.subs {
		if sub.err == nil {
			sub.err = fmt.Errorf("%w: this manager's state was replaced by a snapshot", ErrEventsTruncated)
		}
	}
	l.wakeAll()
}

// derive appends the events of one applied command and brings the mirrors
// up to date with st for the objects it touched.
//
// Services and nodes are compared in full on every command but the task
// batches (there are few of them, and new command types then need no
// change here); tasks are compared for the IDs the command's ops name.
// Events come in a fixed order: services, then nodes (each by ID), then
// tasks in op order, once per task.
func (l *eventLog) derive(st *state, c *command, index uint64) {
	seq := 0
	emit := func(r eventRec) {
		r.ev.Index, r.ev.Seq, r.ev.Time = index, seq, c.Time
		seq++
		l.add(&r)
	}
	if c.Type != cmdTasks || c.ID != "" || c.Service != nil || c.Node != nil {
		for _, id := range changedIDs(l.services, st.services) {
			emit(serviceEvent(l.services[id], st.services[id]))
			mirror(l.services, id, st.services[id])
		}
		for _, id := range changedIDs(l.nodes, st.nodes) {
			emit(nodeEvent(l.nodes[id], st.nodes[id]))
			mirror(l.nodes, id, st.nodes[id])
		}
	}
	for i := range c.Ops {
		op := &c.Ops[i]
		id := op.ID
		if op.Op == opCreate && op.Task != nil {
			id = op.Task.ID
		}
		pre, post := l.tasks[id], st.tasks[id]
		if pre == post {
			continue // unchanged, or already reported for this entry
		}
		emit(taskEvent(pre, post))
		mirror(l.tasks, id, post)
	}
}

// changedIDs returns, sorted, the IDs whose object differs between the
// mirror and the state (added, changed or removed).
func changedIDs[T any](mirror, cur map[string]*T) []string {
	var ids []string
	for id, v := range cur {
		if mirror[id] != v {
			ids = append(ids, id)
		}
	}
	for id := range mirror {
		if _, ok := cur[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// mirror records v (nil: deleted) as the mirror's object for id.
func mirror[T any](m map[string]*T, id string, v *T) {
	if v == nil {
		delete(m, id)
	} else {
		m[id] = v
	}
}

// action names a change from the object before and after it.
func action(created, removed bool) string {
	switch {
	case created:
		return ActionCreate
	case removed:
		return ActionRemove
	}
	return ActionUpdate
}

// eventRec is an event as the ring holds it: its attributes as a list of
// pairs, so that deriving events allocates no maps (each receiver gets
// its own map, built by its pump).
type eventRec struct {
	ev    Event // Attributes nil
	attrs attrList
}

// event returns the event with its Attributes map.
func (r *eventRec) event() Event {
	e := r.ev
	if r.attrs.n > 0 {
		e.Attributes = make(map[string]string, r.attrs.n/2)
		for i := 0; i < r.attrs.n; i += 2 {
			e.Attributes[r.attrs.kv[i]] = r.attrs.kv[i+1]
		}
	}
	return e
}

// attrList collects up to 6 attribute key/value pairs.
type attrList struct {
	kv [12]string
	n  int
}

func (a *attrList) set(key, v string) {
	if a.n+2 <= len(a.kv) {
		a.kv[a.n], a.kv[a.n+1] = key, v
		a.n += 2
	}
}

// diff records a changed value as an old/new pair.
func (a *attrList) diff(oldKey, newKey, old, cur string) {
	if old != cur {
		a.set(oldKey, old)
		a.set(newKey, cur)
	}
}

// serviceEvent describes a service change (pre or post nil for a create
// or remove).
func serviceEvent(pre, post *Service) eventRec {
	v := post
	if v == nil {
		v = pre
	}
	r := eventRec{ev: Event{Type: EventService, Action: action(pre == nil, post == nil), ID: v.ID, Name: v.Spec.Name}}
	if pre != nil && post != nil {
		r.attrs.diff("replicas.old", "replicas.new", replicasAttr(&pre.Spec), replicasAttr(&post.Spec))
		r.attrs.diff("image.old", "image.new", pre.Spec.Image, post.Spec.Image)
		r.attrs.diff("updatestate.old", "updatestate.new", updateStateAttr(pre), updateStateAttr(post))
	}
	return r
}

// replicasAttr is a service's replica count ("" for other modes).
func replicasAttr(spec *ServiceSpec) string {
	m := spec.Mode.normalized()
	if m.Kind != ModeReplicated {
		return ""
	}
	return strconv.FormatUint(m.Replicas, 10)
}

func updateStateAttr(v *Service) string {
	if v.UpdateStatus == nil {
		return ""
	}
	return string(v.UpdateStatus.State)
}

// nodeEvent describes a node change.
func nodeEvent(pre, post *NodeInfo) eventRec {
	v := post
	if v == nil {
		v = pre
	}
	r := eventRec{ev: Event{Type: EventNode, Action: action(pre == nil, post == nil), ID: v.ID, Name: v.Hostname, State: string(v.State)}}
	if pre != nil && post != nil {
		r.attrs.diff("state.old", "state.new", string(pre.State), string(post.State))
		r.attrs.diff("availability.old", "availability.new", string(pre.Availability), string(post.Availability))
		r.attrs.diff("role.old", "role.new", string(pre.Role), string(post.Role))
	}
	return r
}

// taskEvent describes a task change: a create, a remove, a status state
// change ("state") or any other change ("update").
func taskEvent(pre, post *Task) eventRec {
	t := post
	if t == nil {
		t = pre
	}
	r := eventRec{ev: Event{Type: EventTask, Action: action(pre == nil, post == nil), ID: t.ID, Name: t.Name(),
		ServiceID: t.ServiceID, NodeID: t.NodeID, State: string(t.Status.State)}}
	if pre == nil || post == nil {
		return r
	}
	if pre.Status.State != post.Status.State {
		r.ev.Action = ActionState
		r.attrs.set("state.old", string(pre.Status.State))
		if post.Status.Message != "" {
			r.attrs.set("message", post.Status.Message)
		}
		if post.Status.Err != "" {
			r.attrs.set("error", post.Status.Err)
		}
	} else if pre.Status.Message != post.Status.Message {
		r.attrs.set("message", post.Status.Message)
	}
	r.attrs.diff("desiredstate.old", "desiredstate.new", string(pre.DesiredState), string(post.DesiredState))
	return r
}
