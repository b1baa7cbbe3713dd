package swarm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// applyAt feeds c to f at index with time now and returns the response.
func applyAt(t *testing.T, f *fsm, index uint64, now time.Time, c command) any {
	t.Helper()
	c.Time = now
	data, err := encodeCommand(&c)
	require.NoError(t, err)
	return f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data})
}

func svcCreate(name, reqID string) command {
	return command{Type: cmdServiceCreate, ReqID: reqID,
		Service: &Service{ID: "id-" + name, Spec: ServiceSpec{Name: name, Image: "nginx"}}}
}

// A repeated request ID returns the first outcome (index and sentinel),
// survives a snapshot, and is forgotten after dedupeMaxAge of command time
// or dedupeMaxEntries newer IDs.
func TestDedupeTable(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFSM()
	require.Nil(t, applyAt(t, f, 1, t0, svcCreate("a", "r1")))
	got := applyAt(t, f, 2, t0, svcCreate("a", "r1"))
	require.Equal(t, &applyOutcome{Index: 1}, got)
	res := applyAt(t, f, 3, t0, svcCreate("a", "r2"))
	require.ErrorIs(t, res.(error), ErrNameConflict)
	out := applyAt(t, f, 4, t0, svcCreate("b", "r2")).(*applyOutcome)
	require.Equal(t, uint64(3), out.Index)
	require.ErrorIs(t, out.Err, ErrNameConflict, "the first error, though the command would now apply")
	require.Equal(t, res.(error).Error(), out.Err.Error())
	f.read(func(s *state) { require.Len(t, s.services, 1) })

	// Snapshot and restore keep the table.
	snap, err := f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(snap.(*fsmSnapshot).data))
	g := newFSM()
	require.NoError(t, g.Restore(io.NopCloser(&buf)))
	require.Equal(t, &applyOutcome{Index: 1}, applyAt(t, g, 5, t0, svcCreate("a", "r1")))

	// Age: a command stamped dedupeMaxAge later evicts both.
	late := t0.Add(dedupeMaxAge + time.Second)
	require.ErrorIs(t, applyAt(t, g, 6, late, svcCreate("a", "r1")).(error), ErrNameConflict, "r1 forgotten: applied again")
	require.Nil(t, applyAt(t, g, 7, late, svcCreate("b", "r2")), "r2 forgotten: applied again")

	// Count: the oldest ID goes once dedupeMaxEntries newer ones exist.
	h := newFSM()
	require.Nil(t, applyAt(t, h, 1, t0, svcCreate("first", "first")))
	for i := 0; i < dedupeMaxEntries; i++ {
		applyAt(t, h, uint64(i+2), t0, command{Type: cmdServiceRemove, ID: "none", ReqID: fmt.Sprint("x", i)})
	}
	_, known := h.dedupe.lookup("first")
	require.False(t, known)
	_, known = h.dedupe.lookup("x1")
	require.True(t, known)
	require.Len(t, h.dedupe.order, dedupeMaxEntries)
	require.Len(t, h.dedupe.byID, dedupeMaxEntries)
}
