package swarm

import (
	"slices"
	"strconv"
	"strings"
)

// failReason is why a node cannot take a task. The values are in filter
// order, which also breaks ties when explaining a failed placement.
type failReason int

// Filter failures, in the order the filters run.
const (
	failNone         failReason = iota - 1 // the node passes
	failNotAvailable                       // not ready, availability not active, or no runtime
	failConstraints                        // a placement constraint does not hold
	failMaxReplicas                        // Placement.MaxReplicas tasks already there
	failCPU                                // CPU reservation does not fit
	failMemory                             // memory reservation does not fit
	failHostPort                           // a host-mode published port is taken
	numFailReasons
)

// failCounts counts, per reason, the nodes that failed a placement.
type failCounts [numFailReasons]int

// schedPort is a port published in host mode on a node; two tasks cannot
// publish the same one on the same node.
type schedPort struct {
	proto string // "tcp", "udp", "sctp"
	port  uint32
}

// scheduler is the placement view of one scheduling pass.
//
// It is pure and deterministic: no goroutines, clocks or randomness, and the
// same nodes, tasks and calls give the same placements whatever the order of
// the input slices. It is not safe for concurrent use. Nodes are read through
// the pointers passed to newScheduler and must not change during the pass.
//
// Per-node state lives in slices indexed by the node's position in nodes
// (sorted by ID, so the index doubles as the ID tie-break of the ranking);
// per-service task counts are dense []int32 built the first time a service is
// placed, from the node indices of its occupying tasks (occ), so a pass over
// many services with few tasks each does not allocate services × nodes.
type scheduler struct {
	nodes []*NodeInfo      // sorted by ID, no duplicates
	index map[string]int32 // node ID -> position in nodes
	total []int32          // tasks on the node, all services
	cpu   []int64          // NanoCPUs reserved on the node
	mem   []int64          // MemoryBytes reserved on the node
	ports []map[schedPort]struct{}

	counts map[string][]int32 // service ID -> tasks of the service per node
	occ    map[string][]int32 // service ID -> node index of each occupying task, until counts is built

	heap []int32 // scratch for place, reused across calls

	// failures holds, per service, its recent failed tasks per node (see
	// noteFailures); placing is the entry of the service place is placing,
	// which the ranking reads.
	failures map[string][]int32
	placing  []int32

	// One-entry cache of the last parsed constraints: a global service asks
	// eligible/placeOn once per node with the same expressions.
	lastExprs []string
	lastCons  []constraint
	lastErr   error
}

