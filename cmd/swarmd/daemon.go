package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/podswarm/swarm"
)

// nodeFlags are the flags of init and join: one node's Config.
type nodeFlags struct {
	listen, advertise string
	data, hostname    string
	logLevel          string
	controlSocket     string
	labels            labelsFlag
	rt                runtimeFlags
}

func (f *nodeFlags) register(fs *flag.FlagSet, defaultListen, listenHelp string) {
	fs.StringVar(&f.listen, "listen", defaultListen, listenHelp)
	fs.StringVar(&f.advertise, "advertise", "", "control address other nodes use to reach this one (default: the bound -listen address)")
	fs.StringVar(&f.data, "data", "", "data directory: the node's identity and Raft state; a node started again\n"+
		"with the same directory resumes its place in the swarm (default: in memory, nothing survives a restart)")
	fs.StringVar(&f.hostname, "hostname", "", "node hostname shown in node lists and matched by node.hostname constraints (default: os.Hostname())")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: off, error, warn, info, debug or trace")
	f.labels = labelsFlag{}
	fs.Var(f.labels, "label", "engine label key=value (repeatable; engine.labels.KEY constraints)")
	fs.StringVar(&f.controlSocket, "control-socket", "", "serve the operator control API (HTTP/JSON, see control.go) on this unix socket, mode 0600\n"+
		"(default: none)")
	f.rt.register(fs)
}

// control starts the control API of n when -control-socket is set; the
// returned function stops it.
func (f *nodeFlags) control(n *swarm.Node, rt swarm.Runtime) (func(), error) {
	if f.controlSocket == "" {
		return func() {}, nil
	}
	c, err := startControl(f.controlSocket, n, rt)
	if err != nil {
		return nil, err
	}
	return func() { c.Close() }, nil
}

