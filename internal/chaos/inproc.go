package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
)

// ErrShutdownHung means a node's Shutdown (or a restart, which starts with
// one) did not return within 30 s: the campaign cannot go on with that
// cluster, and reports it.
var ErrShutdownHung = errors.New("chaos: Node.Shutdown did not return within 30s")

// bounded runs f, giving up after 30 s (f keeps running).
func bounded(f func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return ErrShutdownHung
	}
}

// Inproc is a Target over an in-process swarmtest cluster: every node on
// its own loopback address (iptables partitions), with a DataDir (restarts)
// and its own InmemRuntime (the runtime the campaign counts). SIGSTOP and a
// full disk have no in-process equivalent; the swarmd target covers them.
type Inproc struct {
	t        testing.TB
	c        *swarmtest.Cluster
	managers int

	mu      sync.Mutex
	down    map[int]bool // crashed, restarted at heal
	partial bool         // a partition is in place
}

// NewInproc starts a cluster of managers and workers for t.
func NewInproc(t testing.TB, managers, workers int) *Inproc {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: managers, Workers: workers, Persistent: true, Partitions: true})
	return &Inproc{t: t, c: c, managers: managers, down: map[int]bool{}}
}

// Cluster returns the underlying cluster.
func (p *Inproc) Cluster() *swarmtest.Cluster { return p.c }

// Name implements Target.
func (p *Inproc) Name() string { return "inproc" }

// Managers implements Target.
func (p *Inproc) Managers() []int {
	out := make([]int, p.managers)
	for i := range out {
		out[i] = i
	}
	return out
}

// Client implements Target.
func (p *Inproc) Client(i int) Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down[i] {
		return nil
	}
	return nodeClient{p.c.Node(i)}
}

// RaftStatus implements Target.
func (p *Inproc) RaftStatus(ctx context.Context, i int) (swarm.RaftStatus, bool) {
	p.mu.Lock()
	down := p.down[i]
	p.mu.Unlock()
	if down {
		return swarm.RaftStatus{}, false
	}
	st := p.c.Node(i).RaftStatus()
	return st, st.State != ""
}

// Containers implements Target: the running containers of every node's
// runtime, a crashed node's included (its containers outlive it).
func (p *Inproc) Containers(ctx context.Context) ([]swarm.ContainerInfo, error) {
	var out []swarm.ContainerInfo
	for i := range p.c.Nodes() {
		rt, ok := p.c.Runtime(i).(*swarm.InmemRuntime)
		if !ok {
			return nil, fmt.Errorf("node %d: not an InmemRuntime", i)
		}
		out = append(out, rt.Containers()...)
	}
	return out, nil
}

// Kinds implements Target.
func (p *Inproc) Kinds() []FaultKind {
	return []FaultKind{FaultCrash, FaultRestart, FaultPartition, FaultAsymPartition, FaultIsolateLeader}
}

func (p *Inproc) leader() int {
	for i := 0; i < p.managers; i++ {
		p.mu.Lock()
		down := p.down[i]
		p.mu.Unlock()
		if !down && p.c.Node(i).IsLeader() {
			return i
		}
	}
	return -1
}

// Inject implements Target.
func (p *Inproc) Inject(ctx context.Context, kind FaultKind, rng *rand.Rand) (string, error) {
	all := len(p.c.Nodes())
	p.mu.Lock()
	defer p.mu.Unlock()
	switch kind {
	case FaultRestart:
		i := rng.Intn(all)
		if p.partial || len(p.down) > 0 {
			// Restart rejoins through a manager, which a partition or a
			// crash may leave without quorum: crash instead, restart at heal.
			p.down[i] = true
			p.mu.Unlock()
			err := bounded(func() { p.c.Crash(i) })
			p.mu.Lock()
			return fmt.Sprintf("node %d crashed (restart deferred to the heal)", i), err
		}
		p.mu.Unlock()
		err := bounded(func() { p.c.Restart(i) })
		p.mu.Lock()
		return fmt.Sprintf("node %d restarted from its DataDir", i), err
	case FaultCrash:
		i := rng.Intn(all)
		p.down[i] = true
		p.mu.Unlock()
		err := bounded(func() { p.c.Crash(i) })
		p.mu.Lock()
		return fmt.Sprintf("node %d crashed", i), err
	case FaultPartition:
		perm := rng.Perm(all)
		k := 1 + rng.Intn((all-1)/2)
		a, b := perm[:k], perm[k:]
		p.c.Partition(a, b)
		p.partial = true
		return fmt.Sprintf("%v | %v", a, b), nil
	case FaultAsymPartition:
		perm := rng.Perm(all)
		a, b := perm[:1], perm[1:]
		dir := "out of"
		if rng.Intn(2) == 0 {
			p.c.PartitionOneWay(a, b)
		} else {
			dir = "into"
			p.c.PartitionOneWay(b, a)
		}
		p.partial = true
		return fmt.Sprintf("packets %s node %d dropped", dir, a[0]), nil
	case FaultIsolateLeader:
		p.mu.Unlock()
		l := p.leader()
		p.mu.Lock()
		if l < 0 {
			return "no leader to isolate", nil
		}
		var rest []int
		for i := 0; i < all; i++ {
			if i != l {
				rest = append(rest, i)
			}
		}
		p.c.Partition([]int{l}, rest)
		p.partial = true
		return fmt.Sprintf("leader %d isolated", l), nil
	}
	return "", fmt.Errorf("fault %s not supported in-process", kind)
}

// Heal implements Target.
func (p *Inproc) Heal(ctx context.Context) error {
	p.c.Heal()
	p.mu.Lock()
	down := p.down
	p.down = map[int]bool{}
	p.partial = false
	p.mu.Unlock()
	for i := range down {
		if err := bounded(func() { p.c.Restart(i) }); err != nil {
			return fmt.Errorf("restart node %d: %w", i, err)
		}
	}
	return nil
}

// Ready implements Target.
func (p *Inproc) Ready(ctx context.Context) error {
	l := p.leader()
	if l < 0 {
		return fmt.Errorf("no leader")
	}
	nodes, err := p.c.Node(l).Nodes(ctx)
	if err != nil {
		return err
	}
	if len(nodes) < len(p.c.Nodes()) {
		return fmt.Errorf("%d of %d nodes known", len(nodes), len(p.c.Nodes()))
	}
	for _, nd := range nodes {
		if nd.State != swarm.NodeReady {
			return fmt.Errorf("node %s is %s", nd.Hostname, nd.State)
		}
	}
	// Every manager has applied what the leader has.
	li := p.c.Node(l).RaftStatus().AppliedIndex
	for i := 0; i < p.managers; i++ {
		if st := p.c.Node(i).RaftStatus(); st.AppliedIndex+10 < li {
			return fmt.Errorf("manager %d applied %d, leader %d", i, st.AppliedIndex, li)
		}
	}
	return nil
}

// Close implements Target.
func (p *Inproc) Close() { p.c.Shutdown() }
