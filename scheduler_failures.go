package swarm

import "time"

// Recent failures rank a node last for a service, as SwarmKit's scheduler
// does (nodeinfo.go, maxFailures and monitorFailures): a node that failed
// maxRecentFailures tasks of a service within recentFailureWindow is where
// that service's tasks go only when no other node fits. Other services
// still use the node as before.
const (
	maxRecentFailures   = 5
	recentFailureWindow = 5 * time.Minute
)

// noteFailures records, from tasks (any tasks; nil ones and the ones that
// did not fail are skipped), how many tasks of each service failed or were
// rejected on each node within recentFailureWindow before now. Times are
// the tasks' Status.Timestamp as stored in the replicated state, compared
// with now, the pass's time: the scheduler reads no clock of its own, so
// the same tasks and now give the same ranking. A failure stamped after
// now counts as recent. Call it before placing.
func (s *scheduler) noteFailures(now time.Time, tasks []*Task) {
	since := now.Add(-recentFailureWindow)
	for _, t := range tasks {
		if t == nil || t.NodeID == "" || (t.Status.State != TaskFailed && t.Status.State != TaskRejected) {
			continue
		}
		if !t.Status.Timestamp.After(since) {
			continue
		}
		i, ok := s.index[t.NodeID]
		if !ok {
			continue
		}
		if s.failures == nil {
			s.failures = make(map[string][]int32)
		}
		f := s.failures[t.ServiceID]
		if f == nil {
			f = make([]int32, len(s.nodes))
			s.failures[t.ServiceID] = f
		}
		f[i]++
	}
}

// recentFailures returns the per-node recent failure counts of a service,
// nil when it has none.
func (s *scheduler) recentFailures(serviceID string) []int32 {
	return s.failures[serviceID]
}

// failing reports whether the node failed enough recent tasks of the
// service to be ranked last for it.
func (s *scheduler) failing(nodeID, serviceID string) bool {
	i, ok := s.index[nodeID]
	f := s.failures[serviceID]
	return ok && f != nil && f[i] >= maxRecentFailures
}

// failureOrder compares nodes a and b by the recent failures of the
// service being placed (s.placing): when either reached maxRecentFailures
// the one with fewer comes first (cmp < 0) — the deciding factor, as in
// SwarmKit; otherwise failures do not matter (0).
func (s *scheduler) failureOrder(a, b int32) int {
	f := s.placing
	if f == nil {
		return 0
	}
	fa, fb := f[a], f[b]
	if fa == fb || (fa < maxRecentFailures && fb < maxRecentFailures) {
		return 0
	}
	if fa < fb {
		return -1
	}
	return 1
}
