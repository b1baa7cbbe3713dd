// Package loopfilter drops loopback packets between chosen addresses with
// an iptables chain of its own, jumped to from OUTPUT (loopback packets
// pass OUTPUT once). It serves swarmtest's partitions and the chaos
// campaign. Only 127.0.0.0/8 addresses are ever named in its rules; it
// needs root and iptables.
package loopfilter

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Chain is one iptables chain of drop rules.
type Chain struct{ name string }

// New creates the chain name and jumps to it from OUTPUT.
func New(name string) (*Chain, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, fmt.Errorf("iptables not found (scripts/setup.sh installs it)")
	}
	if err := iptables("-N", name); err != nil {
		return nil, err
	}
	if err := iptables("-I", "OUTPUT", "-j", name); err != nil {
		iptables("-X", name)
		return nil, err
	}
	return &Chain{name: name}, nil
}

// Drop drops packets from every address in from to every address in to.
func (c *Chain) Drop(from, to []string) error {
	for _, s := range from {
		for _, d := range to {
			if !strings.HasPrefix(s, "127.") || !strings.HasPrefix(d, "127.") {
				return fmt.Errorf("refusing a rule outside 127.0.0.0/8: %s -> %s", s, d)
			}
			if err := iptables("-A", c.name, "-s", s, "-d", d, "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// Cut drops packets between a and b both ways.
func (c *Chain) Cut(a, b []string) error {
	if err := c.Drop(a, b); err != nil {
		return err
	}
	return c.Drop(b, a)
}

// Heal removes every rule of the chain.
func (c *Chain) Heal() error { return iptables("-F", c.name) }

// Close removes the chain and its jump.
func (c *Chain) Close() { Remove(c.name) }

// Remove removes the chain name and its jump from OUTPUT, ignoring errors
// (for cleanups of chains whose owner is gone).
func Remove(name string) {
	iptables("-D", "OUTPUT", "-j", name)
	iptables("-F", name)
	iptables("-X", name)
}

// RemovePrefix removes every chain whose name starts with prefix.
func RemovePrefix(prefix string) {
	out, _ := exec.Command("iptables", "-w", "-S").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(l, "-N "); ok && strings.HasPrefix(name, prefix) {
			Remove(name)
		}
	}
}

func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
