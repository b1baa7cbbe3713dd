package swarm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// schedSpread returns a spec spreading over the given labels, in order.
func schedSpread(labels ...string) *ServiceSpec {
	spec := &ServiceSpec{Name: "s", Image: "img"}
	for _, l := range labels {
		spec.Placement.Preferences = append(spec.Placement.Preferences, PlacementPreference{Spread: l})
	}
	return spec
}

// schedEngineLabels sets a schedNode's engine labels from key, value pairs.
func schedEngineLabels(kv ...string) func(*NodeInfo) {
	return func(n *NodeInfo) {
		n.EngineLabels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.EngineLabels[kv[i]] = kv[i+1]
		}
	}
}

// schedPerGroup counts placements per value of a node label ("" for nodes
// without it); unplaced tasks count under "-".
func schedPerGroup(nodes []*NodeInfo, ids []string, label string) map[string]int {
	byID := map[string]*NodeInfo{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	m := map[string]int{}
	for _, id := range ids {
		if id == "" {
			m["-"]++
			continue
		}
		m[byID[id].Labels[label]]++
	}
	return m
}

// TestSchedulerSpread covers placement preferences: even shares per label
// value, nested, with nodes lacking the label, filters and existing tasks.
func TestSchedulerSpread(t *testing.T) {
	zone := func(z string) func(*NodeInfo) { return schedLabels("zone", z) }
	zr := func(z, r string) func(*NodeInfo) { return schedLabels("zone", z, "rack", r) }
	nine := []*NodeInfo{
		schedNode("a1", zone("a")), schedNode("a2", zone("a")), schedNode("a3", zone("a")),
		schedNode("b1", zone("b")), schedNode("b2", zone("b")), schedNode("b3", zone("b")),
		schedNode("c1", zone("c")), schedNode("c2", zone("c")), schedNode("c3", zone("c")),
	}
	tests := []struct {
		name       string
		nodes      []*NodeInfo
		occupying  []*Task
		spec       *ServiceSpec
		n          int
		want       []string       // exact placements, if set
		wantZones  map[string]int // tasks per zone label value, if set
		wantNodes  map[string]int // tasks per node, if set
		wantReason string
	}{
		{
			name: "9 over 3 zones", nodes: nine, spec: schedSpread("node.labels.zone"), n: 9,
			wantZones: map[string]int{"a": 3, "b": 3, "c": 3},
			wantNodes: map[string]int{"a1": 1, "a2": 1, "a3": 1, "b1": 1, "b2": 1, "b3": 1, "c1": 1, "c2": 1, "c3": 1},
		},
		{
			name: "zones with 1 and 3 nodes share 50/50",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a")), schedNode("b1", zone("b")), schedNode("b2", zone("b")), schedNode("b3", zone("b")),
			},
			spec: schedSpread("node.labels.zone"), n: 8,
			wantZones: map[string]int{"a": 4, "b": 4},
			wantNodes: map[string]int{"a1": 4, "b1": 2, "b2": 1, "b3": 1},
		},
		{
			name: "without preferences the same nodes share by node",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a")), schedNode("b1", zone("b")), schedNode("b2", zone("b")), schedNode("b3", zone("b")),
			},
			spec: &ServiceSpec{}, n: 8,
			wantZones: map[string]int{"a": 2, "b": 6},
		},
		{
			name: "ties go to the group whose best node ranks best",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a")), schedNode("b1", zone("b")), schedNode("c1", zone("c")),
			},
			occupying: []*Task{schedTask("other", "a1", ServiceSpec{}), schedTask("other", "b1", ServiceSpec{})},
			spec:      schedSpread("node.labels.zone"), n: 4,
			want: []string{"c1", "a1", "b1", "c1"},
		},
		{
			name: "nested: zone, then rack within the zone",
			nodes: []*NodeInfo{
				schedNode("a1", zr("a", "r1")), schedNode("a2", zr("a", "r1")), schedNode("a3", zr("a", "r1")),
				schedNode("a4", zr("a", "r2")),
				schedNode("b1", zr("b", "r1")), schedNode("b2", zr("b", "r1")),
			},
			spec: schedSpread("node.labels.zone", "node.labels.rack"), n: 8,
			// zone a: 4 split r1 2 (over 3 nodes) / r2 2; zone b: 4 on its one rack.
			wantZones: map[string]int{"a": 4, "b": 4},
			wantNodes: map[string]int{"a1": 1, "a2": 1, "a4": 2, "b1": 2, "b2": 2},
		},
		{
			name: "nodes without the label form one group",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a")), schedNode("b1", zone("b")),
				schedNode("x1"), schedNode("x2", schedLabels("other", "1")), schedNode("x3", zone("")),
			},
			spec: schedSpread("node.labels.zone"), n: 6,
			wantZones: map[string]int{"a": 2, "b": 2, "": 2},
			wantNodes: map[string]int{"a1": 2, "b1": 2, "x1": 1, "x2": 1},
		},
		{
			name: "engine labels",
			nodes: []*NodeInfo{
				schedNode("a1", schedEngineLabels("dc", "east")), schedNode("a2", schedEngineLabels("dc", "east")),
				schedNode("b1", schedEngineLabels("dc", "west")),
			},
			spec: schedSpread("ENGINE.LABELS.dc"), n: 4,
			wantNodes: map[string]int{"a1": 1, "a2": 1, "b1": 2},
		},
		{
			name:  "constraints rule out a zone: the others share",
			nodes: nine,
			spec: func() *ServiceSpec {
				s := schedSpread("node.labels.zone")
				s.Placement.Constraints = []string{"node.labels.zone!=c"}
				return s
			}(),
			n: 6, wantZones: map[string]int{"a": 3, "b": 3},
		},
		{
			name: "a zone full of reservations: the rest go elsewhere",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a"), schedRes(4*schedCPU, schedGiB)),
				schedNode("b1", zone("b")), schedNode("b2", zone("b")),
			},
			spec: func() *ServiceSpec {
				s := schedSpread("node.labels.zone")
				s.Resources.Reservations.MemoryBytes = schedGiB
				return s
			}(),
			n: 6, wantZones: map[string]int{"a": 1, "b": 5},
		},
		{
			name: "nothing fits: pending with the reasons",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a"), schedRes(4*schedCPU, schedGiB)),
				schedNode("b1", zone("b"), schedRes(4*schedCPU, schedGiB)), schedNode("c1", zone("c"), schedState(NodeDown)),
			},
			spec: func() *ServiceSpec {
				s := schedSpread("node.labels.zone")
				s.Resources.Reservations.MemoryBytes = schedGiB
				return s
			}(),
			n: 3, want: []string{"a1", "b1", ""},
			wantReason: "no suitable node (insufficient memory on 2 nodes; 1 node not available)",
		},
		{
			name:  "max replicas per node",
			nodes: []*NodeInfo{schedNode("a1", zone("a")), schedNode("b1", zone("b")), schedNode("b2", zone("b"))},
			spec: func() *ServiceSpec {
				s := schedSpread("node.labels.zone")
				s.Placement.MaxReplicas = 1
				return s
			}(),
			n: 4, wantZones: map[string]int{"a": 1, "b": 2, "-": 1},
			wantReason: "no suitable node (max replicas per node reached on 3 nodes)",
		},
		{
			name:  "existing tasks count toward their zone",
			nodes: nine,
			occupying: []*Task{
				schedTask("svc", "a1", ServiceSpec{}), schedTask("svc", "a2", ServiceSpec{}),
				schedTask("svc", "a3", ServiceSpec{}), schedTask("svc", "b1", ServiceSpec{}),
			},
			spec: schedSpread("node.labels.zone"), n: 5,
			// 4 existing + 5 new = 3 per zone.
			wantZones: map[string]int{"b": 2, "c": 3},
		},
		{
			name: "tasks on unavailable nodes still count toward their zone",
			nodes: []*NodeInfo{
				schedNode("a1", zone("a"), schedAvail(AvailabilityPause)), schedNode("a2", zone("a")),
				schedNode("b1", zone("b")),
			},
			occupying: []*Task{schedTask("svc", "a1", ServiceSpec{}), schedTask("svc", "a1", ServiceSpec{})},
			spec:      schedSpread("node.labels.zone"), n: 2,
			want: []string{"b1", "b1"},
		},
		{
			name:  "other services' tasks do not count toward the share",
			nodes: []*NodeInfo{schedNode("a1", zone("a")), schedNode("b1", zone("b"))},
			occupying: []*Task{
				schedTask("other", "a1", ServiceSpec{}), schedTask("other", "a1", ServiceSpec{}),
			},
			spec: schedSpread("node.labels.zone"), n: 4,
			want: []string{"b1", "a1", "b1", "a1"},
		},
		{
			name:  "invalid preferences are ignored",
			nodes: []*NodeInfo{schedNode("a1", zone("a")), schedNode("b1", zone("b")), schedNode("b2", zone("b"))},
			spec:  schedSpread("node.hostname", "labels.zone"), n: 3,
			want: []string{"a1", "b1", "b2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScheduler(tt.nodes, tt.occupying)
			got, reason := s.place("svc", tt.spec, tt.n)
			require.Len(t, got, tt.n)
			if tt.want != nil {
				assert.Equal(t, tt.want, got)
			}
			if tt.wantZones != nil {
				assert.Equal(t, tt.wantZones, schedPerGroup(tt.nodes, got, "zone"))
			}
			if tt.wantNodes != nil {
				assert.Equal(t, tt.wantNodes, schedPerNode(got))
			}
			assert.Equal(t, tt.wantReason, reason)
		})
	}
}