// config builds the node's Config with production (LAN) timings. The
// returned function releases the runtime.
func (f *nodeFlags) config(ctx context.Context, stderr io.Writer) (swarm.Config, func(), error) {
	if err := f.rt.check(); err != nil {
		return swarm.Config{}, nil, err
	}
	cfg := swarm.DefaultConfig()
	cfg.ListenAddr = f.listen
	cfg.AdvertiseAddr = f.advertise
	cfg.DataDir = f.data
	if f.hostname != "" {
		cfg.Hostname = f.hostname
	}
	if len(f.labels) > 0 {
		cfg.Labels = map[string]string(f.labels)
	}
	log, err := newLogger("swarmd", f.logLevel, stderr)
	if err != nil {
		return swarm.Config{}, nil, err
	}
	cfg.Logger = log
	if f.data != "" {
		// Raft opens its store in DataDir before the node writes anything
		// there, so the directory must exist first.
		if err := os.MkdirAll(f.data, 0o700); err != nil {
			return swarm.Config{}, nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return swarm.Config{}, nil, err
	}
	rt, closeRT, err := f.rt.open(ctx)
	if err != nil {
		return swarm.Config{}, nil, err
	}
	cfg.Runtime = rt
	return cfg, closeRT, nil
}

// hasState reports whether dir exists and is not empty: a node started on
// it resumes the swarm stored there instead of creating or joining one.
func hasState(dir string) bool {
	if dir == "" {
		return false
	}
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("swarmd init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f nodeFlags
	f.register(fs, "127.0.0.1:2377", "control address to listen on (host:port; 0.0.0.0:2377 for other hosts to join)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: swarmd init [flags]\n\n"+
			"Starts a node that creates a new swarm and leads it, or, when -data holds a\n"+
			"swarm already, resumes it. Runs until SIGINT or SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "swarmd init: unexpected argument %q\n", pos[0])
		fs.Usage()
		return errUsage
	}
	resumed := hasState(f.data)
	cfg, closeRT, err := f.config(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeRT()
	n := swarm.NewNode(cfg)
	stopControl, err := f.control(n, cfg.Runtime)
	if err != nil {
		return err
	}
	defer stopControl()
	if err := n.InitContext(ctx); err != nil { // SIGTERM stops a hung start
		return err
	}
	if resumed {
		fmt.Fprintf(stdout, "Resumed the swarm stored in %s.\n", f.data)
	} else {
		fmt.Fprintln(stdout, "Swarm initialised: this node is its first manager and leader.")
	}
	printNode(ctx, stdout, n, cfg.Hostname)
	return serve(ctx, stdout, n)
}

func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("swarmd join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f nodeFlags
	var token string
	fs.StringVar(&token, "token", os.Getenv("SWARMD_JOIN_TOKEN"),
		"join token (from 'swarmd init' or a manager); it decides worker or manager\n"+
			"(default $SWARMD_JOIN_TOKEN; not needed to resume from -data)")
	f.register(fs, "127.0.0.1:0", "control address to listen on (host:port; port 0 picks a free port, kept across restarts with -data)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: swarmd join -token TOKEN [flags] MANAGER_ADDR\n\n"+
			"Starts a node that joins the swarm of the manager at MANAGER_ADDR, or, when -data\n"+
			"holds a swarm already, resumes its place in it (MANAGER_ADDR is then a hint,\n"+
			"optional for managers). Runs until SIGINT or SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	resumed := hasState(f.data)
	var addr string
	switch {
	case len(pos) > 1:
		fmt.Fprintf(stderr, "swarmd join: want one manager address, got %q\n", pos)
		fs.Usage()
		return errUsage
	case len(pos) == 1:
		addr = pos[0]
	case !resumed:
		fmt.Fprintln(stderr, "swarmd join: the manager address is missing")
		fs.Usage()
		return errUsage
	}
	if token == "" && !resumed {
		fmt.Fprintln(stderr, "swarmd join: -token is missing")
		fs.Usage()
		return errUsage
	}
	cfg, closeRT, err := f.config(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeRT()
	cfg.JoinToken = token
	n := swarm.NewNode(cfg)
	stopControl, err := f.control(n, cfg.Runtime)
	if err != nil {
		return err
	}
	defer stopControl()
	if err := n.JoinContext(ctx, addr); err != nil { // SIGTERM stops a hung join
		if errors.Is(err, swarm.ErrInvalidToken) {
			return fmt.Errorf("%w (get a valid one from a manager: 'swarmd init' prints both)", err)
		}
		return err
	}
	if resumed {
		fmt.Fprintf(stdout, "Resumed the swarm stored in %s as a %s.\n", f.data, n.Role())
	} else {
		fmt.Fprintf(stdout, "Joined the swarm at %s as a %s.\n", addr, n.Role())
	}
	printNode(ctx, stdout, n, cfg.Hostname)
	return serve(ctx, stdout, n)
}

// printNode prints the node's identity and, on a manager, both join tokens.
func printNode(ctx context.Context, w io.Writer, n *swarm.Node, hostname string) {
	fmt.Fprintf(w, "  node ID:        %s\n", n.ID())
	fmt.Fprintf(w, "  hostname:       %s\n", hostname)
	fmt.Fprintf(w, "  address:        %s\n", n.Addr())
	fmt.Fprintf(w, "  role:           %s\n", n.Role())
	if n.Role() != swarm.RoleManager {
		return
	}
	// A resumed manager learns the tokens once its Raft log is replayed,
	// which needs a leader: wait a little for them.
	var wtok, mtok string
	err := poll(ctx, 15*time.Second, func() (bool, error) {
		var err error
		if wtok, err = n.JoinToken(swarm.RoleWorker); err != nil {
			return false, nil
		}
		if mtok, err = n.JoinToken(swarm.RoleManager); err != nil {
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		fmt.Fprintf(w, "  join tokens:    not available yet (%v)\n", err)
		return
	}
	fmt.Fprintf(w, "  worker token:   %s\n", wtok)
	fmt.Fprintf(w, "  manager token:  %s\n", mtok)
	fmt.Fprintf(w, "\nTo add a worker:  swarmd join -token %s %s\n", wtok, n.Addr())
	fmt.Fprintf(w, "To add a manager: swarmd join -token %s %s\n", mtok, n.Addr())
}

// serve runs until ctx ends (SIGINT or SIGTERM), then shuts the node down.
func serve(ctx context.Context, w io.Writer, n *swarm.Node) error {
	fmt.Fprintln(w, "\nRunning; SIGINT (Ctrl-C) or SIGTERM stops the node.")
	<-ctx.Done()
	fmt.Fprintln(w, "Shutting down.")
	// Shutdown is a hard stop: the containers keep running and the other
	// nodes see this one vanish; started again with the same -data, the
	// node resumes and re-adopts its containers.
	return n.Shutdown()
}

// poll calls f until it reports done, fails, ctx ends or timeout passes.
// It is how this program waits: a deadline, never a fixed sleep.
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("gave up after %v", timeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
