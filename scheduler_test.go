package swarm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Units for the scheduler tests' resources.
const (
	schedGiB = int64(1) << 30
	schedMiB = int64(1) << 20
	schedCPU = int64(1e9)
)

// schedNode returns a ready, active worker with 4 CPUs and 4 GiB, changed by
// the optional edits.
func schedNode(id string, edits ...func(*NodeInfo)) *NodeInfo {
	n := &NodeInfo{
		ID: id, Hostname: "host-" + id, Addr: "10.0.0.1:2377",
		Role: RoleWorker, Availability: AvailabilityActive, State: NodeReady,
		Resources: Resources{NanoCPUs: 4 * schedCPU, MemoryBytes: 4 * schedGiB},
		Platform:  Platform{OS: "linux", Arch: "amd64"},
	}
	for _, e := range edits {
		e(n)
	}
	return n
}

// schedState sets a schedNode's state.
func schedState(s NodeState) func(*NodeInfo) { return func(n *NodeInfo) { n.State = s } }

// schedAvail sets a schedNode's availability.
func schedAvail(a Availability) func(*NodeInfo) { return func(n *NodeInfo) { n.Availability = a } }

// schedLabels sets a schedNode's labels from key, value pairs.
func schedLabels(kv ...string) func(*NodeInfo) {
	return func(n *NodeInfo) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

// schedRes sets a schedNode's resources.
func schedRes(nanoCPUs, mem int64) func(*NodeInfo) {
	return func(n *NodeInfo) { n.Resources = Resources{NanoCPUs: nanoCPUs, MemoryBytes: mem} }
}

// schedTask is an occupying task of service svc on node.
func schedTask(svc, node string, spec ServiceSpec) *Task {
	return &Task{ID: svc + "-" + node, ServiceID: svc, NodeID: node, Spec: spec,
		DesiredState: TaskRunning, Status: TaskStatus{State: TaskRunning}}
}

// reserve returns a spec reserving the given CPU and memory.
func schedReserve(nanoCPUs, mem int64) *ServiceSpec {
	return &ServiceSpec{Name: "s", Image: "img",
		Resources: ResourceRequirements{Reservations: Resources{NanoCPUs: nanoCPUs, MemoryBytes: mem}}}
}

// perNode counts placements per node ID.
func schedPerNode(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}

// TestSchedulerPlace covers place's filters, ranking and failure reasons.
func TestSchedulerPlace(t *testing.T) {
	three := func() []*NodeInfo { return []*NodeInfo{schedNode("n3"), schedNode("n1"), schedNode("n2")} }
	tests := []struct {
		name       string
		nodes      []*NodeInfo
		occupying  []*Task
		spec       *ServiceSpec
		n          int
		want       []string
		wantReason string
	}{
		{
			name: "spread 6 over 3", nodes: three(), spec: &ServiceSpec{}, n: 6,
			want: []string{"n1", "n2", "n3", "n1", "n2", "n3"},
		},
		{
			name:  "fewest of the service first, then fewest in total",
			nodes: three(),
			occupying: []*Task{
				schedTask("svc", "n1", ServiceSpec{}),
				schedTask("other", "n2", ServiceSpec{}), schedTask("other2", "n2", ServiceSpec{}),
				schedTask("other", "n2", ServiceSpec{}), schedTask("other", "n3", ServiceSpec{}),
			},
			// n1 (svc 1, total 1), n2 (0, 3), n3 (0, 1)
			spec: &ServiceSpec{}, n: 4,
			want: []string{"n3", "n2", "n1", "n3"},
		},
		{
			name: "unavailable nodes skipped",
			nodes: []*NodeInfo{
				schedNode("a", schedAvail(AvailabilityDrain)), schedNode("b", schedAvail(AvailabilityPause)),
				schedNode("c", schedState(NodeDown)), schedNode("d", schedState(NodeDisconnected)),
				schedNode("e", schedState(NodeUnknown)), schedNode("f"),
			},
			spec: &ServiceSpec{}, n: 2, want: []string{"f", "f"},
		},
		{
			name: "all unavailable",
			nodes: []*NodeInfo{
				schedNode("a", schedAvail(AvailabilityDrain)), schedNode("b", schedState(NodeDown)),
				schedNode("c", schedAvail("")),
			},
			spec: &ServiceSpec{}, n: 2, want: []string{"", ""},
			wantReason: "no suitable node (3 nodes not available)",
		},
		{
			name:  "one unavailable node",
			nodes: []*NodeInfo{schedNode("a", schedState(NodeDown))},
			spec:  &ServiceSpec{}, n: 1, want: []string{""},
			wantReason: "no suitable node (1 node not available)",
		},
		{
			name: "no nodes", spec: &ServiceSpec{}, n: 1, want: []string{""},
			wantReason: "no suitable node",
		},
		{
			name: "constraints",
			nodes: []*NodeInfo{
				schedNode("a", schedLabels("zone", "east")), schedNode("b", schedLabels("zone", "west")),
				schedNode("c", schedLabels("zone", "EAST")), schedNode("d"),
			},
			spec: &ServiceSpec{Placement: Placement{Constraints: []string{"node.labels.zone==east"}}},
			n:    3, want: []string{"a", "c", "a"},
		},
		{
			name:  "constraints hold nowhere",
			nodes: []*NodeInfo{schedNode("a"), schedNode("b", schedState(NodeDown)), schedNode("c")},
			spec:  &ServiceSpec{Placement: Placement{Constraints: []string{"node.role==manager"}}},
			n:     1, want: []string{""},
			wantReason: "no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available)",
		},
		{
			name:  "invalid constraints",
			nodes: three(),
			spec:  &ServiceSpec{Placement: Placement{Constraints: []string{"node.foo==x"}}},
			n:     2, want: []string{"", ""},
			wantReason: `invalid constraints: invalid constraint "node.foo==x": unknown key "node.foo"`,
		},
		{
			name:      "max replicas per node",
			nodes:     []*NodeInfo{schedNode("a"), schedNode("b")},
			occupying: []*Task{schedTask("svc", "a", ServiceSpec{})},
			spec:      &ServiceSpec{Placement: Placement{MaxReplicas: 2}},
			n:         4, want: []string{"b", "a", "b", ""},
			wantReason: "no suitable node (max replicas per node reached on 2 nodes)",
		},
		{
			name: "memory fits nowhere",
			nodes: []*NodeInfo{
				schedNode("a", schedRes(4*schedCPU, schedGiB)), schedNode("b", schedRes(4*schedCPU, schedGiB)),
				schedNode("c", schedRes(4*schedCPU, schedGiB)), schedNode("d", schedState(NodeDown)),
			},
			spec: schedReserve(0, 2*schedGiB), n: 1, want: []string{""},
			wantReason: "no suitable node (insufficient memory on 3 nodes; 1 node not available)",
		},
		{
			name:  "memory fills up",
			nodes: []*NodeInfo{schedNode("a", schedRes(0, schedGiB)), schedNode("b", schedRes(0, schedGiB+512*schedMiB))},
			spec:  schedReserve(0, 512*schedMiB), n: 6,
			want:       []string{"a", "b", "a", "b", "b", ""},
			wantReason: "no suitable node (insufficient memory on 2 nodes)",
		},
		{
			name:  "cpu fills up",
			nodes: []*NodeInfo{schedNode("a", schedRes(schedCPU, 0)), schedNode("b", schedRes(schedCPU/2, 0))},
			spec:  schedReserve(schedCPU/2, 0), n: 4,
			want:       []string{"a", "b", "a", ""},
			wantReason: "no suitable node (insufficient cpu on 2 nodes)",
		},
		{
			name:  "cpu is checked before memory",
			nodes: []*NodeInfo{schedNode("a", schedRes(schedCPU, schedGiB))},
			spec:  schedReserve(2*schedCPU, 2*schedGiB), n: 1, want: []string{""},
			wantReason: "no suitable node (insufficient cpu on 1 node)",
		},
		{
			name:  "existing reservations count",
			nodes: []*NodeInfo{schedNode("a", schedRes(4*schedCPU, 2*schedGiB)), schedNode("b", schedRes(4*schedCPU, 2*schedGiB))},
			occupying: []*Task{
				schedTask("other", "a", *schedReserve(0, 2*schedGiB)),
				schedTask("other", "b", *schedReserve(0, schedGiB)),
				schedTask("gone", "removed-node", *schedReserve(0, 2*schedGiB)), // ignored
			},
			spec: schedReserve(0, schedGiB), n: 2, want: []string{"b", ""},
			wantReason: "no suitable node (insufficient memory on 2 nodes)",
		},
		{
			name:  "zero reservation fits a node without resources",
			nodes: []*NodeInfo{schedNode("a", schedRes(0, 0))},
			spec:  schedReserve(0, 0), n: 2, want: []string{"a", "a"},
		},
		{
			name: "reason ties in filter order, most nodes first",
			nodes: []*NodeInfo{
				schedNode("a", schedRes(0, 0)), schedNode("b", schedState(NodeDown)),
				schedNode("c", schedLabels("x", "y")), schedNode("d", schedLabels("x", "y"), schedRes(0, 0)),
			},
			spec: &ServiceSpec{
				Placement: Placement{Constraints: []string{"node.labels.x!=y"}},
				Resources: ResourceRequirements{Reservations: Resources{MemoryBytes: 1}},
			},
			n: 1, want: []string{""},
			wantReason: "no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available; insufficient memory on 1 node)",
		},
		{
			name:  "host-mode ports",
			nodes: []*NodeInfo{schedNode("a"), schedNode("b"), schedNode("c")},
			occupying: []*Task{schedTask("other", "c", ServiceSpec{Ports: []PortConfig{
				{PublishMode: PublishHost, PublishedPort: 80, TargetPort: 8080}}})},
			spec: &ServiceSpec{Ports: []PortConfig{
				{Protocol: "TCP", PublishMode: PublishHost, PublishedPort: 80, TargetPort: 80},
				{PublishMode: PublishIngress, PublishedPort: 81, TargetPort: 81},
			}},
			n: 3, want: []string{"a", "b", ""},
			wantReason: "no suitable node (host-mode port already in use on 3 nodes)",
		},
		{
			name:  "host-mode ports differ by protocol",
			nodes: []*NodeInfo{schedNode("a")},
			occupying: []*Task{schedTask("other", "a", ServiceSpec{Ports: []PortConfig{
				{PublishMode: PublishHost, PublishedPort: 53}}})},
			spec: &ServiceSpec{Ports: []PortConfig{{Protocol: "udp", PublishMode: PublishHost, PublishedPort: 53}}},
			n:    1, want: []string{"a"},
		},
		{
			name:  "nil spec",
			nodes: three(), spec: nil, n: 2, want: []string{"n1", "n2"},
		},
		{
			name: "duplicate node IDs count once",
			// The first "a" (down) wins; b is ruled out by a constraint.
			nodes: []*NodeInfo{schedNode("a", schedState(NodeDown)), schedNode("a"), schedNode("b")},
			spec:  &ServiceSpec{Placement: Placement{Constraints: []string{"node.id!=b"}}},
			n:     1, want: []string{""},
			wantReason: "no suitable node (1 node not available; scheduling constraints not satisfied on 1 node)",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScheduler(tt.nodes, tt.occupying)
			got, reason := s.place("svc", tt.spec, tt.n)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantReason, reason)
		})
	}
}

