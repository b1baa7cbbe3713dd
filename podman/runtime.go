package podman

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/libpod/define"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/podman/v4/pkg/bindings/system"
	"github.com/containers/podman/v4/pkg/errorhandling"
	"github.com/containers/storage/pkg/idtools"

	swarm "github.com/podswarm/swarm"
)

// ErrNoPodman means no Podman API socket answered: NewRuntime's error
// wraps it and says which sockets it tried.
var ErrNoPodman = errors.New("podman: no Podman API socket")

// Runtime is a [swarm.Runtime], keeps its containers' logs and prunes the
// files it staged.
var (
	_ swarm.Runtime     = (*Runtime)(nil)
	_ swarm.LogRuntime  = (*Runtime)(nil)
	_ swarm.StagePruner = (*Runtime)(nil)
)

// connectTimeout caps NewRuntime's first contact with the socket when
// the caller's context has no deadline of its own.
const connectTimeout = 30 * time.Second

// Runtime runs tasks as containers of a Podman API service (`podman
// system service`), rootless when the service runs as an unprivileged user.
// It talks to the service through Podman's Go bindings; every call uses the
// caller's context for cancellation. It is safe for concurrent use, and
// several nodes may share one.
//
// Podman's own healthcheck timers need systemd, which rootless services on
// hosts without a systemd user session do not have, so Runtime runs
// the healthchecks of the containers it starts or waits for itself, on the
// healthcheck's interval, through the healthcheck API (what the timer would
// run). Close stops them.
type Runtime struct {
	uri  string
	conn context.Context // carries the bindings' connection; read for its values only
	info swarm.RuntimeInfo
	host podmanHost

	base   context.Context // parent of the healthcheck drivers; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	health map[string]*healthWatch // by full container ID
	staged map[string]string       // full container ID -> staged secrets and configs ([Runtime.stageFiles])
}

// podmanHost is what the spec translation needs to know about the service's host.
type podmanHost struct {
	rootless bool
	// cgroupV1 is true on cgroup v1 (and hybrid) hosts, where a rootless
	// Podman cannot apply cgroup limits at all.
	cgroupV1 bool
	// controllers are the cgroup v2 controllers available to the service.
	controllers []string
	// local is true when the socket is a unix socket: bind sources are then
	// paths of this host and are checked before the container is created.
	local bool
	// uidMap and gidMap are the service's user namespace mappings (empty
	// for a rootful service), for the owners of secret and config files.
	uidMap, gidMap []idtools.IDMap
}

// podmanCallCtx is a per-call context: cancellation and deadline from the caller,
// values (the bindings' connection) from the runtime's connection context
// first, then from the caller.
type podmanCallCtx struct {
	context.Context
	conn context.Context
}

func (c podmanCallCtx) Value(key any) any {
	if v := c.conn.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// podmanValuesOnly hides the values of a context, so the connection context
// bindings.NewConnection derives from it carries nothing of the caller's.
type podmanValuesOnly struct{ context.Context }

func (podmanValuesOnly) Value(any) any { return nil }

func (r *Runtime) call(ctx context.Context) context.Context {
	return podmanCallCtx{Context: ctx, conn: r.conn}
}

// podmanCandidate is a socket NewRuntime may try, with where it came from.
type podmanCandidate struct{ from, uri string }

// podmanCandidates lists the sockets to try, in Podman's own order:
// CONTAINER_HOST alone when set, else the user's socket under
// XDG_RUNTIME_DIR, else the system socket.
func podmanCandidates() []podmanCandidate {
	if v := os.Getenv("CONTAINER_HOST"); v != "" {
		return []podmanCandidate{{"CONTAINER_HOST", v}}
	}
	var c []podmanCandidate
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		c = append(c, podmanCandidate{"$XDG_RUNTIME_DIR", "unix://" + filepath.Join(d, "podman", "podman.sock")})
	}
	return append(c, podmanCandidate{"system socket", "unix:///run/podman/podman.sock"})
}

// unixSocketPath returns the path of a unix:// URI ("" for other schemes),
// accepting unix://path as the bindings do.
func unixSocketPath(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "unix" {
		return ""
	}
	if u.Host != "" {
		return "/" + u.Host + u.Path
	}
	return u.Path
}

