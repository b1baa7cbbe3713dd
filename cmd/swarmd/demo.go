package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/podswarm/swarm"
)

// The demo swarm: managers and workers in this process, on loopback.
const (
	demoManagers = 3
	demoWorkers  = 2
	demoService  = "web"
)

// workload is what the demo runs on one kind of runtime.
type workload struct {
	spec swarm.ServiceSpec
	// converge bounds the wait for the service to run (image and container
	// creation are slow on a real runtime).
	converge time.Duration
	// web is true when the replicas serve HTTP on demoPort, published on
	// the host: the demo then fetches a page from each.
	web bool
}

// inmemWorkload runs 6 simulated containers.
func inmemWorkload() workload {
	return workload{
		spec:     swarm.ServiceSpec{Name: demoService, Image: "inmem/web", Mode: swarm.Replicated(6)},
		converge: 30 * time.Second,
	}
}

// podmanWorkload runs 3 real containers: busybox httpd serving the
// container's hostname (Podman's default hostname: the container ID's first
// 12 characters). The image is the one scripts/setup.sh imports. Port 8080
// is published in host mode with no fixed host port, so Podman picks a free
// one for each replica (all the demo's nodes share this host); the routing
// mesh (ingress ports) does not exist yet.
func podmanWorkload() workload {
	grace := 2 * time.Second
	return workload{
		spec: swarm.ServiceSpec{
			Name:  demoService,
			Image: "localhost/podswarm/busybox:latest",
			Command: []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && " +
				"exec httpd -f -p 8080 -h /www"},
			Mode: swarm.Replicated(3),
			// httpd as PID 1 would ignore SIGTERM: an init forwards it.
			Init:            true,
			StopGracePeriod: &grace,
			Ports:           []swarm.PortConfig{{TargetPort: demoPort, PublishMode: swarm.PublishHost}},
		},
		converge: 2 * time.Minute,
		web:      true,
	}
}

// demoPort is the port the demo's web service listens on in its containers.
const demoPort = 8080

type demoNode struct {
	name string
	role swarm.Role
	node *swarm.Node
	rt   swarm.Runtime
	dead bool
}

type demo struct {
	out   io.Writer
	rt    runtimeFlags
	log   string
	work  workload
	nodes []*demoNode

	// shared is the runtime every node uses (podman: one API socket for
	// the whole host); nil gives each node its own InmemRuntime, as if each
	// were a machine.
	shared  swarm.Runtime
	closeRT func()
	svcID   string
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("swarmd demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := &demo{out: stdout, closeRT: func() {}}
	d.rt.register(fs)
	fs.StringVar(&d.log, "log-level", "off", "log level of the nodes (logs go to stderr): off, error, warn, info, debug or trace")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: swarmd demo [flags]\n\n"+
			"Starts %d managers and %d workers in this process, runs service %q on them,\n"+
			"kills the worker with the most tasks, shows how fast the swarm notices and\n"+
			"replaces its tasks, then removes everything.\n\nFlags:\n", demoManagers, demoWorkers, demoService)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "swarmd demo: unexpected argument %q\n", pos[0])
		return errUsage
	}
	if err := d.rt.check(); err != nil {
		return err
	}
	if _, err := newLogger("", d.log, stderr); err != nil {
		return err
	}
	switch d.rt.kind {
	case "inmem":
		d.work = inmemWorkload()
	case "podman":
		d.work = podmanWorkload()
		rt, closeRT, err := d.rt.open(ctx)
		if err != nil {
			return err
		}
		d.shared, d.closeRT = rt, closeRT
	}
	// Cleanup runs even after Ctrl-C: it must not leave containers behind.
	defer d.cleanup(stderr)
	return d.run(ctx, stderr)
}

