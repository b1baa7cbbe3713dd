package chaos

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is a client operation on one object (a service or a secret).
type OpKind string

// The operations the clients run. Update is a compare-and-set: the client
// read the service, then UpdateService with the version it read, so it may
// only succeed if the object still looked like what was read.
const (
	OpCreate OpKind = "create"
	OpScale  OpKind = "scale"
	OpUpdate OpKind = "update"
	OpRemove OpKind = "remove"
	OpRead   OpKind = "read"
)

// Outcome is how a call ended, as far as the client can tell.
type Outcome string

// Outcomes. Unknown covers timeouts, ErrNoLeader, ErrShutdown and
// transport errors: the write may or may not have happened (a leader can
// commit an entry and lose leadership before it replies), so the checker
// lets it take effect at any point after its call, or never.
const (
	OK        Outcome = "ok"
	NotFound  Outcome = "not_found"
	Conflict  Outcome = "conflict" // name conflict on create, version conflict on update
	Unknown   Outcome = "unknown"
	Invalid   Outcome = "invalid" // a definite refusal that changes nothing
	OtherFail Outcome = "fail"
)

// Obj is the state of one object as the model sees it.
type Obj struct {
	Exists   bool
	Replicas uint64
	Image    string
}

func (o Obj) String() string {
	if !o.Exists {
		return "absent"
	}
	return fmt.Sprintf("{r=%d img=%s}", o.Replicas, o.Image)
}

// Input is an operation's argument.
type Input struct {
	Key      string
	Kind     OpKind
	Replicas uint64 // create, scale
	Image    string // create, update (the new image)
	Expect   Obj    // update: what the client read before its update
}

// Output is an operation's result.
type Output struct {
	Outcome Outcome
	Read    Obj // read
	Err     string
}

// Op is one recorded call.
type Op struct {
	Client   int
	In       Input
	Out      Output
	Call     time.Time
	Return   time.Time // zero for an unknown outcome
	Endpoint string    // the manager the call went to
}

// History records client calls; it is safe for concurrent use.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records one call.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the calls so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// model is the porcupine model of a set of independent objects, one
// partition per key: each object is a register of (exists, replicas, image).
var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return Obj{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(Obj), input.(Input), output.(Output)
		next, results := step(s, in)
		if out.Outcome == Unknown {
			return true, next
		}
		if out.Outcome == Invalid || out.Outcome == OtherFail {
			return true, s // a definite refusal: nothing changed
		}
		for _, r := range results {
			if r.outcome != out.Outcome {
				continue
			}
			if in.Kind == OpRead && r.outcome == OK && out.Read != s {
				continue
			}
			if r.outcome == OK {
				return true, next
			}
			return true, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		switch in.Kind {
		case OpRead:
			if out.Outcome == OK {
				return fmt.Sprintf("read(%s) -> %s", in.Key, out.Read)
			}
			return fmt.Sprintf("read(%s) -> %s", in.Key, out.Outcome)
		case OpCreate:
			return fmt.Sprintf("create(%s,r=%d,%s) -> %s", in.Key, in.Replicas, in.Image, out.Outcome)
		case OpScale:
			return fmt.Sprintf("scale(%s,%d) -> %s", in.Key, in.Replicas, out.Outcome)
		case OpUpdate:
			return fmt.Sprintf("update(%s,%s if %s) -> %s", in.Key, in.Image, in.Expect, out.Outcome)
		}
		return fmt.Sprintf("%s(%s) -> %s", in.Kind, in.Key, out.Outcome)
	},
	DescribeState: func(state any) string { return state.(Obj).String() },
}

type result struct{ outcome Outcome }

// step returns the state after in succeeds and the outcomes in allows
// from state s (OK first when it is allowed).
func step(s Obj, in Input) (Obj, []result) {
	switch in.Kind {
	case OpCreate:
		if s.Exists {
			return s, []result{{Conflict}}
		}
		return Obj{Exists: true, Replicas: in.Replicas, Image: in.Image}, []result{{OK}}
	case OpScale:
		if !s.Exists {
			return s, []result{{NotFound}}
		}
		n := s
		n.Replicas = in.Replicas
		return n, []result{{OK}}
	case OpUpdate:
		if !s.Exists {
			// A recreated or removed object: not found, or a conflict when
			// the name now resolves to another object.
			return s, []result{{NotFound}, {Conflict}}
		}
		if s != in.Expect {
			return s, []result{{Conflict}}
		}
		// The state matches what was read, but an intervening write of
		// the same values bumps the version: a conflict is allowed too.
		n := s
		n.Image = in.Image
		return n, []result{{OK}, {Conflict}}
	case OpRemove:
		if !s.Exists {
			return s, []result{{NotFound}}
		}
		return Obj{}, []result{{OK}}
	case OpRead:
		if !s.Exists {
			return s, []result{{NotFound}}
		}
		return s, []result{{OK}}
	}
	return s, nil
}

// Violation is one key whose history is not linearizable.
type Violation struct {
	Key string
	// Stuck names the first operation (by call time) that no longest
	// linearizable prefix could include: where to start reading.
	Stuck string
	// Hint names a known cause when the history shows it.
	Hint string
	Ops  []string // the key's history, in call order
	// Visual is an HTML visualisation of the history (porcupine's), if written.
	Visual string
}