// NewRuntime connects to the Podman API service at uri
// ("unix:///run/user/1000/podman/podman.sock", "tcp://host:port", "ssh://...").
// With uri "" it finds the socket as podman does: $CONTAINER_HOST if set,
// else $XDG_RUNTIME_DIR/podman/podman.sock, else /run/podman/podman.sock.
// When none answers the error wraps ErrNoPodman, lists what was tried and
// says how to start a service.
func NewRuntime(ctx context.Context, uri string) (*Runtime, error) {
	cands := []podmanCandidate{{"uri", uri}}
	if uri == "" {
		cands = podmanCandidates()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	var tried []string
	for _, c := range cands {
		r, err := connectPodman(ctx, c.uri)
		if err == nil {
			return r, nil
		}
		tried = append(tried, fmt.Sprintf("%s %s: %v", c.from, c.uri, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: tried %s; start one as the user that should own the containers with "+
		"`podman system service --time=0 unix://$XDG_RUNTIME_DIR/podman/podman.sock &` "+
		"(or run scripts/setup.sh as root) and point CONTAINER_HOST at it",
		ErrNoPodman, strings.Join(tried, "; "))
}

func connectPodman(ctx context.Context, uri string) (*Runtime, error) {
	path := unixSocketPath(uri)
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, err
		}
	}
	conn, err := bindings.NewConnection(podmanValuesOnly{ctx}, uri)
	if err != nil {
		return nil, err
	}
	r := &Runtime{uri: uri, conn: conn, health: map[string]*healthWatch{}}
	info, err := system.Info(r.call(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("podman info: %w", err)
	}
	if info.Host == nil {
		return nil, errors.New("podman info: no host information")
	}
	h := info.Host
	r.host = podmanHost{
		rootless:    h.Security.Rootless,
		cgroupV1:    h.CgroupsVersion != "v2",
		controllers: h.CgroupControllers,
		local:       path != "",
		uidMap:      h.IDMappings.UIDMap,
		gidMap:      h.IDMappings.GIDMap,
	}
	osName := h.OS
	if osName == "" {
		osName = "linux"
	}
	r.info = swarm.RuntimeInfo{
		Name:     "podman",
		Rootless: h.Security.Rootless,
		Resources: swarm.Resources{
			NanoCPUs:    int64(h.CPUs) * 1e9,
			MemoryBytes: h.MemTotal,
		},
		OS:   osName,
		Arch: h.Arch,
	}
	r.base, r.cancel = context.WithCancel(context.Background())
	r.pruneStagedOrphans(ctx)
	return r, nil
}

// URI returns the address of the Podman API service.
func (r *Runtime) URI() string { return r.uri }

// Rootless reports whether the service runs as an unprivileged user, so its
// containers' root is not the host's root.
func (r *Runtime) Rootless() bool { return r.info.Rootless }

// Close stops the healthcheck drivers and releases idle connections. The
// containers keep running. Idempotent; other methods fail after it.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	if c, err := bindings.GetClient(r.conn); err == nil && c.Client != nil {
		c.Client.CloseIdleConnections()
	}
	return nil
}

func (r *Runtime) checkOpen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("%w: podman runtime closed", swarm.ErrShutdown)
	}
	return nil
}

// Info reports the service's host: rootless or not, its CPUs and memory (as
// read when the runtime connected) and platform.
func (r *Runtime) Info(ctx context.Context) (swarm.RuntimeInfo, error) {
	if err := r.checkOpen(); err != nil {
		return swarm.RuntimeInfo{}, err
	}
	return r.info, ctx.Err()
}

// podmanErr maps a bindings error onto the package's sentinels: 404 is
// ErrNotFound, a name in use is ErrNameConflict.
func podmanErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		switch {
		case em.ResponseCode == 404:
			return fmt.Errorf("%s: %w: %s", what, swarm.ErrNotFound, em.Message)
		case strings.Contains(em.Message, "already in use"): // 409 or 500, by version
			return fmt.Errorf("%s: %w: %s", what, swarm.ErrNameConflict, em.Message)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// apiCode returns the HTTP status of a bindings error (0 if it has none).
func apiCode(err error) int {
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		return em.ResponseCode
	}
	return 0
}

// imageError is a failed image lookup: its message is the one the task is
// rejected with, and it matches ErrNotFound and the pull's error.
type imageError struct {
	ref   string
	cause error
}

func (e *imageError) Error() string {
	return fmt.Sprintf("image %s not found locally and pull failed: %v", e.ref, e.cause)
}

func (e *imageError) Unwrap() []error { return []error{swarm.ErrNotFound, e.cause} }

// ensureImage makes the image available: the local one if present, else pulled.
func (r *Runtime) ensureImage(ctx context.Context, ref string) error {
	ok, err := images.Exists(ctx, ref, nil)
	if err != nil {
		return podmanErr(err, "look up image %s", ref)
	}
	if ok {
		return nil
	}
	if _, err := images.Pull(ctx, ref, new(images.PullOptions).WithQuiet(true)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &imageError{ref: ref, cause: err}
	}
	return nil
}

