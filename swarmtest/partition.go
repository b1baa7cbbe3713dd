package swarmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
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

// netFilter cuts loopback traffic between node addresses with an iptables
// chain of its own, jumped to from OUTPUT (loopback packets pass OUTPUT).
type netFilter struct {
	chain string
	base  int

	mu   sync.Mutex
	next int
}

var filterSeq atomic.Int64

func newNetFilter() (*netFilter, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, fmt.Errorf("iptables not found (scripts/setup.sh installs it)")
	}
	seq := filterSeq.Add(1)
	f := &netFilter{
		chain: fmt.Sprintf("PSW-%d-%d", os.Getpid(), seq),
		// 127.(100 + pid%100).seq.i: distinct per cluster and, mostly, per
		// test process.
		base: (100+os.Getpid()%100)<<16 | int(seq%256)<<8,
	}
	if err := iptables("-N", f.chain); err != nil {
		return nil, err
	}
	if err := iptables("-I", "OUTPUT", "-j", f.chain); err != nil {
		iptables("-X", f.chain)
		return nil, err
	}
	return f, nil
}

func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nextIP returns a fresh loopback address for a node.
func (f *netFilter) nextIP() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	v := f.base | f.next
	return net.IPv4(127, byte(v>>16), byte(v>>8), byte(v)).String()
}

// cut drops all traffic between the two sets of addresses, both ways.
func (f *netFilter) cut(a, b []string) error {
	for _, x := range a {
		for _, y := range b {
			for _, r := range [][2]string{{x, y}, {y, x}} {
				if err := iptables("-A", f.chain, "-s", r[0], "-d", r[1], "-j", "DROP"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (f *netFilter) cutOneWay(from, to string) error {
	return iptables("-A", f.chain, "-s", from, "-d", to, "-j", "DROP")
}

func (f *netFilter) heal() error { return iptables("-F", f.chain) }

func (f *netFilter) close() {
	iptables("-D", "OUTPUT", "-j", f.chain)
	iptables("-F", f.chain)
	iptables("-X", f.chain)
}

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