// CheckLinearizable checks ops with porcupine and returns the keys whose
// histories are not linearizable (each checked on its own, with timeout
// per key; a key that times out is reported as unknown, not as a violation).
func CheckLinearizable(ops []Op, timeout time.Duration) (violations []Violation, unknownKeys []string) {
	by := map[string][]porcupine.Operation{}
	raw := map[string][]Op{}
	base := time.Time{}
	for _, op := range ops {
		if base.IsZero() || op.Call.Before(base) {
			base = op.Call
		}
	}
	for _, op := range ops {
		ret := int64(math.MaxInt64)
		if !op.Return.IsZero() {
			ret = op.Return.Sub(base).Nanoseconds()
		}
		by[op.In.Key] = append(by[op.In.Key], porcupine.Operation{
			ClientId: op.Client, Input: op.In, Output: op.Out,
			Call: op.Call.Sub(base).Nanoseconds(), Return: ret,
		})
		raw[op.In.Key] = append(raw[op.In.Key], op)
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		res, info := porcupine.CheckOperationsVerbose(model, by[k], timeout)
		switch res {
		case porcupine.Illegal:
			v := Violation{Key: k}
			// The longest partial linearization; the earliest-called op
			// outside it is where the history goes wrong.
			var best []int
			for _, part := range info.PartialLinearizations() {
				for _, lin := range part {
					if len(lin) > len(best) {
						best = lin
					}
				}
			}
			in := map[int]bool{}
			for _, i := range best {
				in[i] = true
			}
			stuck := -1
			for i, op := range by[k] {
				if !in[i] && (stuck < 0 || op.Call < by[k][stuck].Call) {
					stuck = i
				}
			}
			if stuck >= 0 {
				op := raw[k][stuck]
				v.Stuck = fmt.Sprintf("c%d @%s %s %s", op.Client, op.Endpoint, model.DescribeOperation(op.In, op.Out), op.Out.Err)
			}
			for _, op := range raw[k] {
				if op.In.Kind == OpCreate && op.Out.Outcome == NotFound {
					v.Hint = "a create returned not_found: it committed, then its read-back lost to a concurrent remove (CreateService/CreateSecret report failure for a committed write)"
				}
			}
			if dir := os.Getenv("CHAOS_VISUAL_DIR"); dir != "" {
				path := filepath.Join(dir, fmt.Sprintf("chaos-%s-%d.html", k, time.Now().UnixNano()))
				if porcupine.VisualizePath(model, info, path) == nil {
					v.Visual = path
				}
			}
			rs := append([]Op(nil), raw[k]...)
			sort.Slice(rs, func(i, j int) bool { return rs[i].Call.Before(rs[j].Call) })
			for _, op := range rs {
				ret := "?"
				if !op.Return.IsZero() {
					ret = fmt.Sprintf("%.3fs", op.Return.Sub(base).Seconds())
				}
				v.Ops = append(v.Ops, fmt.Sprintf("c%d [%.3fs, %s] @%s %s %s", op.Client,
					op.Call.Sub(base).Seconds(), ret, op.Endpoint,
					model.DescribeOperation(op.In, op.Out), op.Out.Err))
			}
			violations = append(violations, v)
		case porcupine.Unknown:
			unknownKeys = append(unknownKeys, k)
		}
	}
	return violations, unknownKeys
}

// LostWrites returns, per key, the acknowledged writes that the final read
// contradicts: a key's last write, acknowledged, that no other write (of any
// outcome) overlaps or follows, must be what the final read shows.
func LostWrites(ops []Op, final map[string]Obj) []string {
	byKey := map[string][]Op{}
	for _, op := range ops {
		if op.In.Kind != OpRead {
			byKey[op.In.Key] = append(byKey[op.In.Key], op)
		}
	}
	var lost []string
	for k, ws := range byKey {
		got, ok := final[k]
		if !ok {
			continue
		}
		var last *Op
		for i := range ws {
			w := &ws[i]
			if w.Out.Outcome != OK {
				continue
			}
			if last == nil || w.Return.After(last.Return) {
				last = w
			}
		}
		if last == nil {
			continue
		}
		clean := true
		for i := range ws {
			w := &ws[i]
			if w == last || w.Out.Outcome == NotFound || w.Out.Outcome == Conflict || w.Out.Outcome == Invalid || w.Out.Outcome == OtherFail {
				continue
			}
			// Any write that may have taken effect after last did.
			if w.Return.IsZero() || w.Return.After(last.Call) {
				clean = false
				break
			}
		}
		if !clean {
			continue
		}
		var want Obj
		switch last.In.Kind {
		case OpCreate:
			want = Obj{Exists: true, Replicas: last.In.Replicas, Image: last.In.Image}
		case OpRemove:
			want = Obj{}
		case OpScale:
			if got.Exists && got.Replicas == last.In.Replicas {
				continue
			}
			want = Obj{Exists: true, Replicas: last.In.Replicas, Image: got.Image}
		case OpUpdate:
			if got.Exists && got.Image == last.In.Image {
				continue
			}
			want = Obj{Exists: true, Replicas: got.Replicas, Image: last.In.Image}
		}
		if want != got {
			lost = append(lost, fmt.Sprintf("%s: acknowledged %s at %s, final read %s",
				k, model.DescribeOperation(last.In, last.Out), last.Return.Format("15:04:05.000"), got))
		}
	}
	sort.Strings(lost)
	return lost
}
