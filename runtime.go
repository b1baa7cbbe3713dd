package swarm

import (
	"context"
	"os"
	"time"
)

// Runtime is the only way tasks touch the host: the agent of every node turns
// its assigned tasks into containers through it. NewInmemRuntime simulates
// containers for tests and benchmarks; the Runtime of package
// github.com/podswarm/swarm/podman runs real ones on Podman.
//
// Several nodes may share one Runtime (several in-process nodes on one Podman
// socket): every container carries the podswarm labels (LabelNodeID and
// friends) and a node only ever manages the containers that List returns for
// its own node ID. Implementations must be safe for concurrent use.
type Runtime interface {
	// Info reports the host's capacity and identity. The scheduler places
	// reservations against Info().Resources.
	Info(ctx context.Context) (RuntimeInfo, error)
	// Create makes (but does not start) the container of a task, resolving or
	// pulling its image. A spec the runtime cannot honour is an error wrapping
	// ErrInvalidSpec; the task is then rejected with the error's message.
	Create(ctx context.Context, c ContainerConfig) (id string, err error)
	// Start starts a created container.
	Start(ctx context.Context, id string) error
	// WaitReady blocks until the container runs and, when it has a
	// healthcheck, reports healthy. It fails when the container exits or turns
	// unhealthy first.
	WaitReady(ctx context.Context, id string) error
	// Wait blocks until the container exits or, when it has a healthcheck,
	// turns unhealthy, and reports how it ended.
	Wait(ctx context.Context, id string) (ExitStatus, error)
	// Stop stops the container: the stop signal, then SIGKILL after grace.
	// Stopping a stopped container is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes the container. Removing a missing container is not an error.
	Remove(ctx context.Context, id string) error
	// List returns the containers that belong to nodeID (by LabelNodeID).
	List(ctx context.Context, nodeID string) ([]ContainerInfo, error)
}

// Labels that tie a container to its task; Swarm's own names.
const (
	LabelNodeID      = "com.docker.swarm.node.id"
	LabelServiceID   = "com.docker.swarm.service.id"
	LabelServiceName = "com.docker.swarm.service.name"
	LabelTaskID      = "com.docker.swarm.task.id"
	LabelTaskName    = "com.docker.swarm.task.name"
	LabelTaskSlot    = "com.docker.swarm.task.slot"
	LabelManagedBy   = "io.podswarm.managed"
)

// RuntimeInfo describes a runtime's host.
type RuntimeInfo struct {
	// Name names the runtime ("inmem", "podman").
	Name string
	// Rootless is true when containers run as an unprivileged user.
	Rootless bool
	// Resources is the capacity the scheduler may reserve on this node.
	Resources Resources
	// OS and Arch are the platform of the containers (GOOS / GOARCH spelling).
	OS, Arch string
}

// ContainerConfig is what a runtime needs to create the container of one task.
type ContainerConfig struct {
	// Name is the container name, Swarm style: <service>.<slot>.<task id>
	// (<service>.<node id>.<task id> for global services).
	Name string
	// Labels are the container's labels: the service's ContainerLabels plus
	// the podswarm labels (LabelNodeID, LabelTaskID, ...).
	Labels map[string]string
	// NodeID, ServiceID, ServiceName, TaskID and Slot identify the task.
	NodeID, ServiceID, ServiceName, TaskID string
	// Slot is the replica slot (0 for global services).
	Slot uint64
	// Spec is the task's spec: image, command, mounts, limits and so on.
	Spec ServiceSpec
	// Secrets and Configs are the files of the task's secrets and configs
	// (Spec.Secrets and Spec.Configs with their data), to appear read-only
	// at their Path. A runtime must keep secret data off persistent disks
	// (the Podman runtime stages it on a tmpfs) and fail Create rather than
	// drop one.
	Secrets, Configs []ContainerFile
}

// ContainerFile is a secret or config as a file in a container.
type ContainerFile struct {
	// ID and Name are the secret's (or config's).
	ID, Name string
	// Path is the absolute path of the file in the container.
	Path string
	// UID and GID own the file; Mode is its permission bits (never 0).
	UID, GID uint32
	Mode     os.FileMode
	// Data is the content.
	Data []byte
}

// ExitStatus tells how a container ended.
type ExitStatus struct {
	// ExitCode is the main process's exit code.
	ExitCode int
	// OOMKilled is true when the kernel killed the container for memory.
	OOMKilled bool
	// Unhealthy is true when the container's healthcheck failed (the
	// container may still be running; the agent stops it).
	Unhealthy bool
	// Message is a human-readable reason, if any.
	Message string
}

// ContainerInfo is a container as List finds it.
type ContainerInfo struct {
	ID, Name                  string
	NodeID, ServiceID, TaskID string
	Running                   bool
}
