package swarm

import (
	"encoding/json"
	"io"
	"reflect"
)

// Every task records the spec it runs, and a service's tasks nearly
// always run one of very few specs. Writing the spec with every task made
// a snapshot grow as tasks x spec size (1,000 replicas of a spec with a
// 1 MiB label: a 1 GB snapshot); a snapshot therefore stores each distinct
// spec once, and each task the number of its spec. In memory the tasks of
// a spec share its maps and slices (Apply copies the service's spec
// shallowly; Restore hands every task of a spec the same one).

// snapshotFormat is the current snapshot encoding: 0 (no Format field) is
// the first, where every task carried its spec; 2 stores specs once. Bump
// it when a snapshot of the new code would be read wrongly by the old
// decoding, keep reading every earlier format (readSnapshot), and keep a
// golden file of each in testdata/golden: the stability rule is at the top
// of raftfsm.go ([commandVersion]).
const snapshotFormat = 2

// snapshotFile is a snapshot as written: snapshotData with the tasks'
// specs moved out to Specs.
type snapshotFile struct {
	snapshotData
	Format int `json:",omitempty"`
	// Specs are the distinct specs of the tasks.
	Specs []*ServiceSpec `json:",omitempty"`
	// TaskSpecs holds, for each of Tasks in order, 1 + the index of its
	// spec in Specs (0: the task carries its own spec, as in format 0).
	TaskSpecs []int `json:",omitempty"`
}

// specTable assigns numbers to distinct task specs.
type specTable struct {
	specs []*ServiceSpec
	// byKey lists, per service and spec version, the numbers of the specs
	// seen (almost always one; a scale or label change keeps the version).
	byKey map[specKeyT][]int
}

type specKeyT struct {
	service string
	version uint64
}

// number returns the number of t's spec, adding it if new. Specs shared
// in memory compare in constant time (reflect.DeepEqual stops at maps and
// slices that are the same object).
func (st *specTable) number(t *Task) int {
	if st.byKey == nil {
		st.byKey = map[specKeyT][]int{}
	}
	k := specKeyT{t.ServiceID, t.SpecVersion}
	for _, i := range st.byKey[k] {
		if reflect.DeepEqual(st.specs[i], &t.Spec) {
			return i
		}
	}
	spec := t.Spec
	st.specs = append(st.specs, &spec)
	i := len(st.specs) - 1
	st.byKey[k] = append(st.byKey[k], i)
	return i
}

// writeSnapshot encodes d in the current format. It runs outside the fsm
// lock: the objects d points to are immutable.
func writeSnapshot(w io.Writer, d *snapshotData) error {
	f := snapshotFile{snapshotData: *d, Format: snapshotFormat}
	f.Tasks = make([]*Task, len(d.Tasks))
	f.TaskSpecs = make([]int, len(d.Tasks))
	var st specTable
	for i, t := range d.Tasks {
		c := *t
		c.Spec = ServiceSpec{}
		f.Tasks[i] = &c
		f.TaskSpecs[i] = st.number(t) + 1
	}
	f.Specs = st.specs
	return json.NewEncoder(w).Encode(&f)
}

// readSnapshot decodes a snapshot of any format.
func readSnapshot(r io.Reader) (*snapshotData, error) {
	var f snapshotFile
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return nil, err
	}
	d := &f.snapshotData
	if len(f.TaskSpecs) == len(d.Tasks) {
		for i, t := range d.Tasks {
			if n := f.TaskSpecs[i]; t != nil && n > 0 && n <= len(f.Specs) && f.Specs[n-1] != nil {
				t.Spec = *f.Specs[n-1]
			}
		}
		return d, nil
	}
	// Format 0: each task decoded its own copy of the spec; let the
	// tasks of one spec share one again.
	var st specTable
	for _, t := range d.Tasks {
		if t != nil {
			t.Spec = *st.specs[st.number(t)]
		}
	}
	return d, nil
}
