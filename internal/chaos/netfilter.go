package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// netFilter drops loopback packets between addresses with an iptables
// chain of its own, jumped to from OUTPUT (loopback packets pass OUTPUT
// once). Only 127.0.0.0/8 addresses are ever named in its rules.
type netFilter struct{ chain string }

func newNetFilter() (*netFilter, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, fmt.Errorf("iptables not found (scripts/setup.sh installs it)")
	}
	f := &netFilter{chain: fmt.Sprintf("PSWCHAOS-%d", os.Getpid())}
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

// drop drops packets from every address in from to every address in to.
func (f *netFilter) drop(from, to []string) error {
	for _, s := range from {
		for _, d := range to {
			if !strings.HasPrefix(s, "127.") || !strings.HasPrefix(d, "127.") {
				return fmt.Errorf("refusing a rule outside 127.0.0.0/8: %s -> %s", s, d)
			}
			if err := iptables("-A", f.chain, "-s", s, "-d", d, "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// cut drops packets between a and b both ways.
func (f *netFilter) cut(a, b []string) error {
	if err := f.drop(a, b); err != nil {
		return err
	}
	return f.drop(b, a)
}

func (f *netFilter) heal() error { return iptables("-F", f.chain) }

func (f *netFilter) close() {
	iptables("-D", "OUTPUT", "-j", f.chain)
	iptables("-F", f.chain)
	iptables("-X", f.chain)
}
