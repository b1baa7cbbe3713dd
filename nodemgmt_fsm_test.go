package swarm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cmdNodeSpec, the command behind UpdateNode/PromoteNode/DemoteNode: only
// the fields set change, versions are checked, and the FSM itself refuses
// to demote the last manager.
func TestFSMNodeSpec(t *testing.T) {
	now := time.Unix(1000, 0).UTC()
	setup := func(t *testing.T) *fsm {
		f := newFSM()
		require.NoError(t, applyCmd(t, f, 1, &command{Type: cmdNodeUpsert, Time: now,
			Node: &NodeInfo{ID: "m1", Role: RoleManager, Labels: map[string]string{"a": "1"}}}))
		require.NoError(t, applyCmd(t, f, 2, &command{Type: cmdNodeUpsert, Time: now,
			Node: &NodeInfo{ID: "w1", Role: RoleWorker}}))
		return f
	}
	node := func(f *fsm, id string) NodeInfo {
		var nd NodeInfo
		f.read(func(s *state) { nd = *s.nodes[id] })
		return nd
	}
	spec := func(id string, version uint64, n NodeInfo) *command {
		return &command{Type: cmdNodeSpec, Time: now, ID: id, Version: version, Node: &n}
	}
	for _, tc := range []struct {
		name string
		cmds []*command
		err  error
		id   string
		want func(t *testing.T, nd NodeInfo)
	}{
		{name: "labels only", cmds: []*command{spec("m1", 1, NodeInfo{Labels: map[string]string{"b": "2"}})}, id: "m1",
			want: func(t *testing.T, nd NodeInfo) {
				require.Equal(t, map[string]string{"b": "2"}, nd.Labels)
				require.Equal(t, AvailabilityActive, nd.Availability)
				require.Equal(t, RoleManager, nd.Role)
				require.Equal(t, uint64(3), nd.Version)
			}},
		{name: "nil labels keep them", cmds: []*command{spec("m1", 0, NodeInfo{Availability: AvailabilityDrain})}, id: "m1",
			want: func(t *testing.T, nd NodeInfo) {
				require.Equal(t, map[string]string{"a": "1"}, nd.Labels)
				require.Equal(t, AvailabilityDrain, nd.Availability)
			}},
		{name: "empty labels clear them", cmds: []*command{spec("m1", 0, NodeInfo{Labels: map[string]string{}})}, id: "m1",
			want: func(t *testing.T, nd NodeInfo) { require.Empty(t, nd.Labels) }},
		{name: "stale version", cmds: []*command{spec("m1", 2, NodeInfo{Availability: AvailabilityPause})}, err: ErrVersionConflict},
		{name: "unknown node", cmds: []*command{spec("x", 0, NodeInfo{Availability: AvailabilityPause})}, err: ErrNotFound},
		{name: "last manager", cmds: []*command{spec("m1", 0, NodeInfo{Role: RoleWorker})}, err: ErrLastManager},
		{name: "promote then demote", cmds: []*command{spec("w1", 2, NodeInfo{Role: RoleManager}), spec("m1", 0, NodeInfo{Role: RoleWorker})}, id: "m1",
			want: func(t *testing.T, nd NodeInfo) { require.Equal(t, RoleWorker, nd.Role) }},
		{name: "demote both", cmds: []*command{spec("w1", 0, NodeInfo{Role: RoleManager}), spec("m1", 0, NodeInfo{Role: RoleWorker}),
			spec("w1", 0, NodeInfo{Role: RoleWorker})}, err: ErrLastManager},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			var err error
			for i, c := range tc.cmds {
				if err = applyCmd(t, f, uint64(3+i), c); err != nil {
					break
				}
			}
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			tc.want(t, node(f, tc.id))
		})
	}
}