func (d *demo) run(ctx context.Context, stderr io.Writer) error {
	t0 := time.Now()
	if err := d.start(ctx, stderr); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "Started a swarm of %d managers and %d workers in this process (runtime %s) in %s.\n\n",
		demoManagers, demoWorkers, d.rt.kind, age(time.Since(t0)))
	if err := d.printNodes(ctx); err != nil {
		return err
	}

	spec := d.work.spec
	t0 = time.Now()
	svc, err := d.api().CreateService(ctx, spec)
	if err != nil {
		return err
	}
	d.svcID = svc.ID
	wctx, cancel := context.WithTimeout(ctx, d.work.converge)
	err = d.api().WaitConverged(wctx, svc.ID)
	cancel()
	if err != nil {
		return fmt.Errorf("service %s did not converge: %w", spec.Name, err)
	}
	replicas := int(spec.Mode.Replicas)
	fmt.Fprintf(d.out, "\nCreated service %s (%d replicas of %s): converged in %s.\n\n",
		spec.Name, replicas, spec.Image, age(time.Since(t0)))
	if err := d.printTasks(ctx); err != nil {
		return err
	}
	if err := d.fetchPages(ctx); err != nil {
		return err
	}

	victim, count, err := d.pickVictim(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\nKilling node %s (it runs %d of %s's tasks): Shutdown, a crash as far as the others can tell",
		victim.name, count, spec.Name)
	t0 = time.Now()
	victim.node.Shutdown()
	victim.dead = true
	if d.shared != nil {
		// A real machine's containers die with it; here they would outlive
		// the node, which only ran in this process.
		n, err := reap(ctx, victim.rt, victim.node.ID(), "")
		if err != nil {
			return fmt.Errorf("killing %s's containers: %w", victim.name, err)
		}
		fmt.Fprintf(d.out, ", and its %d container(s) killed with it", n)
	}
	fmt.Fprintln(d.out, ".")
	var downAfter, recoveredAfter time.Duration
	err = poll(ctx, 30*time.Second, func() (bool, error) {
		api := d.api()
		if downAfter == 0 {
			nd, err := api.Node(ctx, victim.node.ID())
			if err == nil && nd.State == swarm.NodeDown {
				downAfter = time.Since(t0)
			}
		}
		if recoveredAfter == 0 {
			if n, err := d.runningElsewhere(ctx, victim); err == nil && n == replicas {
				recoveredAfter = time.Since(t0)
			}
		}
		return downAfter != 0 && recoveredAfter != 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the swarm to replace %s's tasks: %w", victim.name, err)
	}
	fmt.Fprintf(d.out, "%s marked down after %s; all %d replicas running on the other nodes: recovered in %s.\n\n",
		victim.name, age(downAfter), replicas, age(recoveredAfter))
	if err := d.printNodes(ctx); err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	if err := d.printTasks(ctx); err != nil {
		return err
	}
	return d.fetchPages(ctx)
}

// start inits the first manager and joins the others, then waits until the
// leader sees every node ready.
func (d *demo) start(ctx context.Context, stderr io.Writer) error {
	for i := 1; i <= demoManagers; i++ {
		d.nodes = append(d.nodes, &demoNode{name: fmt.Sprintf("manager-%d", i), role: swarm.RoleManager})
	}
	for i := 1; i <= demoWorkers; i++ {
		d.nodes = append(d.nodes, &demoNode{name: fmt.Sprintf("worker-%d", i), role: swarm.RoleWorker})
	}
	for i, dn := range d.nodes {
		cfg := swarm.DefaultLocalConfig()
		cfg.Hostname = dn.name
		cfg.Logger, _ = newLogger(dn.name, d.log, stderr)
		if dn.rt = d.shared; dn.rt == nil {
			dn.rt = swarm.NewInmemRuntime()
		}
		cfg.Runtime = dn.rt
		if i == 0 {
			dn.node = swarm.NewNode(cfg)
			if err := dn.node.Init(); err != nil {
				return fmt.Errorf("init %s: %w", dn.name, err)
			}
			continue
		}
		tok, err := d.api().JoinToken(dn.role)
		if err != nil {
			return err
		}
		cfg.JoinToken = tok
		dn.node = swarm.NewNode(cfg)
		if err := dn.node.Join(d.api().Addr()); err != nil {
			return fmt.Errorf("join %s: %w", dn.name, err)
		}
	}
	return poll(ctx, 20*time.Second, func() (bool, error) {
		nodes, err := d.api().Nodes(ctx)
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, nd := range nodes {
			if nd.State == swarm.NodeReady {
				ready++
			}
		}
		return ready == len(d.nodes), nil
	})
}

// api returns the node the demo talks to: the leader if a live manager
// leads, else any live manager (a follower forwards writes to the leader).
func (d *demo) api() *swarm.Node {
	var fallback *swarm.Node
	for _, dn := range d.nodes {
		if dn.dead || dn.node == nil || dn.role != swarm.RoleManager {
			continue
		}
		if dn.node.IsLeader() {
			return dn.node
		}
		if fallback == nil {
			fallback = dn.node
		}
	}
	return fallback
}

// pickVictim returns the worker running the most of the service's tasks;
// if no worker runs any, the non-leader manager running the most.
func (d *demo) pickVictim(ctx context.Context) (*demoNode, int, error) {
	tasks, err := d.api().Tasks(ctx, swarm.TaskFilter{Service: d.svcID, DesiredState: swarm.TaskRunning})
	if err != nil {
		return nil, 0, err
	}
	per := map[string]int{}
	for _, t := range tasks {
		per[t.NodeID]++
	}
	var best *demoNode
	for _, role := range []swarm.Role{swarm.RoleWorker, swarm.RoleManager} {
		for _, dn := range d.nodes {
			if dn.role != role || dn.node.IsLeader() || per[dn.node.ID()] == 0 {
				continue
			}
			if best == nil || per[dn.node.ID()] > per[best.node.ID()] {
				best = dn
			}
		}
		if best != nil {
			return best, per[best.node.ID()], nil
		}
	}
	return nil, 0, errors.New("no node but the leader runs tasks: nothing to kill")
}

// runningElsewhere counts the service's running tasks on nodes other than dead.
func (d *demo) runningElsewhere(ctx context.Context, dead *demoNode) (int, error) {
	tasks, err := d.api().Tasks(ctx, swarm.TaskFilter{Service: d.svcID, DesiredState: swarm.TaskRunning})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tasks {
		if t.NodeID != dead.node.ID() && t.Status.State == swarm.TaskRunning {
			n++
		}
	}
	return n, nil
}

func (d *demo) printTasks(ctx context.Context) error {
	tasks, err := d.api().Tasks(ctx, swarm.TaskFilter{Service: d.svcID})
	if err != nil {
		return err
	}
	hosts := map[string]string{}
	for _, dn := range d.nodes {
		hosts[dn.node.ID()] = dn.name
	}
	printTasks(d.out, tasks, hosts, time.Now())
	return nil
}

func (d *demo) printNodes(ctx context.Context) error {
	api := d.api()
	nodes, err := api.Nodes(ctx)
	if err != nil {
		return err
	}
	printNodes(d.out, nodes, api.ID())
	return nil
}