// TestSchedulerSpreadIncremental checks that placing one task per call
// gives the same shares as placing them all at once (the orchestrator may
// place a service's tasks over several passes).
func TestSchedulerSpreadIncremental(t *testing.T) {
	var nodes []*NodeInfo
	for i := range 10 {
		z := fmt.Sprint("z", i%3)
		if i == 9 {
			z = "z0" // zone z0 has 4 nodes, z1 and z2 have 3
		}
		nodes = append(nodes, schedNode(fmt.Sprintf("n%02d", i), schedLabels("zone", z, "rack", fmt.Sprint(i%2))))
	}
	spec := schedSpread("node.labels.zone", "node.labels.rack")
	all := newScheduler(nodes, nil)
	batch, reason := all.place("svc", spec, 30)
	require.Empty(t, reason)
	one := newScheduler(nodes, nil)
	var single []string
	for range 30 {
		got, reason := one.place("svc", spec, 1)
		require.Empty(t, reason)
		single = append(single, got...)
	}
	assert.Equal(t, batch, single)
	assert.Equal(t, map[string]int{"z0": 10, "z1": 10, "z2": 10}, schedPerGroup(nodes, batch, "zone"))
}

// TestSchedulerSpreadDeterministic checks that input order does not change
// placements with preferences either.
func TestSchedulerSpreadDeterministic(t *testing.T) {
	run := func(seed uint64) []string {
		r := rand.New(rand.NewPCG(seed, 7))
		var nodes []*NodeInfo
		for i := range 40 {
			nodes = append(nodes, schedNode(fmt.Sprintf("node-%02d", i),
				schedLabels("zone", fmt.Sprint(i%3), "rack", fmt.Sprint(i%4)), schedRes(2*schedCPU, 2*schedGiB)))
		}
		var tasks []*Task
		for i := range 60 {
			tasks = append(tasks, schedTask(fmt.Sprintf("svc-%d", i%2), fmt.Sprintf("node-%02d", (i*7)%40),
				*schedReserve(schedCPU/4, 256*schedMiB)))
		}
		r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		r.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
		spec := schedSpread("node.labels.zone", "node.labels.rack")
		spec.Resources.Reservations = Resources{NanoCPUs: schedCPU / 2, MemoryBytes: 512 * schedMiB}
		got, _ := newScheduler(nodes, tasks).place("svc-0", spec, 150)
		return got
	}
	want := run(1)
	for seed := uint64(2); seed < 6; seed++ {
		assert.Equal(t, want, run(seed), "seed %d", seed)
	}
}