// TestSchedulerPlaceZero checks that placing no tasks places nothing.
func TestSchedulerPlaceZero(t *testing.T) {
	s := newScheduler([]*NodeInfo{schedNode("a")}, nil)
	got, reason := s.place("svc", &ServiceSpec{}, 0)
	assert.Empty(t, got)
	assert.Empty(t, reason)
	got, reason = s.place("svc", &ServiceSpec{}, -1)
	assert.Empty(t, got)
	assert.Empty(t, reason)
}

// TestSchedulerCountsUpdateWithinPass checks that each placement is seen by
// the later ones of the same pass.
func TestSchedulerCountsUpdateWithinPass(t *testing.T) {
	s := newScheduler([]*NodeInfo{schedNode("a"), schedNode("b"), schedNode("c")}, nil)

	got, reason := s.place("web", &ServiceSpec{}, 2)
	require.Empty(t, reason)
	assert.Equal(t, []string{"a", "b"}, got)

	// Another service sees the totals: c is empty.
	got, _ = s.place("db", &ServiceSpec{}, 1)
	assert.Equal(t, []string{"c"}, got)

	// The same service again sees its own counts: c has none of web.
	got, _ = s.place("web", &ServiceSpec{}, 2)
	assert.Equal(t, []string{"c", "a"}, got)

	// Reservations accumulate across calls.
	got, reason = s.place("big", schedReserve(0, 3*schedGiB), 4)
	assert.Equal(t, []string{"b", "a", "c", ""}, got)
	assert.Equal(t, "no suitable node (insufficient memory on 3 nodes)", reason)
	got, reason = s.place("small", schedReserve(0, schedGiB), 3)
	assert.Equal(t, []string{"b", "a", "c"}, got)
	assert.Empty(t, reason)
	got, reason = s.place("small", schedReserve(0, 1), 1)
	assert.Equal(t, []string{""}, got)
	assert.Equal(t, "no suitable node (insufficient memory on 3 nodes)", reason)

	// Max replicas counts tasks placed earlier in the pass.
	got, reason = s.place("web", &ServiceSpec{Placement: Placement{MaxReplicas: 2}}, 3)
	assert.Equal(t, []string{"b", "c", ""}, got)
	assert.Equal(t, "no suitable node (max replicas per node reached on 3 nodes)", reason)
}

