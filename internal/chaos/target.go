// Package chaos is podswarm's chaos campaign: a seeded schedule of faults
// (crashes, SIGSTOP, restarts, partitions, a full disk) against a running
// swarm while clients write to it, then checks that no acknowledged write
// was lost, the history is linearizable (porcupine), no two managers led
// in one term, and the runtime runs exactly what the state says.
//
// It runs against two kinds of [Target]: an in-process cluster of
// swarmtest (NewInproc) and a cluster of swarmd processes driven through
// their control sockets (NewSwarmd). The campaign is a Go test
// (TestChaos* in this package), because swarmtest and goleak live in
// tests; `make chaos` runs it with SEED= and CYCLES=.
package chaos

import (
	"context"
	"errors"
	"math/rand"

	"github.com/podswarm/swarm"
)

// FaultKind names a fault the schedule can inject.
type FaultKind string

// The faults. Every one is undone by [Target.Heal].
const (
	FaultCrash         FaultKind = "crash"          // kill -9 (swarmd) or Node.Shutdown (in-process); back at heal
	FaultStop          FaultKind = "sigstop"        // SIGSTOP; SIGCONT at heal
	FaultShutdown      FaultKind = "shutdown"       // a clean stop (SIGTERM); back at heal
	FaultRestart       FaultKind = "restart"        // stop and start again at once from the DataDir
	FaultPartition     FaultKind = "partition"      // a minority cut off from the rest, both ways
	FaultAsymPartition FaultKind = "asym-partition" // packets dropped in one direction only
	FaultIsolateLeader FaultKind = "isolate-leader" // the current leader cut off from everyone
	FaultDiskFull      FaultKind = "disk-full"      // a manager's DataDir (a small tmpfs) filled up
)

// Target is a cluster the campaign can drive and break.
type Target interface {
	// Name names the target in reports ("inproc", "swarmd").
	Name() string
	// Managers returns the indices of the manager nodes (up or down).
	Managers() []int
	// Client returns an API client for node i, or nil when node i is down
	// as far as the target knows.
	Client(i int) Client
	// RaftStatus returns node i's Raft state and term; ok is false when it
	// cannot answer (down, stopped).
	RaftStatus(ctx context.Context, i int) (st swarm.RaftStatus, ok bool)
	// Containers returns the running containers of every node that can be
	// asked (a stopped swarmd cannot).
	Containers(ctx context.Context) ([]swarm.ContainerInfo, error)
	// Kinds lists the faults this target supports.
	Kinds() []FaultKind
	// Inject applies one fault, chosen with rng, and describes it.
	Inject(ctx context.Context, kind FaultKind, rng *rand.Rand) (string, error)
	// Heal undoes every fault: network healed, processes continued,
	// crashed nodes restarted, disks emptied.
	Heal(ctx context.Context) error
	// Ready returns nil when there is a leader and every node is ready.
	Ready(ctx context.Context) error
	// Close stops everything the target started (processes, rules, mounts).
	Close()
}

// Client is the part of the node API the campaign's clients use, whether
// in-process or through a swarmd control socket.
type Client interface {
	CreateService(ctx context.Context, spec swarm.ServiceSpec) error
	ScaleService(ctx context.Context, name string, replicas uint64) error
	UpdateService(ctx context.Context, name string, version uint64, spec swarm.ServiceSpec) error
	RemoveService(ctx context.Context, name string) error
	Service(ctx context.Context, name string) (swarm.Service, error)
	CreateSecret(ctx context.Context, spec swarm.SecretSpec) error
	RemoveSecret(ctx context.Context, name string) error
	Secret(ctx context.Context, name string) error
}

// nodeClient adapts an in-process *swarm.Node to Client.
type nodeClient struct{ n *swarm.Node }

func (c nodeClient) CreateService(ctx context.Context, spec swarm.ServiceSpec) error {
	_, err := c.n.CreateService(ctx, spec)
	return err
}
func (c nodeClient) ScaleService(ctx context.Context, name string, r uint64) error {
	return c.n.ScaleService(ctx, name, r)
}
func (c nodeClient) UpdateService(ctx context.Context, name string, v uint64, spec swarm.ServiceSpec) error {
	return c.n.UpdateService(ctx, name, v, spec)
}
func (c nodeClient) RemoveService(ctx context.Context, name string) error {
	return c.n.RemoveService(ctx, name)
}
func (c nodeClient) Service(ctx context.Context, name string) (swarm.Service, error) {
	return c.n.Service(ctx, name)
}
func (c nodeClient) CreateSecret(ctx context.Context, spec swarm.SecretSpec) error {
	_, err := c.n.CreateSecret(ctx, spec)
	return err
}
func (c nodeClient) RemoveSecret(ctx context.Context, name string) error {
	return c.n.RemoveSecret(ctx, name)
}
func (c nodeClient) Secret(ctx context.Context, name string) error {
	_, err := c.n.Secret(ctx, name)
	return err
}

// classify maps a call's error to its outcome. Only errors that say what
// the state was (not found, conflict, invalid) are definite; everything
// else (timeouts, ErrNoLeader, ErrShutdown, a dropped connection) may hide
// a committed write.
func classify(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, swarm.ErrNotFound):
		return NotFound
	case errors.Is(err, swarm.ErrNameConflict), errors.Is(err, swarm.ErrVersionConflict):
		return Conflict
	case errors.Is(err, swarm.ErrInvalidSpec):
		return Invalid
	}
	return Unknown
}