// newScheduler builds the view: nodes (all known nodes) and the tasks that occupy capacity
// (callers pass non-terminal tasks with NodeID set; each counts toward its service's count on
// the node, the node's total, and its Spec.Resources.Reservations against the node's Resources).
//
// Nil nodes and tasks, tasks without a NodeID and tasks on unknown nodes are
// ignored; of several nodes with the same ID the first one counts.
func newScheduler(nodes []*NodeInfo, occupying []*Task) *scheduler {
	sorted := make([]*NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		if n != nil {
			sorted = append(sorted, n)
		}
	}
	slices.SortStableFunc(sorted, func(a, b *NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	sorted = slices.CompactFunc(sorted, func(a, b *NodeInfo) bool { return a.ID == b.ID })

	s := &scheduler{
		nodes:  sorted,
		index:  make(map[string]int32, len(sorted)),
		total:  make([]int32, len(sorted)),
		cpu:    make([]int64, len(sorted)),
		mem:    make([]int64, len(sorted)),
		ports:  make([]map[schedPort]struct{}, len(sorted)),
		counts: make(map[string][]int32),
		occ:    make(map[string][]int32),
	}
	for i, n := range sorted {
		s.index[n.ID] = int32(i)
	}
	for _, t := range occupying {
		if t == nil || t.NodeID == "" {
			continue
		}
		i, ok := s.index[t.NodeID]
		if !ok {
			continue
		}
		s.occ[t.ServiceID] = append(s.occ[t.ServiceID], i)
		s.take(i, newPlacementRequest(&t.Spec))
	}
	return s
}

// place chooses nodes for n new tasks of one service (all with the same spec). It returns one
// node ID per task in order ("" for a task that fits nowhere) and, when any task is unplaced, a
// reason like "no suitable node (insufficient memory on 3 nodes; 1 node not available)". Each
// placement updates the view, so later calls in the same pass see it.
//
// Nodes are filtered once (readiness, availability, constraints), then the
// ones that fit go into a min-heap keyed by (tasks of the service, tasks in
// total, node ID); each task goes to the top node, whose key is then fixed in
// place or, when the node no longer fits, removed. A pass costs O(nodes +
// n log nodes). Call it once per service with all its new tasks rather than
// once per task: each call filters every node.
//
// With placement preferences the nodes are first grouped by the values of
// the preference labels (see placeSpread).
func (s *scheduler) place(serviceID string, spec *ServiceSpec, n int) ([]string, string) {
	if n <= 0 {
		return []string{}, ""
	}
	out := make([]string, n)
	cons, err := s.constraints(spec)
	if err != nil {
		return out, invalidConstraintsReason(err)
	}
	req := newPlacementRequest(spec)
	svc := s.serviceCounts(serviceID)
	s.placing = s.recentFailures(serviceID)
	defer func() { s.placing = nil }()

	var fails failCounts
	h := s.heap[:0]
	for i := range s.nodes {
		i := int32(i)
		if r := s.static(i, cons); r != failNone {
			fails[r]++
			continue
		}
		if r := s.capacity(i, svc, req); r != failNone {
			fails[r]++
			continue
		}
		h = append(h, i)
	}
	var placed int
	if keys := spreadKeys(spec); len(keys) > 0 {
		placed = s.placeSpread(h, keys, svc, req, out, &fails)
	} else {
		placed = s.placeRanked(h, svc, req, out, &fails)
	}
	s.heap = h[:0]
	if placed == n {
		return out, ""
	}
	return out, fails.explain()
}

// placeRanked fills out with the best-ranked of the fitting nodes h (in
// node order), one task at a time, and returns how many it placed. h is
// used as the heap.
func (s *scheduler) placeRanked(h []int32, svc []int32, req placementRequest, out []string, fails *failCounts) int {
	for j := len(h)/2 - 1; j >= 0; j-- {
		s.down(h, j, svc)
	}
	placed := 0
	for placed < len(out) && len(h) > 0 {
		i := h[0]
		s.take(i, req)
		svc[i]++
		out[placed] = s.nodes[i].ID
		placed++
		if r := s.capacity(i, svc, req); r != failNone {
			fails[r]++
			last := len(h) - 1
			h[0] = h[last]
			h = h[:last]
		}
		// Only the root's key changed (it grew), so sifting it down restores
		// the heap.
		if len(h) > 1 {
			s.down(h, 0, svc)
		}
	}
	return placed
}

// spreadGroup is one node of placeSpread's decision tree: the nodes that
// share the values of the first k preference labels (the root, k = 0, holds
// every node; the leaves, k = len(keys), the nodes with the same values of
// every label).
type spreadGroup struct {
	parent int32 // index in the group slice; -1 for the root
	leaf   bool
	// count is the tasks of the service on the group's nodes, fitting or
	// not: tasks already running in a group count toward its share.
	count int32
	// heap is a min-heap of the leaf's fitting nodes (node indices), or of
	// the inner group's children that still have a fitting node (group
	// indices).
	heap []int32
	// best is the node the group would take its next task on (the top
	// of its top child, down to a leaf), -1 once no node fits.
	best int32
}

// spreadGroupKey names a group by its parent and its label value.
type spreadGroupKey struct {
	parent int32
	value  string
}

// placeSpread places like placeRanked but over a tree of groups, SwarmKit's
// spread preferences: each task goes down the tree, at every level into the
// child group with the fewest tasks of the service (ties to the group whose
// next node ranks best), and then to its leaf's best-ranked node. Groups
// thus fill evenly over each label's values, nested in order, and a group
// whose nodes are full or filtered out leaves the others to share the rest
// (best effort). h holds the fitting nodes in node order.
//
// Placing a task changes only the keys on its path, which it always takes
// through the heaps' roots, and only upward; each placement costs
// O(depth * log(branching)) after an O(nodes * depth) build.
func (s *scheduler) placeSpread(h []int32, keys []spreadKey, svc []int32, req placementRequest, out []string, fails *failCounts) int {
	groups := []spreadGroup{{parent: -1}}
	index := make(map[spreadGroupKey]int32)
	j := 0 // next fitting node in h, which is in node order
	for i := range s.nodes {
		i := int32(i)
		fits := j < len(h) && h[j] == i
		if fits {
			j++
		}
		c := svc[i]
		if !fits && c == 0 {
			continue // adds nothing to any group
		}
		g := int32(0)
		groups[0].count += c
		for level, k := range keys {
			key := spreadGroupKey{parent: g, value: k.value(s.nodes[i])}
			child, ok := index[key]
			if !ok {
				child = int32(len(groups))
				groups = append(groups, spreadGroup{parent: g, leaf: level == len(keys)-1})
				index[key] = child
			}
			g = child
			groups[g].count += c
		}
		if fits {
			groups[g].heap = append(groups[g].heap, i)
		}
	}
	// A parent comes before its children in groups, so a backward sweep
	// builds every group's heap after its children's.
	for g := int32(len(groups)) - 1; g >= 0; g-- {
		gr := &groups[g]
		for k := len(gr.heap)/2 - 1; k >= 0; k-- {
			s.downGroup(groups, gr, k, svc)
		}
		s.setBest(groups, gr)
		if gr.best >= 0 && gr.parent >= 0 {
			p := &groups[gr.parent]
			p.heap = append(p.heap, g)
		}
	}

	placed := 0
	for placed < len(out) && groups[0].best >= 0 {
		g := int32(0)
		for !groups[g].leaf {
			g = groups[g].heap[0]
		}
		i := groups[g].best
		s.take(i, req)
		svc[i]++
		out[placed] = s.nodes[i].ID
		placed++
		for x := g; x >= 0; x = groups[x].parent {
			groups[x].count++
		}
		leaf := &groups[g]
		if r := s.capacity(i, svc, req); r != failNone {
			fails[r]++
			last := len(leaf.heap) - 1
			leaf.heap[0] = leaf.heap[last]
			leaf.heap = leaf.heap[:last]
		}
		if len(leaf.heap) > 1 {
			s.downGroup(groups, leaf, 0, svc)
		}
		// Back up the path: each group on it is its parent's heap root.
		for x := g; ; {
			gr := &groups[x]
			s.setBest(groups, gr)
			if gr.parent < 0 {
				break
			}
			p := &groups[gr.parent]
			if gr.best < 0 {
				last := len(p.heap) - 1
				p.heap[0] = p.heap[last]
				p.heap = p.heap[:last]
			}
			if len(p.heap) > 1 {
				s.downGroup(groups, p, 0, svc)
			}
			x = gr.parent
		}
	}
	return placed
}

// setBest recomputes a group's best node from its heap's root.
func (s *scheduler) setBest(groups []spreadGroup, gr *spreadGroup) {
	switch {
	case len(gr.heap) == 0:
		gr.best = -1
	case gr.leaf:
		gr.best = gr.heap[0]
	default:
		gr.best = groups[gr.heap[0]].best
	}
}

// downGroup sifts gr.heap[j] down: a leaf's heap by the node ranking, an
// inner group's by (tasks of the service in the child, the ranking of the
// child's best node).
func (s *scheduler) downGroup(groups []spreadGroup, gr *spreadGroup, j int, svc []int32) {
	if gr.leaf {
		s.down(gr.heap, j, svc)
		return
	}
	h := gr.heap
	less := func(a, b int32) bool {
		ga, gb := &groups[a], &groups[b]
		if ga.count != gb.count {
			return ga.count < gb.count
		}
		return s.less(ga.best, gb.best, svc)
	}
	for {
		l := 2*j + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[j]) {
			return
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
}

// placeOn places one task of a service on the given node (global services) if the node passes
// every filter; otherwise returns false and the reason (same wording). An
// unknown node counts as not available.
func (s *scheduler) placeOn(nodeID, serviceID string, spec *ServiceSpec) (bool, string) {
	var fails failCounts
	i, ok := s.index[nodeID]
	if !ok {
		fails[failNotAvailable]++
		return false, fails.explain()
	}
	cons, err := s.constraints(spec)
	if err != nil {
		return false, invalidConstraintsReason(err)
	}
	if r := s.static(i, cons); r != failNone {
		fails[r]++
		return false, fails.explain()
	}
	req := newPlacementRequest(spec)
	svc := s.serviceCounts(serviceID)
	if r := s.capacity(i, svc, req); r != failNone {
		fails[r]++
		return false, fails.explain()
	}
	s.take(i, req)
	svc[i]++
	return true, ""
}

// eligible reports whether the node passes the filters that decide whether a global service
// wants a task there at all: node ready, availability active, constraints hold (resources NOT
// checked here — a global task whose reservations do not fit stays pending).
// An unknown node or invalid constraints make no node eligible.
func (s *scheduler) eligible(nodeID string, spec *ServiceSpec) bool {
	i, ok := s.index[nodeID]
	if !ok {
		return false
	}
	cons, err := s.constraints(spec)
	if err != nil {
		return false
	}
	return s.static(i, cons) == failNone
}

// placementRequest is what one task of a service asks of a node.
type placementRequest struct {
	cpu, mem    int64 // reservations; <= 0 always fits
	maxReplicas uint64
	ports       []schedPort // host-mode published ports with a fixed number
}

// newPlacementRequest extracts the scheduling-relevant parts of a spec; a
// nil spec asks for nothing.
func newPlacementRequest(spec *ServiceSpec) placementRequest {
	if spec == nil {
		return placementRequest{}
	}
	r := placementRequest{
		cpu:         max(spec.Resources.Reservations.NanoCPUs, 0),
		mem:         max(spec.Resources.Reservations.MemoryBytes, 0),
		maxReplicas: spec.Placement.MaxReplicas,
	}
	for _, p := range spec.Ports {
		if p.PublishMode != PublishHost || p.PublishedPort == 0 {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		r.ports = append(r.ports, schedPort{proto: proto, port: p.PublishedPort})
	}
	return r
}

// constraints parses the spec's constraints, reusing the previous result
// when the expressions are the same.
func (s *scheduler) constraints(spec *ServiceSpec) ([]constraint, error) {
	if spec == nil || len(spec.Placement.Constraints) == 0 {
		return nil, nil
	}
	exprs := spec.Placement.Constraints
	if s.lastExprs != nil && slices.Equal(exprs, s.lastExprs) {
		return s.lastCons, s.lastErr
	}
	s.lastCons, s.lastErr = parseConstraints(exprs)
	s.lastExprs = append(make([]string, 0, len(exprs)), exprs...)
	return s.lastCons, s.lastErr
}

// invalidConstraintsReason turns a parse error into a task status reason,
// without the sentinel's "swarm: invalid spec: " prefix.
func invalidConstraintsReason(err error) string {
	return "invalid constraints: " + strings.TrimPrefix(err.Error(), ErrInvalidSpec.Error()+": ")
}

// serviceCounts returns the per-node task counts of a service, building
// them from the occupying tasks on first use.
func (s *scheduler) serviceCounts(serviceID string) []int32 {
	if c, ok := s.counts[serviceID]; ok {
		return c
	}
	c := make([]int32, len(s.nodes))
	for _, i := range s.occ[serviceID] {
		c[i]++
	}
	delete(s.occ, serviceID)
	s.counts[serviceID] = c
	return c
}

// static applies the filters that do not depend on what is placed: node
// ready, availability active, constraints.
func (s *scheduler) static(i int32, cons []constraint) failReason {
	n := s.nodes[i]
	if n.State != NodeReady || n.Availability != AvailabilityActive || n.NoRuntime {
		return failNotAvailable
	}
	for _, c := range cons {
		if !c.matches(n) {
			return failConstraints
		}
	}
	return failNone
}

// capacity applies the filters that change as tasks are placed: max
// replicas per node, CPU and memory reservations, host ports.
func (s *scheduler) capacity(i int32, svc []int32, req placementRequest) failReason {
	if req.maxReplicas > 0 && uint64(svc[i]) >= req.maxReplicas {
		return failMaxReplicas
	}
	res := s.nodes[i].Resources
	if !reservationFits(s.cpu[i], req.cpu, res.NanoCPUs) {
		return failCPU
	}
	if !reservationFits(s.mem[i], req.mem, res.MemoryBytes) {
		return failMemory
	}
	if used := s.ports[i]; used != nil {
		for _, p := range req.ports {
			if _, taken := used[p]; taken {
				return failHostPort
			}
		}
	}
	return failNone
}

// reservationFits reports whether reserving want on top of reserved stays within
// capacity, without overflowing. A zero reservation always fits.
func reservationFits(reserved, want, capacity int64) bool {
	if want <= 0 {
		return true
	}
	if reserved > capacity {
		return false
	}
	return want <= capacity-reserved
}

// take books one task's resources and ports on node i (the caller bumps
// the service count).
func (s *scheduler) take(i int32, req placementRequest) {
	s.total[i]++
	s.cpu[i] = addSaturating(s.cpu[i], req.cpu)
	s.mem[i] = addSaturating(s.mem[i], req.mem)
	if len(req.ports) > 0 {
		if s.ports[i] == nil {
			s.ports[i] = make(map[schedPort]struct{}, len(req.ports))
		}
		for _, p := range req.ports {
			s.ports[i][p] = struct{}{}
		}
	}
}

// addSaturating adds two non-negative int64s, saturating instead of overflowing.
func addSaturating(a, b int64) int64 {
	if b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

// less is the ranking: a node that failed many recent tasks of the service
// last (see noteFailures), then fewer tasks of the service, then fewer
// tasks in total, then the lower node ID (nodes are sorted by ID, so the
// lower index).
func (s *scheduler) less(a, b int32, svc []int32) bool {
	if c := s.failureOrder(a, b); c != 0 {
		return c < 0
	}
	if svc[a] != svc[b] {
		return svc[a] < svc[b]
	}
	if s.total[a] != s.total[b] {
		return s.total[a] < s.total[b]
	}
	return a < b
}

// down sifts h[j] down the min-heap h.
func (s *scheduler) down(h []int32, j int, svc []int32) {
	for {
		l := 2*j + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && s.less(h[r], h[l], svc) {
			m = r
		}
		if !s.less(h[m], h[j], svc) {
			return
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
}

// explain formats the failure counts as a task status message, SwarmKit
// style: the reasons with the most nodes first (ties in filter order).
func (f failCounts) explain() string {
	order := make([]failReason, 0, numFailReasons)
	for r := range numFailReasons {
		if f[r] > 0 {
			order = append(order, r)
		}
	}
	if len(order) == 0 {
		return "no suitable node"
	}
	slices.SortStableFunc(order, func(a, b failReason) int { return f[b] - f[a] })
	var b strings.Builder
	b.WriteString("no suitable node (")
	for k, r := range order {
		if k > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.explain(f[r]))
	}
	b.WriteString(")")
	return b.String()
}

// explain words one reason for count nodes.
func (r failReason) explain(count int) string {
	nodes := strconv.Itoa(count) + " node"
	if count != 1 {
		nodes += "s"
	}
	switch r {
	case failNotAvailable:
		return nodes + " not available"
	case failConstraints:
		return "scheduling constraints not satisfied on " + nodes
	case failMaxReplicas:
		return "max replicas per node reached on " + nodes
	case failCPU:
		return "insufficient cpu on " + nodes
	case failMemory:
		return "insufficient memory on " + nodes
	case failHostPort:
		return "host-mode port already in use on " + nodes
	}
	return "unknown reason on " + nodes
}
