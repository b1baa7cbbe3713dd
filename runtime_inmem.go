package swarm

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var _ Runtime = (*InmemRuntime)(nil)

// Image names with a meaning to InmemRuntime, so tests need no SetBehavior.
const (
	// InmemImageExitPrefix prefixes images whose containers exit right after
	// starting with the code that follows: "inmem/exit:3" exits with 3.
	InmemImageExitPrefix = "inmem/exit:"
	// InmemImageFailCreate is an image that does not exist: Create fails with
	// a plain "image not found" error (not ErrInvalidSpec).
	InmemImageFailCreate = "inmem/fail-create"
)

// InmemBehavior is how one simulated container behaves. SetBehavior decides
// it per container at Create.
type InmemBehavior struct {
	// StartDelay is how long the container takes to run after Start. Zero
	// means the runtime's SetStartDelay value; negative means no delay.
	StartDelay time.Duration
	// RunFor is how long the container runs before it exits on its own with
	// ExitCode. Zero means it runs until stopped or crashed; negative means
	// it exits right after starting.
	RunFor time.Duration
	// ExitCode is the exit code when RunFor elapses.
	ExitCode int
	// CreateError, when set, makes Create fail with it. Wrap ErrInvalidSpec
	// when it stands for a spec problem, so the task is rejected.
	CreateError error
	// StartError, when set, makes Start fail with it; the container then
	// counts as exited with code 128.
	StartError error
	// Unhealthy makes a container whose spec has a Healthcheck turn unhealthy
	// as soon as it runs: WaitReady fails and Wait returns Unhealthy. It has
	// no effect without a Healthcheck.
	Unhealthy bool
}

// InmemRuntime is a Runtime that simulates containers in memory, for tests
// and benchmarks. Several nodes may share one; containers outlive the nodes
// that made them, as real ones outlive a restarted daemon.
//
// Containers run until stopped unless SetStartDelay, SetBehavior or the
// image says otherwise: "inmem/exit:N" exits with code N right after it starts
// (WaitReady still succeeds: it did run) and "inmem/fail-create" fails Create
// with "image not found".
//
// Start returns at once; the container runs after its start delay, which
// WaitReady waits for. Stop makes a container exit with 128 plus the number of
// its spec's StopSignal (143, SIGTERM, by default) without a grace wait.
// Crash, CrashTask and CrashNode make containers exit on demand.
//
// Timers are armed only while a container starts or runs for a bounded time,
// and stopped when it exits, so an idle InmemRuntime has no goroutines.
// InmemRuntime is safe for concurrent use.
type InmemRuntime struct {
	mu         sync.Mutex
	resources  Resources
	startDelay time.Duration
	behavior   func(ContainerConfig) InmemBehavior
	created    int
	containers map[string]*inmemContainer            // by ID
	byNode     map[string]map[string]*inmemContainer // node ID -> ID -> container
	names      map[string]string                     // name -> ID
}

type inmemState int

const (
	inmemCreated inmemState = iota
	inmemStarting
	inmemRunning
	inmemExited
)

type inmemContainer struct {
	id, node, task, service string
	cfg                     ContainerConfig
	beh                     InmemBehavior
	state                   inmemState
	ran                     bool // reached running, even if briefly
	unhealthy               bool
	status                  ExitStatus
	timer                   *time.Timer
	gen                     uint64        // invalidates timers that fired late
	ready                   chan struct{} // closed on running or exit, whichever first
	done                    chan struct{} // closed on exit
	unhealthyCh             chan struct{} // nil unless the container can turn unhealthy
}

// NewInmemRuntime returns an empty InmemRuntime with 4 CPUs and 8 GiB of
// capacity, no start delay and containers that run until stopped.
func NewInmemRuntime() *InmemRuntime {
	return &InmemRuntime{
		resources:  Resources{NanoCPUs: 4e9, MemoryBytes: 8 << 30},
		containers: make(map[string]*inmemContainer),
		byNode:     make(map[string]map[string]*inmemContainer),
		names:      make(map[string]string),
	}
}

