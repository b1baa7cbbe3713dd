package chaos

import (
	"testing"
	"time"
)

// op builds one call: client, call and return in ms (return -1: unknown outcome).
func op(client, call, ret int, in Input, out Output) Op {
	base := time.Unix(1000, 0)
	o := Op{Client: client, In: in, Out: out, Call: base.Add(time.Duration(call) * time.Millisecond)}
	if ret >= 0 {
		o.Return = base.Add(time.Duration(ret) * time.Millisecond)
	}
	return o
}

func TestModelAcceptsLinearizableHistory(t *testing.T) {
	ops := []Op{
		op(0, 0, 10, Input{Key: "a", Kind: OpCreate, Replicas: 2, Image: "x"}, Output{Outcome: OK}),
		op(1, 5, 15, Input{Key: "a", Kind: OpCreate, Replicas: 1, Image: "y"}, Output{Outcome: Conflict}),
		op(1, 20, 30, Input{Key: "a", Kind: OpScale, Replicas: 3}, Output{Outcome: OK}),
		// Unknown: may have happened (it did, the read shows it).
		op(2, 31, -1, Input{Key: "a", Kind: OpUpdate, Image: "z", Expect: Obj{true, 3, "x"}}, Output{Outcome: Unknown}),
		op(0, 40, 45, Input{Key: "a", Kind: OpRead}, Output{Outcome: OK, Read: Obj{true, 3, "z"}}),
		op(0, 50, 55, Input{Key: "a", Kind: OpRemove}, Output{Outcome: OK}),
		op(1, 60, 65, Input{Key: "a", Kind: OpRead}, Output{Outcome: NotFound}),
	}
	v, u := CheckLinearizable(ops, 5*time.Second)
	if len(v) != 0 || len(u) != 0 {
		t.Fatalf("violations %v, undecided %v", v, u)
	}
	if lost := LostWrites(ops, map[string]Obj{"a": {}}); len(lost) != 0 {
		t.Fatalf("lost %v", lost)
	}
}

func TestModelRejectsStaleReadAndLostWrite(t *testing.T) {
	ops := []Op{
		op(0, 0, 10, Input{Key: "a", Kind: OpCreate, Replicas: 2, Image: "x"}, Output{Outcome: OK}),
		op(0, 20, 30, Input{Key: "a", Kind: OpScale, Replicas: 5}, Output{Outcome: OK}),
		// A read after the scale returned that shows the old count: stale.
		op(1, 40, 50, Input{Key: "a", Kind: OpRead}, Output{Outcome: OK, Read: Obj{true, 2, "x"}}),
	}
	if v, _ := CheckLinearizable(ops, 5*time.Second); len(v) != 1 {
		t.Fatalf("want one violation, got %v", v)
	}
	if lost := LostWrites(ops, map[string]Obj{"a": {true, 2, "x"}}); len(lost) != 1 {
		t.Fatalf("want the scale lost, got %v", lost)
	}
	// An update that succeeded although the object had changed since the
	// read it was based on: a lost update.
	ops = []Op{
		op(0, 0, 10, Input{Key: "b", Kind: OpCreate, Replicas: 1, Image: "x"}, Output{Outcome: OK}),
		op(1, 20, 30, Input{Key: "b", Kind: OpScale, Replicas: 4}, Output{Outcome: OK}),
		op(0, 40, 50, Input{Key: "b", Kind: OpUpdate, Image: "y", Expect: Obj{true, 1, "x"}}, Output{Outcome: OK}),
	}
	if v, _ := CheckLinearizable(ops, 5*time.Second); len(v) != 1 {
		t.Fatalf("want the lost update caught, got %v", v)
	}
}
