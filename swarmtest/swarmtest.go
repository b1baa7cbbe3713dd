// Package swarmtest starts real podswarm clusters inside a test process,
// the way net/http/httptest starts servers: NewCluster returns a ready
// swarm of in-process nodes on loopback, shut down by t.Cleanup, with
// helpers to crash, restart and add nodes.
package swarmtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/podswarm/swarm"
)

// Options shape a test cluster.
type Options struct {
	// Managers is the number of managers (at least 1); Workers of workers.
	Managers, Workers int
	// Runtime returns the runtime of the node with the given hostname; nil
	// gives every node its own InmemRuntime.
	Runtime func(hostname string) swarm.Runtime
	// Config, if set, adjusts each node's Config (which starts from
	// swarm.DefaultLocalConfig) before the node starts.
	Config func(hostname string, cfg *swarm.Config)
	// Persistent gives every node a DataDir under t.TempDir(), so Restart
	// brings a node back with its state.
	Persistent bool
	// Log sends the nodes' logs to t.Log.
	Log bool
	// Partitions gives every node its own loopback address (127.x.y.z) so
	// that Partition can cut the network between nodes with iptables rules
	// on loopback. It needs root and iptables; without them NewCluster
	// skips the test. With Network InmemNetwork partitions need neither:
	// they are always available.
	Partitions bool
	// Network is the network the nodes talk on: LoopbackNetwork (the
	// default, real sockets) or InmemNetwork (in memory, no sockets).
	Network Network
}

// Cluster is a running in-process swarm.
type Cluster struct {
	t    testing.TB
	opts Options

	net   linkCutter // nil without Options.Partitions or InmemNetwork
	inmem *inmemNet  // Options.Network InmemNetwork

	mu       sync.Mutex
	nodes    []*swarm.Node
	cfgs     []swarm.Config
	runtimes []swarm.Runtime
	roles    []swarm.Role
}

// NewCluster starts opts.Managers managers and opts.Workers workers and
// waits until every node is ready. It fails the test if the cluster does
// not come up; t.Cleanup shuts every node down.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Managers < 1 {
		opts.Managers = 1
	}
	c := &Cluster{t: t, opts: opts}
	if opts.Network == InmemNetwork {
		c.inmem = newInmemNet()
		c.net = c.inmem
		t.Cleanup(c.inmem.close)
	} else if opts.Partitions {
		f, err := newNetFilter()
		if err != nil {
			t.Skipf("swarmtest: partitions unavailable: %v", err)
		}
		c.net = f
		t.Cleanup(f.close)
	}
	t.Cleanup(c.Shutdown)
	first := c.newConfig(swarm.RoleManager, 1)
	n := swarm.NewNode(first)
	if err := n.Init(); err != nil {
		t.Fatalf("swarmtest: init: %v", err)
	}
	c.add(n, first, swarm.RoleManager)
	for i := 2; i <= opts.Managers; i++ {
		c.AddNode(swarm.RoleManager)
	}
	for i := 1; i <= opts.Workers; i++ {
		c.AddNode(swarm.RoleWorker)
	}
	c.WaitReady()
	return c
}

func (c *Cluster) newConfig(role swarm.Role, idx int) swarm.Config {
	cfg := swarm.DefaultLocalConfig()
	cfg.Hostname = fmt.Sprintf("%s-%d", role, idx)
	if c.opts.Persistent {
		cfg.DataDir = c.t.TempDir()
	}
	if c.net != nil {
		cfg.ListenAddr = c.net.nextIP() + ":0"
	}
	if c.inmem != nil {
		cfg.Network = c.inmem
	}
	if c.opts.Runtime != nil {
		cfg.Runtime = c.opts.Runtime(cfg.Hostname)
	} else {
		cfg.Runtime = swarm.NewInmemRuntime()
	}
	if c.opts.Log {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.Hostname, Level: hclog.Debug, Output: testWriter{c.t}})
	}
	if c.opts.Config != nil {
		c.opts.Config(cfg.Hostname, &cfg)
	}
	return cfg
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func (c *Cluster) add(n *swarm.Node, cfg swarm.Config, role swarm.Role) int {
	// Registered after the node's TempDir, so it runs before the directory
	// is removed (cleanups run last-in first-out).
	c.t.Cleanup(func() { n.Shutdown() })
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = append(c.nodes, n)
	c.cfgs = append(c.cfgs, cfg)
	c.runtimes = append(c.runtimes, cfg.Runtime)
	c.roles = append(c.roles, role)
	return len(c.nodes) - 1
}

