package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podswarm/swarm"
)

// printTasks prints tasks the way `docker service ps` does: the current
// task of each slot first, its older tasks below it marked " \_ ".
// hostnames maps node IDs to hostnames.
func printTasks(w io.Writer, tasks []swarm.Task, hostnames map[string]string, now time.Time) {
	tasks = append([]swarm.Task(nil), tasks...)
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := &tasks[i], &tasks[j]
		if a.ServiceName != b.ServiceName {
			return a.ServiceName < b.ServiceName
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if a.Slot == 0 && a.NodeID != b.NodeID { // global: one "slot" per node
			return a.NodeID < b.NodeID
		}
		return a.CreatedAt.After(b.CreatedAt) // newest first
	})
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tNODE\tDESIRED STATE\tCURRENT STATE\tERROR")
	for i, t := range tasks {
		name := t.Name()
		if i > 0 && sameSlot(tasks[i-1], t) {
			name = ` \_ ` + name
		}
		node := hostnames[t.NodeID]
		if node == "" {
			node = short(t.NodeID, 12)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(t.ID, 12), name, node,
			title(string(t.DesiredState)), currentState(t.Status, now), taskError(t.Status))
	}
	tw.Flush()
}

func sameSlot(a, b swarm.Task) bool {
	return a.ServiceID == b.ServiceID && a.Slot == b.Slot && (a.Slot != 0 || a.NodeID == b.NodeID)
}

// currentState is "Running 1.2s ago", as docker prints it but finer.
func currentState(s swarm.TaskStatus, now time.Time) string {
	if s.Timestamp.IsZero() {
		return title(string(s.State))
	}
	return title(string(s.State)) + " " + age(now.Sub(s.Timestamp)) + " ago"
}

func taskError(s swarm.TaskStatus) string {
	e := s.Err
	if e == "" {
		return ""
	}
	if len(e) > 48 {
		e = e[:45] + "..."
	}
	return `"` + e + `"`
}

// printNodes prints nodes the way `docker node ls` does; self (if not "")
// is the node the listing comes from, marked with "*".
func printNodes(w io.Writer, nodes []swarm.NodeInfo, self string) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOSTNAME\tSTATUS\tAVAILABILITY\tMANAGER STATUS")
	for _, nd := range nodes {
		id := nd.ID
		if id == self {
			id += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, nd.Hostname, title(string(nd.State)),
			title(string(nd.Availability)), managerStatus(nd))
	}
	tw.Flush()
}

func managerStatus(nd swarm.NodeInfo) string {
	switch {
	case nd.Role != swarm.RoleManager:
		return ""
	case nd.Leader:
		return "Leader"
	case nd.State == swarm.NodeReady:
		return "Reachable"
	}
	return "Unreachable"
}

// age formats a duration for humans: "350ms", "1.2s", "3m10s".
func age(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func title(s string) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