// TestSchedulerPlaceOn covers placing global tasks on a given node.
func TestSchedulerPlaceOn(t *testing.T) {
	nodes := []*NodeInfo{
		schedNode("a", schedLabels("gpu", "yes")),
		schedNode("b", schedAvail(AvailabilityDrain)),
		schedNode("c", schedRes(schedCPU, schedGiB)),
		schedNode("d"),
	}
	s := newScheduler(nodes, []*Task{schedTask("g", "d", ServiceSpec{})})
	spec := schedReserve(schedCPU/2, 512*schedMiB)

	tests := []struct {
		node, reason string
		spec         *ServiceSpec
	}{
		{"a", "", spec},
		{"a", "", spec}, // placeOn itself has no per-node cap...
		{"b", "no suitable node (1 node not available)", spec},
		{"missing", "no suitable node (1 node not available)", spec},
		{"c", "", spec},
		{"c", "", spec},
		{"c", "no suitable node (insufficient cpu on 1 node)", spec},
		{"d", "no suitable node (max replicas per node reached on 1 node)",
			&ServiceSpec{Placement: Placement{MaxReplicas: 1}}},
		{"d", "no suitable node (scheduling constraints not satisfied on 1 node)",
			&ServiceSpec{Placement: Placement{Constraints: []string{"node.labels.gpu==yes"}}}},
		{"a", `invalid constraints: invalid constraint "bad": missing operator (want "==" or "!=")`,
			&ServiceSpec{Placement: Placement{Constraints: []string{"bad"}}}},
	}
	for i, tt := range tests {
		ok, reason := s.placeOn(tt.node, "g", tt.spec)
		assert.Equal(t, tt.reason == "", ok, "case %d", i)
		assert.Equal(t, tt.reason, reason, "case %d", i)
	}
	// ...but MaxReplicas does: a already has two tasks of g.
	ok, reason := s.placeOn("a", "g", &ServiceSpec{Placement: Placement{MaxReplicas: 2}})
	assert.False(t, ok)
	assert.Equal(t, "no suitable node (max replicas per node reached on 1 node)", reason)

	// Tasks placed with placeOn count for place: d has 1 task, a and c 2.
	got, _ := s.place("g", &ServiceSpec{}, 1)
	assert.Equal(t, []string{"d"}, got)
}

