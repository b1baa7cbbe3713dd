package chaos

import (
	"fmt"
	"os"

	"github.com/podswarm/swarm/internal/loopfilter"
)

// netFilter drops loopback packets between the swarmd processes' addresses
// ([loopfilter.Chain]).
type netFilter struct{ *loopfilter.Chain }

func newNetFilter() (*netFilter, error) {
	c, err := loopfilter.New(fmt.Sprintf("PSWCHAOS-%d", os.Getpid()))
	if err != nil {
		return nil, err
	}
	return &netFilter{c}, nil
}

func (f *netFilter) drop(from, to []string) error { return f.Drop(from, to) }
func (f *netFilter) cut(a, b []string) error      { return f.Cut(a, b) }
func (f *netFilter) heal() error                  { return f.Heal() }
func (f *netFilter) close()                       { f.Close() }
