package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/podswarm/swarm"
)

// Options shape a campaign.
type Options struct {
	// Seed chooses the schedule: the same seed gives the same faults, on
	// the same nodes, at the same offsets (timing still varies).
	Seed int64
	// Cycles is the number of fault/heal cycles.
	Cycles int
	// Clients is the number of concurrent client goroutines (default 3).
	Clients int
	// FaultWindow is how long faults are held in each cycle (default 3s).
	FaultWindow time.Duration
	// OpTimeout bounds each client call (default 2s).
	OpTimeout time.Duration
	// ConvergeTimeout bounds the wait for the runtime to match the state
	// after a heal (default 30s).
	ConvergeTimeout time.Duration
	// DetectionBound is how long a slot may run on two nodes after a heal
	// (default 5s).
	DetectionBound time.Duration
	// Sample is the period of the leader and container samplers (default 100ms).
	Sample time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
}

func (o *Options) defaults() {
	if o.Clients == 0 {
		o.Clients = 3
	}
	if o.FaultWindow == 0 {
		o.FaultWindow = 3 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 2 * time.Second
	}
	if o.ConvergeTimeout == 0 {
		o.ConvergeTimeout = 30 * time.Second
	}
	if o.DetectionBound == 0 {
		o.DetectionBound = 5 * time.Second
	}
	if o.Sample == 0 {
		o.Sample = 100 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Report is what a campaign found.
type Report struct {
	Target        string
	Seed          int64
	Cycles        int
	Faults        map[FaultKind]int
	Ops           int
	WritesAcked   int
	WritesUnknown int
	WritesLost    []string
	Linearizable  []Violation // keys whose history is not linearizable
	LinUnknown    []string    // keys porcupine could not decide in time
	TwoLeaders    []string
	MaxOverRep    int           // most extra running containers seen at once
	MaxOverRepDur time.Duration // longest time one slot ran more than once
	Converge      []time.Duration
	Violations    []string // every failed invariant, with its cycle
	// Aborted says why the campaign stopped early ("" when it did not):
	// a node that cannot be shut down leaves nothing to test.
	Aborted        string
	DiskFullErrors []string // distinct client errors seen while a disk was full
}

// Failed reports whether an invariant failed.
func (r *Report) Failed() bool { return len(r.Violations) > 0 }

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos campaign (%s), seed %d\n", r.Target, r.Seed)
	fmt.Fprintf(w, "  cycles:                     %d\n", r.Cycles)
	var kinds []string
	for k, v := range r.Faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "  faults:                     %s\n", strings.Join(kinds, " "))
	fmt.Fprintf(w, "  operations:                 %d\n", r.Ops)
	fmt.Fprintf(w, "  writes acknowledged:        %d (unknown outcome: %d)\n", r.WritesAcked, r.WritesUnknown)
	fmt.Fprintf(w, "  writes lost:                %d\n", len(r.WritesLost))
	fmt.Fprintf(w, "  linearizability violations: %d (undecided keys: %d)\n", len(r.Linearizable), len(r.LinUnknown))
	fmt.Fprintf(w, "  two leaders in one term:    %d\n", len(r.TwoLeaders))
	fmt.Fprintf(w, "  max over-replication:       %d extra containers; longest duplicate slot %v\n", r.MaxOverRep, r.MaxOverRepDur.Round(time.Millisecond))
	p50, p99 := percentile(r.Converge, 50), percentile(r.Converge, 99)
	fmt.Fprintf(w, "  convergence after heal:     p50 %v, p99 %v (%d cycles)\n", p50.Round(time.Millisecond), p99.Round(time.Millisecond), len(r.Converge))
	for _, e := range r.DiskFullErrors {
		fmt.Fprintf(w, "  error while disk full:      %s\n", e)
	}
	if r.Aborted != "" {
		fmt.Fprintf(w, "  ABORTED:                    %s\n", r.Aborted)
	}
	if len(r.Violations) == 0 {
		fmt.Fprintln(w, "  invariants:                 all held")
		return
	}
	fmt.Fprintf(w, "  INVARIANTS FAILED:          %d\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "    - %s\n", v)
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// Run runs the campaign against tgt and returns its report.
func Run(ctx context.Context, tgt Target, opts Options) *Report {
	opts.defaults()
	r := &Report{Target: tgt.Name(), Seed: opts.Seed, Faults: map[FaultKind]int{}}
	sched := rand.New(rand.NewSource(opts.Seed))
	for cycle := 1; cycle <= opts.Cycles && ctx.Err() == nil && r.Aborted == ""; cycle++ {
		if runCycle(ctx, tgt, opts, r, cycle, sched) {
			r.Cycles = cycle
		}
	}
	return r
}

// cycle is the state of one fault/heal cycle.
type cycle struct {
	n     int
	tgt   Target
	opts  Options
	rep   *Report
	hist  History
	keys  []string // service keys
	skeys []string // secret keys

	mu        sync.Mutex
	healedAt  time.Time
	diskFull  bool
	diskErrs  map[string]bool
	leaders   map[uint64]string // term -> leader node ID
	dupSince  map[string]time.Time
	violation []string
	// waitViolation are failed waits, dropped when the budget cut them short.
	waitViolation []string
}

func (c *cycle) fail(format string, args ...any) {
	msg := fmt.Sprintf("cycle %d (seed %d): ", c.n, c.opts.Seed) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.violation = append(c.violation, msg)
	c.mu.Unlock()
	fmt.Fprintln(c.opts.Log, "VIOLATION", msg)
}

// runCycle runs one cycle; it returns false when ctx ended first (the
// time budget): the cycle's findings are then dropped, since a wait cut
// short proves nothing.
// failWait records a failed wait (readiness, convergence, cleanup): it
// counts only if the cycle was not cut short by the time budget.
func (c *cycle) failWait(format string, args ...any) {
	msg := fmt.Sprintf("cycle %d (seed %d): ", c.n, c.opts.Seed) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.waitViolation = append(c.waitViolation, msg)
	c.mu.Unlock()
	fmt.Fprintln(c.opts.Log, "VIOLATION", msg)
}

func runCycle(ctx context.Context, tgt Target, opts Options, rep *Report, n int, sched *rand.Rand) bool {
	c := &cycle{n: n, tgt: tgt, opts: opts, rep: rep, diskErrs: map[string]bool{},
		leaders: map[uint64]string{}, dupSince: map[string]time.Time{}}
	for i := 0; i < 4; i++ {
		c.keys = append(c.keys, fmt.Sprintf("c%ds%d", n, i))
	}
	for i := 0; i < 2; i++ {
		c.skeys = append(c.skeys, fmt.Sprintf("c%dsec%d", n, i))
	}
	// The schedule: one or two faults, at offsets within the window.
	kinds := tgt.Kinds()
	nf := 1 + sched.Intn(2)
	type planned struct {
		kind FaultKind
		at   time.Duration
		seed int64
	}
	var plan []planned
	for i := 0; i < nf; i++ {
		plan = append(plan, planned{kinds[sched.Intn(len(kinds))], time.Duration(sched.Int63n(int64(opts.FaultWindow / 2))), sched.Int63()})
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	clientSeed := sched.Int63()

	sctx, stopSamplers := context.WithCancel(ctx)
	var swg sync.WaitGroup
	swg.Add(1)
	go func() { defer swg.Done(); c.sample(sctx) }()

	cctx, stopClients := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	for i := 0; i < opts.Clients; i++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			c.client(cctx, i, rand.New(rand.NewSource(clientSeed+int64(i))))
		}()
	}

	start := time.Now()
	var descs []string
	for _, p := range plan {
		if d := time.Until(start.Add(p.at)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		desc, err := tgt.Inject(ctx, p.kind, rand.New(rand.NewSource(p.seed)))
		if err != nil {
			c.fail("inject %s (%s): %v", p.kind, desc, err)
			if errors.Is(err, ErrShutdownHung) {
				rep.Aborted = fmt.Sprintf("cycle %d (seed %d): %s: %v", n, opts.Seed, desc, err)
				break
			}
			continue
		}
		rep.Faults[p.kind]++
		if p.kind == FaultDiskFull {
			c.mu.Lock()
			c.diskFull = true
			c.mu.Unlock()
		}
		descs = append(descs, fmt.Sprintf("%s@%v: %s", p.kind, p.at.Round(time.Millisecond), desc))
	}
	fmt.Fprintf(opts.Log, "cycle %d: %s\n", n, strings.Join(descs, "; "))
	select {
	case <-time.After(time.Until(start.Add(opts.FaultWindow))):
	case <-ctx.Done():
	}

	// Heal, then let the clients run a little on the healed cluster.
	if rep.Aborted != "" {
		stopClients()
		cwg.Wait()
		stopSamplers()
		swg.Wait()
		c.mu.Lock()
		rep.Violations = append(rep.Violations, c.violation...)
		c.mu.Unlock()
		return false
	}
	if err := tgt.Heal(ctx); err != nil {
		c.fail("heal: %v", err)
		if errors.Is(err, ErrShutdownHung) {
			rep.Aborted = fmt.Sprintf("cycle %d (seed %d): heal: %v", n, opts.Seed, err)
		}
	}
	healed := time.Now()
	c.mu.Lock()
	c.healedAt = healed
	c.diskFull = false
	c.mu.Unlock()
	if err := waitFor(ctx, opts.ConvergeTimeout, func() error { return tgt.Ready(ctx) }); err != nil {
		c.failWait("cluster not ready after heal: %v", err)
	}
	stopClients()
	cwg.Wait()

	// Final reads, recorded in the history: they must show every
	// acknowledged write.
	final := c.finalReads(ctx)
	conv, err := c.converge(ctx, healed)
	if err != nil {
		c.failWait("runtime does not match the state %v after heal: %v", opts.ConvergeTimeout, err)
	} else {
		rep.Converge = append(rep.Converge, conv)
	}
	stopSamplers()
	swg.Wait()

	ops := c.hist.Ops()
	rep.Ops += len(ops)
	for _, op := range ops {
		if op.In.Kind == OpRead {
			continue
		}
		switch op.Out.Outcome {
		case OK:
			rep.WritesAcked++
		case Unknown:
			rep.WritesUnknown++
		}
	}
	if lost := LostWrites(ops, final); len(lost) > 0 {
		rep.WritesLost = append(rep.WritesLost, lost...)
		for _, l := range lost {
			c.fail("acknowledged write lost: %s", l)
		}
	}
	viol, undecided := CheckLinearizable(ops, 20*time.Second)
	rep.LinUnknown = append(rep.LinUnknown, undecided...)
	for _, v := range viol {
		rep.Linearizable = append(rep.Linearizable, v)
		msg := fmt.Sprintf("history of %s is not linearizable; first op no linearization reaches: %s", v.Key, v.Stuck)
		if v.Hint != "" {
			msg += "\n      known cause: " + v.Hint
		}
		if v.Visual != "" {
			msg += "\n      visualisation: " + v.Visual
		}
		c.fail("%s", msg)
		fmt.Fprintf(c.opts.Log, "history of %s:\n        %s\n", v.Key, strings.Join(v.Ops, "\n        "))
	}

	// Remove what the cycle created; no container may stay behind.
	c.cleanup(ctx)
	if ctx.Err() != nil {
		// Heal what the cycle broke even when out of time.
		tgt.Heal(context.Background())
		fmt.Fprintf(opts.Log, "cycle %d cut short by the time budget: not counted\n", n)
		c.mu.Lock()
		rep.Violations = append(rep.Violations, c.violation...)
		c.mu.Unlock()
		return false
	}
	for e := range c.diskErrs {
		rep.DiskFullErrors = append(rep.DiskFullErrors, e)
	}
	c.mu.Lock()
	rep.Violations = append(rep.Violations, c.violation...)
	rep.Violations = append(rep.Violations, c.waitViolation...)
	c.mu.Unlock()
	fmt.Fprintf(opts.Log, "cycle %d done: %d ops, converged in %v, %d violations so far\n",
		n, len(ops), conv.Round(time.Millisecond), len(rep.Violations))
	return true
}

// client runs random operations until ctx ends.
func (c *cycle) client(ctx context.Context, id int, rng *rand.Rand) {
	mgrs := c.tgt.Managers()
	seq := 0
	for ctx.Err() == nil {
		seq++
		i := mgrs[rng.Intn(len(mgrs))]
		cl := c.tgt.Client(i)
		if cl == nil {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		ep := strconv.Itoa(i)
		if rng.Intn(5) == 0 {
			c.secretOp(ctx, cl, id, ep, c.skeys[rng.Intn(len(c.skeys))], rng)
			continue
		}
		key := c.keys[rng.Intn(len(c.keys))]
		switch p := rng.Intn(100); {
		case p < 25:
			r := uint64(rng.Intn(4))
			img := fmt.Sprintf("busybox:c%d-%d", id, seq)
			c.do(ctx, id, ep, Input{Key: key, Kind: OpCreate, Replicas: r, Image: img}, func(ctx context.Context) (Obj, error) {
				return Obj{}, cl.CreateService(ctx, swarm.ServiceSpec{Name: key, Image: img, Mode: swarm.Replicated(r)})
			})
		case p < 50:
			r := uint64(rng.Intn(4))
			c.do(ctx, id, ep, Input{Key: key, Kind: OpScale, Replicas: r}, func(ctx context.Context) (Obj, error) {
				return Obj{}, cl.ScaleService(ctx, key, r)
			})
		case p < 70:
			svc, ok := c.read(ctx, cl, id, ep, key)
			if !ok {
				continue
			}
			img := fmt.Sprintf("busybox:u%d-%d", id, seq)
			spec := svc.Spec
			spec.Image = img
			c.do(ctx, id, ep, Input{Key: key, Kind: OpUpdate, Image: img, Expect: objOf(svc)}, func(ctx context.Context) (Obj, error) {
				return Obj{}, cl.UpdateService(ctx, key, svc.Version, spec)
			})
		case p < 80:
			c.do(ctx, id, ep, Input{Key: key, Kind: OpRemove}, func(ctx context.Context) (Obj, error) {
				return Obj{}, cl.RemoveService(ctx, key)
			})
		default:
			c.read(ctx, cl, id, ep, key)
		}
	}
}

func objOf(svc swarm.Service) Obj {
	return Obj{Exists: true, Replicas: svc.Spec.Mode.Replicas, Image: svc.Spec.Image}
}

// read reads a service, records the read, and returns it when it exists.
func (c *cycle) read(ctx context.Context, cl Client, id int, ep, key string) (swarm.Service, bool) {
	var svc swarm.Service
	out := c.do(ctx, id, ep, Input{Key: key, Kind: OpRead}, func(ctx context.Context) (Obj, error) {
		var err error
		svc, err = cl.Service(ctx, key)
		if err != nil {
			return Obj{}, err
		}
		return objOf(svc), nil
	})
	return svc, out == OK
}

func (c *cycle) secretOp(ctx context.Context, cl Client, id int, ep, key string, rng *rand.Rand) {
	switch p := rng.Intn(10); {
	case p < 5:
		c.do(ctx, id, ep, Input{Key: key, Kind: OpCreate}, func(ctx context.Context) (Obj, error) {
			return Obj{}, cl.CreateSecret(ctx, swarm.SecretSpec{Name: key, Data: []byte("chaos")})
		})
	case p < 8:
		c.do(ctx, id, ep, Input{Key: key, Kind: OpRemove}, func(ctx context.Context) (Obj, error) {
			return Obj{}, cl.RemoveSecret(ctx, key)
		})
	default:
		c.do(ctx, id, ep, Input{Key: key, Kind: OpRead}, func(ctx context.Context) (Obj, error) {
			return Obj{Exists: true}, cl.Secret(ctx, key)
		})
	}
}

// do runs one call with the op timeout and records it. A read that fails
// without a definite answer is not recorded: it changed nothing.
func (c *cycle) do(ctx context.Context, id int, ep string, in Input, f func(context.Context) (Obj, error)) Outcome {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.OpTimeout)
	defer cancel()
	call := time.Now()
	read, err := f(octx)
	ret := time.Now()
	out := Output{Outcome: classify(err), Read: read}
	if err != nil {
		out.Err = err.Error()
		c.mu.Lock()
		if c.diskFull && out.Outcome == Unknown && in.Kind != OpRead {
			msg := err.Error()
			if len(msg) > 160 {
				msg = msg[:160]
			}
			if len(c.diskErrs) < 5 {
				c.diskErrs[msg] = true
			}
		}
		c.mu.Unlock()
	}
	if out.Outcome == Unknown {
		if in.Kind == OpRead {
			return Unknown
		}
		ret = time.Time{}
	}
	c.hist.Add(Op{Client: id, In: in, Out: out, Call: call, Return: ret, Endpoint: ep})
	return out.Outcome
}

// finalReads reads every key through a ready manager (recorded as client
// -1) and returns the state it saw.
func (c *cycle) finalReads(ctx context.Context) map[string]Obj {
	final := map[string]Obj{}
	for _, key := range append(append([]string(nil), c.keys...), c.skeys...) {
		secret := strings.Contains(key, "sec")
		err := waitFor(ctx, 10*time.Second, func() error {
			for _, i := range c.tgt.Managers() {
				cl := c.tgt.Client(i)
				if cl == nil {
					continue
				}
				var o Obj
				out := c.do(ctx, -1, strconv.Itoa(i), Input{Key: key, Kind: OpRead}, func(ctx context.Context) (Obj, error) {
					if secret {
						o = Obj{Exists: true}
						return o, cl.Secret(ctx, key)
					}
					svc, err := cl.Service(ctx, key)
					if err == nil {
						o = objOf(svc)
					}
					return o, err
				})
				switch out {
				case OK:
					final[key] = o
					return nil
				case NotFound:
					final[key] = Obj{}
					return nil
				}
			}
			return fmt.Errorf("no manager answered a read of %s", key)
		})
		if err != nil {
			c.failWait("final read: %v", err)
		}
	}
	return final
}

// converge waits until the runtime runs exactly what the state says for
// the cycle's services: one running container per slot 1..replicas,
// none for removed services. It returns the time since the heal.
func (c *cycle) converge(ctx context.Context, healed time.Time) (time.Duration, error) {
	err := waitFor(ctx, c.opts.ConvergeTimeout, func() error {
		final := c.currentState(ctx)
		cs, err := c.tgt.Containers(ctx)
		if err != nil {
			return err
		}
		slots := runningSlots(cs)
		for _, key := range c.keys {
			obj, ok := final[key]
			if !ok {
				return fmt.Errorf("%s: state unknown", key)
			}
			got := slots[key]
			var want uint64
			if obj.Exists {
				want = obj.Replicas
			}
			total := 0
			for slot, nodes := range got {
				total += len(nodes)
				if slot < 1 || slot > want {
					return fmt.Errorf("%s: slot %d runs (%d replicas wanted)", key, slot, want)
				}
				if len(nodes) > 1 {
					return fmt.Errorf("%s: slot %d runs %d times (%v)", key, slot, len(nodes), nodes)
				}
			}
			if uint64(total) != want {
				return fmt.Errorf("%s: %d running containers, want %d", key, total, want)
			}
		}
		return nil
	})
	return time.Since(healed), err
}

// currentState reads the cycle's services (not recorded).
func (c *cycle) currentState(ctx context.Context) map[string]Obj {
	out := map[string]Obj{}
	for _, key := range c.keys {
		for _, i := range c.tgt.Managers() {
			cl := c.tgt.Client(i)
			if cl == nil {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, c.opts.OpTimeout)
			svc, err := cl.Service(rctx, key)
			cancel()
			if err == nil {
				out[key] = objOf(svc)
				break
			}
			if classify(err) == NotFound {
				out[key] = Obj{}
				break
			}
		}
	}
	return out
}

// runningSlots groups running containers by service name and slot, from
// the Swarm-style container name <service>.<slot>.<task>.
func runningSlots(cs []swarm.ContainerInfo) map[string]map[uint64][]string {
	out := map[string]map[uint64][]string{}
	for _, ci := range cs {
		if !ci.Running {
			continue
		}
		parts := strings.Split(ci.Name, ".")
		if len(parts) != 3 {
			continue
		}
		slot, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			continue
		}
		if out[parts[0]] == nil {
			out[parts[0]] = map[uint64][]string{}
		}
		out[parts[0]][slot] = append(out[parts[0]][slot], ci.NodeID)
	}
	return out
}

// sample watches, until ctx ends, that no two managers lead in one term
// and how long any slot runs more than once.
func (c *cycle) sample(ctx context.Context) {
	t := time.NewTicker(c.opts.Sample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, i := range c.tgt.Managers() {
			rctx, cancel := context.WithTimeout(ctx, c.opts.Sample*5)
			st, ok := c.tgt.RaftStatus(rctx, i)
			cancel()
			if !ok || st.State != "Leader" {
				continue
			}
			id := st.LeaderID
			c.mu.Lock()
			prev, seen := c.leaders[st.Term]
			if !seen {
				c.leaders[st.Term] = id
			}
			c.mu.Unlock()
			if seen && prev != id {
				msg := fmt.Sprintf("term %d: leaders %s and %s", st.Term, prev, id)
				c.rep.TwoLeaders = append(c.rep.TwoLeaders, msg)
				c.fail("two leaders in one term: %s", msg)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, c.opts.Sample*5)
		cs, err := c.tgt.Containers(cctx)
		cancel()
		if err != nil {
			continue
		}
		now := time.Now()
		extra := 0
		live := map[string]bool{}
		for svc, slots := range runningSlots(cs) {
			for slot, nodes := range slots {
				if len(nodes) < 2 {
					continue
				}
				extra += len(nodes) - 1
				k := fmt.Sprintf("%s.%d", svc, slot)
				live[k] = true
				c.mu.Lock()
				if _, ok := c.dupSince[k]; !ok {
					c.dupSince[k] = now
				}
				c.mu.Unlock()
			}
		}
		c.mu.Lock()
		if extra > c.rep.MaxOverRep {
			c.rep.MaxOverRep = extra
		}
		for k, since := range c.dupSince {
			d := now.Sub(since)
			if d > c.rep.MaxOverRepDur {
				c.rep.MaxOverRepDur = d
			}
			if !live[k] {
				delete(c.dupSince, k)
				continue
			}
			// After the heal a duplicate may last only the detection bound.
			if !c.healedAt.IsZero() && now.Sub(c.healedAt) > c.opts.DetectionBound && since.Before(now.Add(-c.opts.DetectionBound)) {
				msg := fmt.Sprintf("cycle %d (seed %d): slot %s ran on two nodes for %v, %v after the heal",
					c.n, c.opts.Seed, k, d.Round(time.Millisecond), now.Sub(c.healedAt).Round(time.Millisecond))
				c.violation = append(c.violation, msg)
				c.dupSince[k] = now.Add(time.Hour) // report once
			}
		}
		c.mu.Unlock()
	}
}

// cleanup removes the cycle's services and secrets and checks that their
// containers go away.
func (c *cycle) cleanup(ctx context.Context) {
	for _, key := range c.keys {
		c.removeAll(ctx, key, false)
	}
	for _, key := range c.skeys {
		c.removeAll(ctx, key, true)
	}
	err := waitFor(ctx, c.opts.ConvergeTimeout, func() error {
		cs, err := c.tgt.Containers(ctx)
		if err != nil {
			return err
		}
		for _, ci := range cs {
			name, _, _ := strings.Cut(ci.Name, ".")
			for _, key := range c.keys {
				if name == key {
					return fmt.Errorf("container %s (running=%v) of removed service %s on node %s", ci.Name, ci.Running, key, ci.NodeID)
				}
			}
		}
		return nil
	})
	if err != nil {
		c.failWait("container leak: %v", err)
	}
}

func (c *cycle) removeAll(ctx context.Context, key string, secret bool) {
	err := waitFor(ctx, 15*time.Second, func() error {
		for _, i := range c.tgt.Managers() {
			cl := c.tgt.Client(i)
			if cl == nil {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, c.opts.OpTimeout)
			var err error
			if secret {
				err = cl.RemoveSecret(rctx, key)
			} else {
				err = cl.RemoveService(rctx, key)
			}
			cancel()
			if err == nil || classify(err) == NotFound {
				return nil
			}
		}
		return fmt.Errorf("could not remove %s", key)
	})
	if err != nil {
		c.failWait("cleanup: %v", err)
	}
}

// waitFor retries f until it returns nil, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}
