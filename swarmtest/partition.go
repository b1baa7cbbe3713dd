package swarmtest

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/podswarm/swarm/internal/loopfilter"
)

// linkCutter cuts and heals links between node hosts: iptables on
// loopback, or the in-memory network.
type linkCutter interface {
	nextIP() string
	cut(a, b []string) error
	cutOneWay(from, to string) error
	heal() error
	close()
}

// netFilter cuts loopback traffic between node addresses with a
// [loopfilter.Chain] of the cluster's own.
type netFilter struct {
	chain *loopfilter.Chain
	base  int

	mu   sync.Mutex
	next int
}

var filterSeq atomic.Int64

func newNetFilter() (*netFilter, error) {
	seq := filterSeq.Add(1)
	c, err := loopfilter.New(fmt.Sprintf("PSW-%d-%d", os.Getpid(), seq))
	if err != nil {
		return nil, err
	}
	// 127.(100 + pid%100).seq.i: distinct per cluster and, mostly, per
	// test process.
	return &netFilter{chain: c, base: (100+os.Getpid()%100)<<16 | int(seq%256)<<8}, nil
}

// nextIP returns a fresh loopback address for a node.
func (f *netFilter) nextIP() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	v := f.base | f.next
	return net.IPv4(127, byte(v>>16), byte(v>>8), byte(v)).String()
}

func (f *netFilter) cut(a, b []string) error { return f.chain.Cut(a, b) }

func (f *netFilter) cutOneWay(from, to string) error {
	return f.chain.Drop([]string{from}, []string{to})
}

func (f *netFilter) heal() error { return f.chain.Heal() }

func (f *netFilter) close() { f.chain.Close() }

// Partition splits the network: nodes (by index) in different groups can
// no longer reach each other; nodes in no group keep reaching everyone.
// Packets are dropped, not refused, as on a real network split. It needs
// Options.Partitions or Options.Network InmemNetwork. A new Partition replaces the previous one.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatalf("swarmtest: Partition needs Options.Partitions")
	}
	if err := c.net.heal(); err != nil {
		c.t.Fatalf("swarmtest: %v", err)
	}
	addrs := func(idx []int) []string {
		var out []string
		for _, i := range idx {
			host, _, _ := net.SplitHostPort(c.Node(i).Addr())
			out = append(out, host)
		}
		return out
	}
	for i := range groups {
		for j := i + 1; j < len(groups); j++ {
			if err := c.net.cut(addrs(groups[i]), addrs(groups[j])); err != nil {
				c.t.Fatalf("swarmtest: %v", err)
			}
		}
	}
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.t.Helper()
	if c.net == nil {
		return
	}
	if err := c.net.heal(); err != nil {
		c.t.Fatalf("swarmtest: %v", err)
	}
}

// PartitionOneWay drops every packet from the nodes in from to the nodes
// in to, and nothing the other way: an asymmetric partition, as a
// misconfigured firewall or a one-way link failure makes. It adds to the
// current partition (Heal removes both).
func (c *Cluster) PartitionOneWay(from, to []int) {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatalf("swarmtest: PartitionOneWay needs Options.Partitions")
	}
	for _, i := range from {
		src, _, _ := net.SplitHostPort(c.Node(i).Addr())
		for _, j := range to {
			dst, _, _ := net.SplitHostPort(c.Node(j).Addr())
			if err := c.net.cutOneWay(src, dst); err != nil {
				c.t.Fatalf("swarmtest: %v", err)
			}
		}
	}
}
