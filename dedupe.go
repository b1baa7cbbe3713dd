package swarm

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Exactly-once client writes. [Node.apply] gives every client write a
// request ID before its first attempt and retries with the same ID when
// the outcome is unknown (no leader, a lost reply, leadership lost after
// the entry was proposed). The FSM remembers each ID's outcome, so a
// retry of a command that did commit returns the first outcome instead of
// applying again (which would turn a successful CreateService into
// ErrNameConflict, or an UpdateService into ErrVersionConflict).

const (
	// dedupeMaxEntries and dedupeMaxAge bound the table: an ID is
	// forgotten once dedupeMaxEntries newer ones were recorded or its
	// command is dedupeMaxAge older (by the leader-stamped command time)
	// than the command being applied, whichever comes first. A retry
	// never outlives its caller's deadline, far below either bound.
	dedupeMaxEntries = 10000
	dedupeMaxAge     = 10 * time.Minute
)

// newRequestID returns a random request ID (128 bits, hex).
func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("swarm: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// dedupeEntry is one remembered outcome. The error is kept as the RPC
// envelope encodes it (message and sentinel), which is deterministic and
// survives a snapshot: a retry gets the same sentinel back.
type dedupeEntry struct {
	ID      string    `json:"id"`
	Index   uint64    `json:"i"`
	Time    time.Time `json:"t"`
	ErrMsg  string    `json:"e,omitempty"`
	ErrKind int       `json:"k,omitempty"`
}

// outcome is the result the first application of the command returned.
func (e *dedupeEntry) outcome() *applyOutcome {
	env := rpcEnvelope{ErrMsg: e.ErrMsg, ErrKind: e.ErrKind}
	return &applyOutcome{Index: e.Index, Err: env.err()}
}

// applyOutcome is the FSM's response to a command that repeats a
// request ID already applied: the first application's index and error.
type applyOutcome struct {
	Index uint64
	Err   error
}

// dedupeTable holds the outcomes in log order (oldest first), so eviction
// depends on the log alone and every manager evicts the same entries.
type dedupeTable struct {
	byID  map[string]int // ID -> position in order, offset by base
	order []dedupeEntry
	base  int // number of entries evicted from the front of order so far
}

func newDedupeTable() *dedupeTable { return &dedupeTable{byID: map[string]int{}} }

// lookup returns the recorded outcome of id.
func (d *dedupeTable) lookup(id string) (*dedupeEntry, bool) {
	p, ok := d.byID[id]
	if !ok {
		return nil, false
	}
	return &d.order[p-d.base], true
}

// record remembers the outcome of the command with request ID id applied
// at index with the leader-stamped time now, then evicts what the bounds
// allow. It runs inside Apply.
func (d *dedupeTable) record(id string, index uint64, now time.Time, err error) {
	e := dedupeEntry{ID: id, Index: index, Time: now}
	if err != nil {
		var env rpcEnvelope
		env.setErr(err)
		e.ErrMsg, e.ErrKind = env.ErrMsg, env.ErrKind
	}
	d.byID[id] = d.base + len(d.order)
	d.order = append(d.order, e)
	d.evict(now)
}

// evict drops the oldest entries beyond dedupeMaxEntries or older than
// dedupeMaxAge before now (a command's stamped time, never a local clock).
func (d *dedupeTable) evict(now time.Time) {
	cut := 0
	for cut < len(d.order) {
		e := &d.order[cut]
		if len(d.order)-cut <= dedupeMaxEntries && (now.IsZero() || !e.Time.Before(now.Add(-dedupeMaxAge))) {
			break
		}
		delete(d.byID, e.ID)
		cut++
	}
	if cut == 0 {
		return
	}
	d.base += cut
	// Copy rather than reslice, so the backing array does not grow forever.
	d.order = append([]dedupeEntry(nil), d.order[cut:]...)
}

// export returns a copy of the entries for a snapshot.
func (d *dedupeTable) export() []dedupeEntry {
	if len(d.order) == 0 {
		return nil
	}
	return append([]dedupeEntry(nil), d.order...)
}

// dedupeFrom rebuilds a table from a snapshot's entries.
func dedupeFrom(es []dedupeEntry) *dedupeTable {
	d := newDedupeTable()
	for _, e := range es {
		if e.ID == "" {
			continue
		}
		if _, dup := d.byID[e.ID]; dup {
			continue
		}
		d.byID[e.ID] = len(d.order)
		d.order = append(d.order, e)
	}
	return d
}

// applyDeduped applies c unless its request ID was applied before, and
// records the outcome of a first application. For a repeat it returns the
// first application's outcome and changes nothing else. Called by
// [fsm.Apply] with the lock held.
func (f *fsm) applyDeduped(c *command, index uint64) (*applyOutcome, error) {
	if c.ReqID == "" {
		return nil, f.st.apply(c, index)
	}
	if f.dedupe == nil {
		f.dedupe = newDedupeTable()
	}
	// Forget what this command's time has aged out first: whether an ID
	// is still known must depend on the log alone.
	f.dedupe.evict(c.Time)
	if e, ok := f.dedupe.lookup(c.ReqID); ok {
		return e.outcome(), nil
	}
	err := f.st.apply(c, index)
	f.dedupe.record(c.ReqID, index, c.Time, err)
	return nil, err
}