// SetResources sets the capacity Info reports.
func (r *InmemRuntime) SetResources(res Resources) {
	r.mu.Lock()
	r.resources = res
	r.mu.Unlock()
}

// SetStartDelay sets how long containers created afterwards take to run
// after Start (unless their InmemBehavior says otherwise).
func (r *InmemRuntime) SetStartDelay(d time.Duration) {
	r.mu.Lock()
	r.startDelay = d
	r.mu.Unlock()
}

// SetBehavior sets the function that decides, at Create, how each container
// behaves; nil restores the default (run until stopped). The function is
// called without locks held and may be called concurrently.
func (r *InmemRuntime) SetBehavior(fn func(ContainerConfig) InmemBehavior) {
	r.mu.Lock()
	r.behavior = fn
	r.mu.Unlock()
}

// Info reports the runtime's name "inmem", the platform of the test binary
// and the capacity set by SetResources.
func (r *InmemRuntime) Info(ctx context.Context) (RuntimeInfo, error) {
	if err := ctx.Err(); err != nil {
		return RuntimeInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return RuntimeInfo{Name: "inmem", Resources: r.resources, OS: runtime.GOOS, Arch: runtime.GOARCH}, nil
}

// Create records a new container, created but not running. Its node, service
// and task come from the podswarm labels, else from c's fields.
func (r *InmemRuntime) Create(ctx context.Context, c ContainerConfig) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	img := c.Spec.Image
	if img == "" {
		return "", invalidf("container %q: Spec.Image is empty", c.Name)
	}
	r.mu.Lock()
	fn, delay := r.behavior, r.startDelay
	r.mu.Unlock()

	var b InmemBehavior
	if fn != nil {
		b = fn(c)
	}
	switch {
	case b.CreateError != nil:
		return "", b.CreateError
	case img == InmemImageFailCreate:
		return "", fmt.Errorf("inmem: image not found: %s", img)
	case strings.HasPrefix(img, InmemImageExitPrefix):
		code, err := strconv.Atoi(strings.TrimPrefix(img, InmemImageExitPrefix))
		if err != nil {
			return "", invalidf("container %q: Spec.Image %q: bad exit code", c.Name, img)
		}
		b.RunFor, b.ExitCode = -1, code
	}
	if b.StartDelay == 0 {
		b.StartDelay = delay
	}

	ct := &inmemContainer{
		id:      newInmemID(),
		node:    labelOr(c.Labels, LabelNodeID, c.NodeID),
		task:    labelOr(c.Labels, LabelTaskID, c.TaskID),
		service: labelOr(c.Labels, LabelServiceID, c.ServiceID),
		cfg:     c,
		beh:     b,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	ct.cfg.Labels = maps.Clone(c.Labels)
	ct.cfg.Secrets, ct.cfg.Configs = cloneFiles(c.Secrets), cloneFiles(c.Configs)
	if b.Unhealthy && c.Spec.Healthcheck != nil {
		ct.unhealthyCh = make(chan struct{})
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Name != "" {
		if other, ok := r.names[c.Name]; ok {
			return "", fmt.Errorf("%w: container name %q is in use by %s", ErrNameConflict, c.Name, other)
		}
		r.names[c.Name] = ct.id
	}
	r.created++
	r.containers[ct.id] = ct
	if r.byNode[ct.node] == nil {
		r.byNode[ct.node] = make(map[string]*inmemContainer)
	}
	r.byNode[ct.node][ct.id] = ct
	return ct.id, nil
}

// Start starts a created container and returns without waiting for its start
// delay; WaitReady waits for it. Starting a starting or running container
// does nothing; starting an exited one is an error (tasks are never revived).
func (r *InmemRuntime) Start(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.get(id)
	if err != nil {
		return err
	}
	switch c.state {
	case inmemStarting, inmemRunning:
		return nil
	case inmemExited:
		return fmt.Errorf("inmem: container %s has exited", id)
	}
	if c.beh.StartError != nil {
		r.exit(c, 128, c.beh.StartError.Error())
		return fmt.Errorf("inmem: start container %s: %w", id, c.beh.StartError)
	}
	if c.beh.StartDelay <= 0 {
		r.run(c)
		return nil
	}
	c.state = inmemStarting
	r.arm(c, c.beh.StartDelay, func() { r.run(c) })
	return nil
}

// WaitReady blocks until the container runs. It fails if the container exited
// before it ran, or turned unhealthy.
func (r *InmemRuntime) WaitReady(ctx context.Context, id string) error {
	c, err := r.lookup(id)
	if err != nil {
		return err
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case c.unhealthy:
		return fmt.Errorf("inmem: container %s is unhealthy", id)
	case !c.ran:
		return fmt.Errorf("inmem: container %s exited before it ran (exit code %d: %s)",
			id, c.status.ExitCode, c.status.Message)
	}
	return nil
}

// Wait blocks until the container exits or turns unhealthy and reports how it
// ended. Any number of callers may wait on one container.
func (r *InmemRuntime) Wait(ctx context.Context, id string) (ExitStatus, error) {
	c, err := r.lookup(id)
	if err != nil {
		return ExitStatus{}, err
	}
	select {
	case <-c.done:
	case <-c.unhealthyCh:
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.state == inmemExited {
		return c.status, nil
	}
	return ExitStatus{Unhealthy: true, Message: "container is unhealthy"}, nil
}

// Stop makes the container exit at once with 128 plus its stop signal's
// number (143 by default), cancelling a pending start. Stopping an exited or
// unknown container is not an error.
func (r *InmemRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		r.exit(c, stopExitCode(c.cfg.Spec.StopSignal), "stopped")
	}
	return nil
}

// Remove stops the container if needed and deletes it. Removing an unknown
// container is not an error.
func (r *InmemRuntime) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil
	}
	r.exit(c, stopExitCode(c.cfg.Spec.StopSignal), "removed")
	delete(r.containers, id)
	if delete(r.byNode[c.node], id); len(r.byNode[c.node]) == 0 {
		delete(r.byNode, c.node)
	}
	if r.names[c.cfg.Name] == id {
		delete(r.names, c.cfg.Name)
	}
	return nil
}