// AddNode joins a new node with the given role and returns its index.
func (c *Cluster) AddNode(role swarm.Role) int {
	c.t.Helper()
	count := 1
	c.mu.Lock()
	for _, r := range c.roles {
		if r == role {
			count++
		}
	}
	c.mu.Unlock()
	cfg := c.newConfig(role, count)
	leader := c.Leader()
	tok, err := leader.JoinToken(role)
	if err != nil {
		c.t.Fatalf("swarmtest: join token: %v", err)
	}
	cfg.JoinToken = tok
	n := swarm.NewNode(cfg)
	if err := n.Join(leader.Addr()); err != nil {
		c.t.Fatalf("swarmtest: join %s: %v", cfg.Hostname, err)
	}
	return c.add(n, cfg, role)
}

// Node returns the node at index i (managers first, in the order they joined).
func (c *Cluster) Node(i int) *swarm.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Nodes returns all nodes, including crashed ones.
func (c *Cluster) Nodes() []*swarm.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*swarm.Node(nil), c.nodes...)
}

// Runtime returns the runtime of node i.
func (c *Cluster) Runtime(i int) swarm.Runtime {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runtimes[i]
}

// Index returns the index of n, or -1.
func (c *Cluster) Index(n *swarm.Node) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.nodes {
		if x == n {
			return i
		}
	}
	return -1
}

// Managers returns the manager nodes that have not been crashed, by their
// current role (promoted workers included, demoted managers not).
func (c *Cluster) Managers() []*swarm.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*swarm.Node
	for i, n := range c.nodes {
		if n != nil && n.Role() == swarm.RoleManager && !c.isCrashed(i) {
			out = append(out, n)
		}
	}
	return out
}

func (c *Cluster) isCrashed(i int) bool {
	_, err := c.nodes[i].Info(context.Background())
	return err != nil
}

// Leader waits (up to 10 s) for a leader among the running managers and
// returns it.
func (c *Cluster) Leader() *swarm.Node {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, n := range c.Managers() {
			if n.IsLeader() {
				return n
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("swarmtest: no leader after 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling for leadership; no event exists for it across nodes
	}
}

// WaitReady waits until the leader sees every running node ready.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.Eventually(func() error {
		nodes, err := c.Leader().Nodes(context.Background())
		if err != nil {
			return err
		}
		running := map[string]bool{}
		for i, n := range c.Nodes() {
			if !c.crashed(i) {
				running[n.ID()] = true
			}
		}
		for _, nd := range nodes {
			if running[nd.ID] && nd.State != swarm.NodeReady {
				return fmt.Errorf("node %s is %s", nd.Hostname, nd.State)
			}
		}
		return nil
	}, 15*time.Second)
}

func (c *Cluster) crashed(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isCrashed(i)
}

// Eventually retries f until it returns nil or timeout passes, then fails
// the test with f's last error.
func (c *Cluster) Eventually(f func() error, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("swarmtest: condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Crash shuts node i down hard: to the others it looks like a crash.
func (c *Cluster) Crash(i int) {
	c.Node(i).Shutdown()
}

// Restart starts node i again from its DataDir (Options.Persistent) and
// runtime, rejoining through a running manager, and returns the new node.
func (c *Cluster) Restart(i int) *swarm.Node {
	c.t.Helper()
	c.mu.Lock()
	cfg := c.cfgs[i]
	old := c.nodes[i]
	c.mu.Unlock()
	old.Shutdown()
	if cfg.DataDir == "" {
		c.t.Fatalf("swarmtest: Restart needs Options.Persistent")
	}
	var addr string
	for _, m := range c.Managers() {
		if m != old {
			addr = m.Addr()
			break
		}
	}
	n := swarm.NewNode(cfg)
	if err := n.Join(addr); err != nil {
		c.t.Fatalf("swarmtest: restart %s: %v", cfg.Hostname, err)
	}
	c.t.Cleanup(func() { n.Shutdown() })
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n
}

// Shutdown shuts every node down (t.Cleanup does it too).
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Shutdown()
		}()
	}
	wg.Wait()
}
