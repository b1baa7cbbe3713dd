package swarm

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// schedFailed returns k tasks of service svc that ended in state on node,
// stamped at the given time.
func schedFailed(svc, node string, k int, state TaskState, at time.Time) []*Task {
	out := make([]*Task, k)
	for i := range out {
		out[i] = &Task{ID: fmt.Sprintf("%s-%s-f%d", svc, node, i), ServiceID: svc, NodeID: node,
			DesiredState: TaskShutdown, Status: TaskStatus{State: state, Timestamp: at}}
	}
	return out
}

// TestSchedulerRecentFailures covers the failure ranking: a node with
// maxRecentFailures failed or rejected tasks of a service within
// recentFailureWindow before now ranks last for that service only.
func TestSchedulerRecentFailures(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recent := now.Add(-time.Minute)
	three := func() []*NodeInfo { return []*NodeInfo{schedNode("a"), schedNode("b"), schedNode("c")} }
	cat := func(lists ...[]*Task) []*Task {
		var out []*Task
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	tests := []struct {
		name      string
		nodes     []*NodeInfo
		occupying []*Task
		failed    []*Task
		spec      *ServiceSpec // nil: an empty spec
		svc       string
		n         int
		want      []string
	}{
		{
			name:  "no failures: plain ranking",
			nodes: three(), svc: "web", n: 3, want: []string{"a", "b", "c"},
		},
		{
			name:  "five failures rank a node last",
			nodes: three(), failed: schedFailed("web", "a", 5, TaskFailed, recent),
			// Last whatever the counts: a takes none while b and c fit.
			svc: "web", n: 3, want: []string{"b", "c", "b"},
		},
		{
			name:  "rejections count as failures",
			nodes: three(), failed: schedFailed("web", "a", 5, TaskRejected, recent),
			svc: "web", n: 2, want: []string{"b", "c"},
		},
		{
			name:  "four failures do not matter",
			nodes: three(), failed: schedFailed("web", "a", 4, TaskFailed, recent),
			svc: "web", n: 3, want: []string{"a", "b", "c"},
		},
		{
			name:  "failures before the window do not count",
			nodes: three(),
			failed: cat(schedFailed("web", "a", 4, TaskFailed, recent),
				schedFailed("web", "a", 3, TaskFailed, now.Add(-recentFailureWindow))),
			svc: "web", n: 3, want: []string{"a", "b", "c"},
		},
		{
			name:  "a failure stamped after now is recent",
			nodes: three(),
			failed: cat(schedFailed("web", "a", 4, TaskFailed, recent),
				schedFailed("web", "a", 1, TaskFailed, now.Add(time.Hour))),
			svc: "web", n: 1, want: []string{"b"},
		},
		{
			name:  "other services still use the node",
			nodes: three(), failed: schedFailed("web", "a", 5, TaskFailed, recent),
			svc: "db", n: 3, want: []string{"a", "b", "c"},
		},
		{
			name:  "completed and shut down tasks are no failures",
			nodes: three(),
			failed: cat(schedFailed("web", "a", 5, TaskComplete, recent),
				schedFailed("web", "a", 5, TaskShutdown, recent)),
			svc: "web", n: 1, want: []string{"a"},
		},
		{
			name: "failures decide before the task counts",
			// a is empty but failing; b and c already run web.
			nodes:     three(),
			occupying: []*Task{schedTask("web", "b", ServiceSpec{}), schedTask("web", "c", ServiceSpec{})},
			failed:    schedFailed("web", "a", 5, TaskFailed, recent),
			svc:       "web", n: 2, want: []string{"b", "c"},
		},
		{
			name:  "the node with more failures goes last",
			nodes: three(),
			failed: cat(schedFailed("web", "a", 7, TaskFailed, recent),
				schedFailed("web", "b", 5, TaskFailed, recent)),
			svc: "web", n: 3, want: []string{"c", "c", "c"},
		},
		{
			name:   "ranked last, not excluded",
			nodes:  []*NodeInfo{schedNode("a"), schedNode("b", schedState(NodeDown))},
			failed: schedFailed("web", "a", 5, TaskFailed, recent),
			svc:    "web", n: 2, want: []string{"a", "a"},
		},
		{
			name:  "failures on unknown nodes are ignored",
			nodes: three(), failed: cat(schedFailed("web", "zz", 5, TaskFailed, recent), []*Task{nil}),
			svc: "web", n: 1, want: []string{"a"},
		},
		{
			name: "spread: ranking within a group",
			nodes: []*NodeInfo{
				schedNode("a", schedLabels("zone", "1")), schedNode("b", schedLabels("zone", "1")),
				schedNode("c", schedLabels("zone", "2")),
			},
			failed: schedFailed("web", "a", 5, TaskFailed, recent),
			spec:   &ServiceSpec{Placement: Placement{Preferences: []PlacementPreference{{Spread: "node.labels.zone"}}}},
			svc:    "web", n: 2, want: []string{"b", "c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScheduler(tt.nodes, tt.occupying)
			s.noteFailures(now, tt.failed)
			spec := tt.spec
			if spec == nil {
				spec = &ServiceSpec{}
			}
			got, _ := s.place(tt.svc, spec, tt.n)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestSchedulerFailing checks failing, which rebalancing uses to leave a
// failing node out.
func TestSchedulerFailing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newScheduler([]*NodeInfo{schedNode("a"), schedNode("b")}, nil)
	s.noteFailures(now, append(schedFailed("web", "a", 5, TaskFailed, now), schedFailed("web", "b", 4, TaskFailed, now)...))
	assert.True(t, s.failing("a", "web"))
	assert.False(t, s.failing("b", "web"))
	assert.False(t, s.failing("a", "db"))
	assert.False(t, s.failing("missing", "web"))
}
