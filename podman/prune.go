package podman

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	swarm "github.com/podswarm/swarm"
)

// Staged secrets and configs are tracked in memory only, so a process that
// dies between a container's create and its start leaves plaintext on the
// tmpfs until reboot. Two clean-ups find it again: the agent of a node
// removes everything staged for the node when it starts (PruneStaged: it
// has created nothing yet, and a container it made before that was never
// started is removed, not adopted), and NewRuntime removes the
// staged copies of containers that have started or no longer exist.

// stagedOrphanAge is how old a staged directory without a container must
// be before NewRuntime removes it: younger ones may belong to a
// create that another process is making right now.
const stagedOrphanAge = 10 * time.Minute

// PruneStaged removes every secret and config file staged for the
// containers of node nodeID, with the directory that holds them. The
// agent calls it when it starts, before it creates anything; a node's
// files from before a crash go with it.
func (r *Runtime) PruneStaged(nodeID string) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	dir := filepath.Join(podmanFilesDir, stagingName(nodeID))
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the staged secrets and configs of node %s: %w", nodeID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, d := range r.staged {
		if strings.HasPrefix(d, dir+string(filepath.Separator)) {
			delete(r.staged, id)
		}
	}
	return nil
}

// pruneStagedOrphans removes the staged directories no container needs
// any more: those of containers that started (the mount holds the data)
// or are gone. Only a container still in state "created" needs its files.
// Best effort: it runs at connect and must not fail it.
func (r *Runtime) pruneStagedOrphans(ctx context.Context) {
	if !r.host.local {
		return
	}
	nodes, err := os.ReadDir(podmanFilesDir)
	if err != nil || len(nodes) == 0 {
		return
	}
	list, err := containers.List(r.call(ctx), new(containers.ListOptions).WithAll(true).
		WithFilters(map[string][]string{"label": {swarm.LabelNodeID}}))
	if err != nil {
		return
	}
	state := make(map[string]string, len(list))
	for _, c := range list {
		for _, name := range c.Names {
			state[stagingName(strings.TrimPrefix(name, "/"))] = c.State
		}
	}
	now := time.Now()
	old := func(p string) bool {
		fi, err := os.Lstat(p)
		return err == nil && now.Sub(fi.ModTime()) > stagedOrphanAge
	}
	// prune removes a container's directory unless its container still
	// waits to start, or may be being created.
	prune := func(p string) {
		st, exists := state[filepath.Base(p)]
		if (exists && st != "created") || (!exists && old(p)) {
			os.RemoveAll(p)
		}
	}
	for _, e := range nodes {
		p := filepath.Join(podmanFilesDir, e.Name())
		if !e.IsDir() {
			continue
		}
		if strings.Contains(e.Name(), ".") {
			prune(p) // a container directory of the layout without node directories
			continue
		}
		ctrs, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, c := range ctrs {
			prune(filepath.Join(p, c.Name()))
		}
		if len(ctrs) == 0 && old(p) {
			os.Remove(p)
		}
	}
}