// List returns the containers of nodeID, sorted by name.
func (r *InmemRuntime) List(ctx context.Context, nodeID string) ([]ContainerInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return sortedInfos(r.byNode[nodeID]), nil
}

// Crash makes a starting or running container exit now with exitCode. The
// error wraps ErrNotFound for an unknown container.
func (r *InmemRuntime) Crash(containerID string, exitCode int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.get(containerID)
	if err != nil {
		return err
	}
	if !c.live() {
		return fmt.Errorf("inmem: container %s is not running", containerID)
	}
	r.exit(c, exitCode, "crashed")
	return nil
}

// CrashTask crashes, like Crash, the starting or running containers of the
// task. The error wraps ErrNotFound when the task has no container.
func (r *InmemRuntime) CrashTask(taskID string, exitCode int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	found, crashed := false, false
	for _, c := range r.containers { // a test helper: a scan is cheap enough
		if taskID == "" || c.task != taskID {
			continue
		}
		if found = true; c.live() {
			r.exit(c, exitCode, "crashed")
			crashed = true
		}
	}
	switch {
	case !found:
		return fmt.Errorf("%w: inmem: no container for task %q", ErrNotFound, taskID)
	case !crashed:
		return fmt.Errorf("inmem: no running container for task %q", taskID)
	}
	return nil
}

// CrashNode crashes every starting or running container of the node with
// exit code 137, as if the machine lost power.
func (r *InmemRuntime) CrashNode(nodeID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.byNode[nodeID] {
		if c.live() {
			r.exit(c, 137, "crashed")
		}
	}
}

// Containers returns every container of every node, sorted by name.
func (r *InmemRuntime) Containers() []ContainerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sortedInfos(r.containers)
}

// Running counts the running containers of nodeID ("" counts all nodes).
func (r *InmemRuntime) Running(nodeID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.containers
	if nodeID != "" {
		cs = r.byNode[nodeID]
	}
	n := 0
	for _, c := range cs {
		if c.state == inmemRunning {
			n++
		}
	}
	return n
}