// TestValidatePreferences covers which spread descriptors are accepted.
func TestValidatePreferences(t *testing.T) {
	for _, ok := range []string{"node.labels.zone", "engine.labels.dc", "Node.Labels.Zone", "node.labels.a.b-c_d"} {
		assert.NoError(t, validatePreferences([]PlacementPreference{{Spread: ok}}), ok)
	}
	assert.NoError(t, validatePreferences(nil))
	for _, bad := range []string{"", "node.labels.", "engine.labels.", "node.hostname", "node.id", "zone",
		"spread=node.labels.zone", "node.labels.zone ", "node.labels.z=1", "labels.zone"} {
		err := validatePreferences([]PlacementPreference{{Spread: "node.labels.ok"}, {Spread: bad}})
		require.ErrorIs(t, err, ErrInvalidSpec, "%q", bad)
		assert.Contains(t, err.Error(), "placement preference 2", bad)
	}
}

// BenchmarkScheduler1kNodes10kTasksSpread places 10k tasks on 1000 empty
// nodes spread over a 3-valued zone label.
func BenchmarkScheduler1kNodes10kTasksSpread(b *testing.B) {
	schedBenchmarkSpread(b, 1000, 10_000, 0, "node.labels.zone3")
}

// BenchmarkScheduler1kNodes10kTasksSpreadNested places 10k tasks on 1000
// nodes that already host 10k tasks, spread over zone (3 values) then rack
// (20 values).
func BenchmarkScheduler1kNodes10kTasksSpreadNested(b *testing.B) {
	schedBenchmarkSpread(b, 1000, 10_000, 10_000, "node.labels.zone3", "node.labels.rack")
}

// schedBenchmarkSpread is schedBenchmark with every service spreading over
// the given labels (zone3 has 3 values).
func schedBenchmarkSpread(b *testing.B, nodeCount, tasks, existing int, labels ...string) {
	nodes := schedBenchNodes(nodeCount)
	for i, n := range nodes {
		n.Labels["zone3"] = fmt.Sprintf("zone-%d", i%3)
	}
	var prefs []PlacementPreference
	for _, l := range labels {
		prefs = append(prefs, PlacementPreference{Spread: l})
	}
	schedBenchmarkWith(b, nodes, tasks, existing, func(spec *ServiceSpec) { spec.Placement.Preferences = prefs })
}