// TestSchedulerEligible checks which nodes want a global task, resources aside.
func TestSchedulerEligible(t *testing.T) {
	nodes := []*NodeInfo{
		schedNode("a", schedLabels("zone", "east")),
		schedNode("b", schedAvail(AvailabilityPause)),
		schedNode("c", schedState(NodeDown)),
		schedNode("d", schedRes(0, 0)),
		schedNode("e", schedLabels("zone", "west")),
	}
	s := newScheduler(nodes, nil)
	big := schedReserve(64*schedCPU, 64*schedGiB)
	east := &ServiceSpec{Placement: Placement{Constraints: []string{"node.labels.zone==east"}}}
	bad := &ServiceSpec{Placement: Placement{Constraints: []string{"node.labels.zone=east"}}}
	tests := []struct {
		node string
		spec *ServiceSpec
		want bool
	}{
		{"a", big, true},
		{"b", big, false},
		{"c", big, false},
		{"d", big, true}, // resources are not checked
		{"missing", big, false},
		{"a", east, true},
		{"e", east, false},
		{"d", east, false},
		{"a", bad, false},
		{"a", nil, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, s.eligible(tt.node, tt.spec), "%s %v", tt.node, tt.spec)
	}
	ok, reason := s.placeOn("d", "g", big)
	assert.False(t, ok)
	assert.Equal(t, "no suitable node (insufficient cpu on 1 node)", reason)
}

