package swarm

import (
	"time"
)

// Limits on what the public API accepts. Every count, size and string of a
// spec is bounded so that no single call can exhaust a manager's memory,
// grow the replicated state without bound or stall the orchestrator. A
// value beyond a limit is refused with an error wrapping ErrInvalidSpec
// that names the field; the FSM applies the same checks to every service
// command it applies, so an entry written by an older version that broke
// them is refused rather than replayed on every restart.
//
// Where Docker or Swarm document a rule (image references, hostnames,
// healthcheck periods, mount paths), the limit follows it; where they
// have none, it is set far above any real use.
const (
	// MaxReplicas is the largest replica count of a replicated service, and
	// the largest MaxConcurrent and TotalCompletions of a replicated job.
	MaxReplicas = 100_000

	// MaxServiceNameLength is the longest service name (Swarm's 63).
	MaxServiceNameLength = 63

	// MaxImageLength is the longest image reference, name, tag and digest
	// together (Docker caps the name at 255; a tag adds up to 128 and a
	// digest about 72).
	MaxImageLength = 512

	// MaxHostnameLength is the longest Hostname (RFC 1123: 253).
	MaxHostnameLength = 253

	// MaxLabelKeyLength is the longest label key.
	MaxLabelKeyLength = 1024
	// MaxLabelValueLength is the longest label value (128 KiB).
	MaxLabelValueLength = 128 << 10
	// MaxLabels is the most labels in one label map.
	MaxLabels = 1000
	// MaxLabelsSize is the most bytes of keys and values in one label map
	// (256 KiB, as Kubernetes allows for a pod's annotations).
	MaxLabelsSize = 256 << 10

	// MaxEnv is the most entries in a spec's Env.
	MaxEnv = 1000
	// MaxArgs is the most entries in a spec's Command, in its Args, and in
	// a healthcheck's Test.
	MaxArgs = 1000
	// MaxStringLength is the longest single entry of Env, Command, Args,
	// a healthcheck Test, and of the other free-form strings of a spec
	// (Dir, User, mount paths, constraints).
	MaxStringLength = 32 << 10

	// MaxConstraints is the most placement constraints of a spec.
	MaxConstraints = 100
	// MaxPreferences is the most placement preferences of a spec.
	MaxPreferences = 16
	// MaxMounts is the most mounts of a spec.
	MaxMounts = 128
	// MaxPorts is the most published ports of a spec.
	MaxPorts = 1024
	// MaxFileRefs is the most secret references, and the most config
	// references, of a spec.
	MaxFileRefs = 256
	// MaxCapabilities is the most entries in CapAdd, and in CapDrop.
	MaxCapabilities = 64
	// MaxUlimits is the most ulimits of a spec.
	MaxUlimits = 32

	// MaxSpecSize is the largest service spec, JSON-encoded (1 MiB). Every
	// task shares its service's spec, so this bounds the state per
	// service, not per task.
	MaxSpecSize = 1 << 20

	// MinHealthcheckPeriod is the shortest healthcheck interval, timeout
	// and start period (0 means the default); Docker's rule.
	MinHealthcheckPeriod = time.Millisecond
	// MaxHealthcheckRetries is the most healthcheck retries.
	MaxHealthcheckRetries = 1000
)
