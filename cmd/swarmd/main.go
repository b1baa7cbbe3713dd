// Command swarmd runs a podswarm node as a daemon, or an in-process demo
// cluster. It is built only on the public API of github.com/podswarm/swarm.
//
// Usage:
//
//	swarmd init [flags]                      start a new swarm (or resume one from -data)
//	swarmd join -token TOKEN [flags] ADDR    join the swarm of the manager at ADDR (or resume)
//	swarmd demo [-runtime inmem|podman]      run a 3-manager + 2-worker demo swarm in-process
//
// Run `swarmd <command> -h` for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/podswarm/swarm"
)

const usage = `swarmd runs a podswarm node (Docker Swarm mode as a Go package).

Usage:
  swarmd init [flags]                    start a new swarm, or resume the one in -data
  swarmd join -token TOKEN [flags] ADDR  join the swarm of the manager at ADDR, or resume
  swarmd demo [flags]                    run a 3-manager + 2-worker swarm in this process,
                                         kill a worker and watch its tasks move

Run 'swarmd COMMAND -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one swarmd command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// The first SIGINT/SIGTERM cancels ctx (a clean shutdown); the default
	// handling comes back after it, so a second signal kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()

	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "init":
		err = runInit(ctx, rest, stdout, stderr)
	case "join":
		err = runJoin(ctx, rest, stdout, stderr)
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "swarmd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "swarmd %s: interrupted\n", args[0])
		return 130
	default:
		fmt.Fprintf(stderr, "swarmd %s: %v\n", args[0], err)
		return 1
	}
}

// errUsage means a command line was wrong; the flag set has already said why.
var errUsage = errors.New("usage error")

// runtimeFlags are the flags that choose where tasks run.
type runtimeFlags struct {
	kind      string
	podmanURI string
}

func (f *runtimeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kind, "runtime", "inmem", "where tasks run: inmem (simulated containers) or podman")
	fs.StringVar(&f.podmanURI, "podman-uri", "",
		"Podman API socket for -runtime podman, e.g. unix:///run/user/1001/podman/podman.sock\n"+
			"(default: $CONTAINER_HOST, else $XDG_RUNTIME_DIR/podman/podman.sock, else /run/podman/podman.sock;\n"+
			"scripts/setup.sh --print-uri prints the one setup.sh started)")
}

func (f *runtimeFlags) check() error {
	if f.kind != "inmem" && f.kind != "podman" {
		return fmt.Errorf("-runtime %q: want inmem or podman", f.kind)
	}
	return nil
}

// open returns the runtime the flags name and a function that releases it.
func (f *runtimeFlags) open(ctx context.Context) (swarm.Runtime, func(), error) {
	switch f.kind {
	case "inmem":
		return swarm.NewInmemRuntime(), func() {}, nil
	case "podman":
		rt, closeRT, err := openPodman(ctx, f.podmanURI)
		if err != nil {
			return nil, nil, fmt.Errorf("podman runtime not available: %w\n"+
				"(as root after scripts/setup.sh: -podman-uri \"$(scripts/setup.sh --print-uri)\")", err)
		}
		return rt, closeRT, nil
	}
	return nil, nil, fmt.Errorf("-runtime %q: want inmem or podman", f.kind)
}

// newLogger returns an hclog logger at level ("off" or "" for none).
func newLogger(name, level string, w io.Writer) (hclog.Logger, error) {
	if level == "" || level == "off" {
		return nil, nil
	}
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q: want off, error, warn, info, debug or trace", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: lv, Output: w}), nil
}

// labelsFlag collects repeated -label key=value flags.
type labelsFlag map[string]string

func (l labelsFlag) String() string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (l labelsFlag) Set(s string) error {
	k, v, _ := strings.Cut(s, "=")
	if k == "" {
		return fmt.Errorf("label %q: want key=value", s)
	}
	l[k] = v
	return nil
}

// parseFlags parses args into fs and returns the positional arguments.
// Flags may come after positional arguments too ("join ADDR -token T").
// Flag errors become errUsage: the flag set has printed the message and
// its usage already.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil // "--" ends the flags
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}