// TestSchedulerConstraintCacheSeesChanges checks that the parse cache is
// not fooled by a caller that reuses its constraint slice.
func TestSchedulerConstraintCacheSeesChanges(t *testing.T) {
	s := newScheduler([]*NodeInfo{schedNode("a", schedLabels("z", "1")), schedNode("b", schedLabels("z", "2"))}, nil)
	exprs := []string{"node.labels.z==1"}
	spec := &ServiceSpec{Placement: Placement{Constraints: exprs}}
	assert.True(t, s.eligible("a", spec))
	assert.False(t, s.eligible("b", spec))
	exprs[0] = "node.labels.z==2" // the caller reuses its slice
	assert.False(t, s.eligible("a", spec))
	assert.True(t, s.eligible("b", spec))
}

// TestSchedulerDeterministic checks that input order does not change placements.
func TestSchedulerDeterministic(t *testing.T) {
	build := func(seed uint64) ([]*NodeInfo, []*Task) {
		r := rand.New(rand.NewPCG(seed, 1))
		var nodes []*NodeInfo
		for i := range 50 {
			nodes = append(nodes, schedNode(fmt.Sprintf("node-%02d", i),
				schedLabels("zone", fmt.Sprint(i%3)), schedRes(8*schedCPU, 8*schedGiB)))
		}
		var tasks []*Task
		for i := range 200 {
			tasks = append(tasks, schedTask(fmt.Sprintf("svc-%d", i%7), fmt.Sprintf("node-%02d", (i*13)%50),
				*schedReserve(schedCPU/10, 64*schedMiB)))
		}
		r.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		r.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
		return nodes, tasks
	}
	run := func(seed uint64) [][]string {
		nodes, tasks := build(seed)
		s := newScheduler(nodes, tasks)
		var out [][]string
		for i := range 7 {
			spec := schedReserve(schedCPU/4, 256*schedMiB)
			if i == 3 {
				spec.Placement.Constraints = []string{"node.labels.zone!=1"}
			}
			got, _ := s.place(fmt.Sprintf("svc-%d", i), spec, 60)
			out = append(out, got)
		}
		return out
	}
	want := run(1)
	for seed := uint64(2); seed < 6; seed++ {
		assert.Equal(t, want, run(seed), "seed %d", seed)
	}
	// Spread: with under 100 tasks of an unconstrained service in all, no
	// node gets more than 2 of the 60 new ones.
	for i, got := range want {
		if i == 3 {
			continue
		}
		for id, c := range schedPerNode(got) {
			assert.LessOrEqual(t, c, 2, id)
		}
	}
}