// Create makes the container of a task: the image (local, else pulled) and
// the spec translated for Podman. A spec Podman cannot honour on this host is
// an error wrapping ErrInvalidSpec that names the field; nothing is dropped
// silently (Podman's create warnings, which mean it ignored something, fail
// the create too).
func (r *Runtime) Create(ctx context.Context, c swarm.ContainerConfig) (string, error) {
	if err := r.checkOpen(); err != nil {
		return "", err
	}
	s, err := podmanSpec(c, r.host)
	if err != nil {
		return "", err
	}
	// The image first: a pull can take minutes, and the secrets should
	// sit on the tmpfs for as short a time as possible.
	cctx := r.call(ctx)
	if err := r.ensureImage(cctx, c.Spec.Image); err != nil {
		return "", err
	}
	dir, err := r.stageFiles(c, s)
	if err != nil {
		return "", err
	}
	created := false
	defer func() {
		if !created && dir != "" {
			os.RemoveAll(dir)
		}
	}()
	resp, err := containers.CreateWithSpec(cctx, s, nil)
	if err != nil {
		if apiCode(err) == 400 { // Podman rejected the spec itself
			return "", invalidf("container %s: %v", c.Name, err)
		}
		return "", podmanErr(err, "create container %s", c.Name)
	}
	if len(resp.Warnings) > 0 {
		_ = r.Remove(context.WithoutCancel(ctx), resp.ID)
		return "", invalidf("container %s: Podman would not honour the spec: %s", c.Name, strings.Join(resp.Warnings, "; "))
	}
	created = true
	r.trackStaged(resp.ID, dir)
	return resp.ID, nil
}

// Start starts a created container (a running one is left alone) and, when
// it has a healthcheck, starts running it.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	cctx := r.call(ctx)
	if err := containers.Start(cctx, id, nil); err != nil {
		return podmanErr(err, "start container %s", id)
	}
	// The container's mounts now hold its secrets and configs: unlink the
	// staged copies (if that fails, Remove tries again).
	_ = r.dropStaged(id)
	data, err := containers.Inspect(cctx, id, nil)
	if err != nil {
		return podmanErr(err, "inspect container %s", id)
	}
	if hc := healthConfigOf(data); hc != nil && data.State.Running {
		r.watchHealth(data.ID, hc, data.State.Health)
	}
	return nil
}

// Stop sends the container's stop signal, then SIGKILL after grace (Podman
// counts whole seconds: grace is rounded up). A stopped container is fine; a
// missing one is an error wrapping ErrNotFound.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	secs := uint(0)
	if grace > 0 {
		secs = uint(math.Ceil(grace.Seconds()))
	}
	err := containers.Stop(r.call(ctx), id, new(containers.StopOptions).WithTimeout(secs))
	if err != nil {
		if code := apiCode(err); code == 304 || (code == 409 && strings.Contains(err.Error(), "stopped")) {
			return nil
		}
		return r.ctxOr(ctx, podmanErr(err, "stop container %s", id))
	}
	return nil
}

// Remove kills and deletes the container and its anonymous volumes (as
// Swarm does) and stops running its healthcheck. A missing container is fine.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	r.dropHealth(id)
	if err := r.dropStaged(id); err != nil {
		return err
	}
	opts := new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true).WithTimeout(0)
	reports, err := containers.Remove(r.call(ctx), id, opts)
	if err != nil {
		if apiCode(err) == 404 {
			return nil
		}
		return r.ctxOr(ctx, podmanErr(err, "remove container %s", id))
	}
	for _, rep := range reports {
		if rep != nil && rep.Err != nil {
			if errors.Is(podmanErr(rep.Err, ""), swarm.ErrNotFound) || strings.Contains(rep.Err.Error(), "no such container") {
				continue
			}
			return fmt.Errorf("remove container %s: %w", id, rep.Err)
		}
	}
	return nil
}

// List returns the containers, in any state, labelled as belonging to
// nodeID (LabelNodeID). With nodeID "" it returns every container that has
// the label at all.
func (r *Runtime) List(ctx context.Context, nodeID string) ([]swarm.ContainerInfo, error) {
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	filter := swarm.LabelNodeID
	if nodeID != "" {
		filter += "=" + nodeID
	}
	opts := new(containers.ListOptions).WithAll(true).WithFilters(map[string][]string{"label": {filter}})
	list, err := containers.List(r.call(ctx), opts)
	if err != nil {
		return nil, r.ctxOr(ctx, podmanErr(err, "list containers"))
	}
	out := make([]swarm.ContainerInfo, 0, len(list))
	for _, c := range list {
		if nodeID != "" && c.Labels[swarm.LabelNodeID] != nodeID {
			continue // belt and braces: the filter must be exact
		}
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0]
		}
		out = append(out, swarm.ContainerInfo{
			ID:        c.ID,
			Name:      name,
			NodeID:    c.Labels[swarm.LabelNodeID],
			ServiceID: c.Labels[swarm.LabelServiceID],
			TaskID:    c.Labels[swarm.LabelTaskID],
			Running:   c.State == define.ContainerStateRunning.String(),
		})
	}
	return out, nil
}

// HostPID returns the host's PID of the container's main process, 0 when it
// is not running. Tests and debugging use it to look at the process from
// the host (its user, cgroups, limits).
func (r *Runtime) HostPID(ctx context.Context, id string) (int, error) {
	if err := r.checkOpen(); err != nil {
		return 0, err
	}
	data, err := containers.Inspect(r.call(ctx), id, nil)
	if err != nil {
		return 0, r.ctxOr(ctx, podmanErr(err, "inspect container %s", id))
	}
	if !data.State.Running {
		return 0, nil
	}
	return data.State.Pid, nil
}
