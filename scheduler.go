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
	failNotAvailable                       // not ready, or availability not active
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
	for j := len(h)/2 - 1; j >= 0; j-- {
		s.down(h, j, svc)
	}

	placed := 0
	for placed < n && len(h) > 0 {
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
	s.heap = h[:0]
	if placed == n {
		return out, ""
	}
	return out, fails.explain()
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
	if n.State != NodeReady || n.Availability != AvailabilityActive {
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

// less is the ranking: fewer tasks of the service, then fewer tasks in total,
// then the lower node ID (nodes are sorted by ID, so the lower index).
func (s *scheduler) less(a, b int32, svc []int32) bool {
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