// schedBenchNodes builds n ready nodes with 16 CPUs, 64 GiB and a few labels.
func schedBenchNodes(n int) []*NodeInfo {
	nodes := make([]*NodeInfo, n)
	for i := range nodes {
		role := RoleWorker
		if i < 3 {
			role = RoleManager
		}
		nodes[i] = &NodeInfo{
			ID: fmt.Sprintf("node%05d", i), Hostname: fmt.Sprintf("host-%d", i),
			Addr: fmt.Sprintf("10.0.%d.%d:2377", i/256, i%256),
			Role: role, Availability: AvailabilityActive, State: NodeReady,
			Labels:       map[string]string{"zone": fmt.Sprintf("zone-%d", i%4), "rack": fmt.Sprint(i % 20), "ssd": "true"},
			EngineLabels: map[string]string{"os": "linux"},
			Resources:    Resources{NanoCPUs: 16 * schedCPU, MemoryBytes: 64 * schedGiB},
			Platform:     Platform{OS: "linux", Arch: "amd64"},
		}
	}
	return nodes
}

// schedBenchSpecs returns the specs of the benchmark's services: small
// reservations, one with a constraint (a quarter of the nodes match).
func schedBenchSpecs(services int) []*ServiceSpec {
	specs := make([]*ServiceSpec, services)
	for i := range specs {
		specs[i] = schedReserve(schedCPU/100, 16*schedMiB)
	}
	specs[0].Placement.Constraints = []string{"node.labels.zone==zone-1", "node.role!=manager"}
	return specs
}

// schedBenchmark times newScheduler plus placing tasks new tasks of 10
// services (one place call per service) on nodes that host existing tasks.
func schedBenchmark(b *testing.B, nodeCount, tasks, existing int) {
	schedBenchmarkWith(b, schedBenchNodes(nodeCount), tasks, existing, nil)
}

// schedBenchmarkWith is schedBenchmark on the given nodes, with edit (if
// set) applied to every service's spec.
func schedBenchmarkWith(b *testing.B, nodes []*NodeInfo, tasks, existing int, edit func(*ServiceSpec)) {
	const services = 10
	nodeCount := len(nodes)
	specs := schedBenchSpecs(services)
	if edit != nil {
		for _, spec := range specs {
			edit(spec)
		}
	}
	ids := make([]string, services)
	for i := range ids {
		ids[i] = fmt.Sprintf("service%02d", i)
	}
	occupying := make([]*Task, existing)
	for i := range occupying {
		svc := i % (2 * services) // half of them of services not placed here
		occupying[i] = schedTask(fmt.Sprintf("service%02d", svc), nodes[(i*7)%nodeCount].ID, *schedReserve(schedCPU/100, 16*schedMiB))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s := newScheduler(nodes, occupying)
		for i, id := range ids {
			got, reason := s.place(id, specs[i], tasks/services)
			if reason != "" || got[len(got)-1] == "" {
				b.Fatalf("service %s: %s", id, reason)
			}
		}
	}
	b.ReportMetric(float64(tasks)*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkScheduler1kNodes10kTasks places 10k tasks on 1000 empty nodes.
func BenchmarkScheduler1kNodes10kTasks(b *testing.B) { schedBenchmark(b, 1000, 10_000, 0) }

// BenchmarkScheduler1kNodes100kTasks places 100k tasks on 1000 empty nodes.
func BenchmarkScheduler1kNodes100kTasks(b *testing.B) { schedBenchmark(b, 1000, 100_000, 0) }

// BenchmarkScheduler1kNodes10kTasksExisting places 10k tasks on 1000 nodes
// that already host 10k tasks.
func BenchmarkScheduler1kNodes10kTasksExisting(b *testing.B) {
	schedBenchmark(b, 1000, 10_000, 10_000)
}