// Container returns the container with the given ID.
func (r *InmemRuntime) Container(id string) (ContainerInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return ContainerInfo{}, false
	}
	return c.info(), true
}

// Config returns the configuration the container was created with,
// secrets and configs included (tests inspect what a task's container got).
func (r *InmemRuntime) Config(id string) (ContainerConfig, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return ContainerConfig{}, false
	}
	cfg := c.cfg
	cfg.Labels = maps.Clone(cfg.Labels)
	cfg.Secrets = cloneFiles(cfg.Secrets)
	cfg.Configs = cloneFiles(cfg.Configs)
	return cfg, true
}

func cloneFiles(fs []ContainerFile) []ContainerFile {
	out := slices.Clone(fs)
	for i := range out {
		out[i].Data = slices.Clone(out[i].Data)
	}
	return out
}

// Created returns how many containers were ever created, removed ones
// included; tests use it to assert no task ran twice.
func (r *InmemRuntime) Created() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.created
}

// lookup is get with r.mu taken.
func (r *InmemRuntime) lookup(id string) (*inmemContainer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.get(id)
}

// get returns the container or an error wrapping ErrNotFound. r.mu is held.
func (r *InmemRuntime) get(id string) (*inmemContainer, error) {
	c, ok := r.containers[id]
	if !ok {
		return nil, fmt.Errorf("%w: inmem: no container %q", ErrNotFound, id)
	}
	return c, nil
}

// arm replaces the container's timer with one that runs fn under r.mu after
// d, unless the container changed state in between (exit and arm bump gen,
// so a timer that fired while Stop held the lock does nothing). r.mu is held.
func (r *InmemRuntime) arm(c *inmemContainer, d time.Duration, fn func()) {
	c.gen++
	gen := c.gen
	c.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if c.gen == gen {
			c.timer = nil
			fn()
		}
	})
}

// run moves the container to running. r.mu is held.
func (r *InmemRuntime) run(c *inmemContainer) {
	c.state, c.ran = inmemRunning, true
	close(c.ready)
	if c.unhealthyCh != nil {
		c.unhealthy = true
		close(c.unhealthyCh)
	}
	switch {
	case c.beh.RunFor < 0:
		r.exit(c, c.beh.ExitCode, "exited")
	case c.beh.RunFor > 0:
		r.arm(c, c.beh.RunFor, func() { r.exit(c, c.beh.ExitCode, "exited") })
	}
}

// exit ends the container unless it has ended already. r.mu is held.
func (r *InmemRuntime) exit(c *inmemContainer, code int, msg string) {
	if c.state == inmemExited {
		return
	}
	c.gen++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.state != inmemRunning {
		close(c.ready)
	}
	c.state = inmemExited
	c.status = ExitStatus{ExitCode: code, Unhealthy: c.unhealthy, Message: msg}
	close(c.done)
}

// live reports whether the container is starting or running.
func (c *inmemContainer) live() bool { return c.state == inmemStarting || c.state == inmemRunning }

func (c *inmemContainer) info() ContainerInfo {
	return ContainerInfo{ID: c.id, Name: c.cfg.Name, NodeID: c.node, ServiceID: c.service,
		TaskID: c.task, Running: c.state == inmemRunning}
}

// sortedInfos describes the containers, sorted by name. r.mu is held.
func sortedInfos(cs map[string]*inmemContainer) []ContainerInfo {
	out := make([]ContainerInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.info())
	}
	slices.SortFunc(out, func(a, b ContainerInfo) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out
}

func labelOr(labels map[string]string, key, fallback string) string {
	if v, ok := labels[key]; ok && v != "" {
		return v
	}
	return fallback
}

func newInmemID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// stopExitCode is the exit code (128 + signal number) of a process stopped
// by sig, as a shell reports it; "" and unknown signals mean SIGTERM.
func stopExitCode(sig string) int {
	s := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 128 {
		return 128 + n
	}
	nums := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12}
	return 128 + cmp.Or(nums[s], 15)
}
