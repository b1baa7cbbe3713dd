package podman

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/common/pkg/capabilities"
	"github.com/containers/common/pkg/signal"
	"github.com/containers/image/v5/manifest"
	"github.com/containers/podman/v4/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	swarm "github.com/podswarm/swarm"
)

// defaultStopGrace is Swarm's stop grace period.
const defaultStopGrace = 10 * time.Second

// minMemoryLimit is Docker's smallest memory limit.
const minMemoryLimit = 6 << 20

// defaultRlimits are set on every container unless its spec sets them:
// Podman otherwise raises nofile and nproc to values that fail on hosts with
// lower hard limits, and containers.conf's default_ulimits is not applied to
// containers created through the API by Podman 4.3.
var defaultRlimits = []swarm.Ulimit{
	{Name: "nofile", Soft: 1024, Hard: 1024},
	{Name: "nproc", Soft: 4096, Hard: 4096},
}

// rlimitNames are the ulimit names Docker accepts.
var rlimitNames = map[string]bool{
	"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true,
	"memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true,
	"rss": true, "rtprio": true, "rttime": true, "sigpending": true, "stack": true,
}

// podmanSpec translates a task's container config into Podman's spec. Every
// ServiceSpec field that concerns the container is either honoured or an
// error wrapping ErrInvalidSpec that names it; the fields that concern the
// orchestrator (Mode, Placement, Reservations, RestartPolicy, ForceUpdate,
// the service's own Labels) are not the runtime's.
func podmanSpec(c swarm.ContainerConfig, h podmanHost) (*specgen.SpecGenerator, error) {
	sp := c.Spec
	if sp.Image == "" {
		return nil, invalidf("image is required")
	}
	s := specgen.NewSpecGenerator(sp.Image, false)
	s.Name = c.Name

	s.Labels = make(map[string]string, len(c.Labels)+6)
	for k, v := range c.Labels {
		s.Labels[k] = v
	}
	// The labels List and a restarted agent rely on, whatever the caller set.
	for k, v := range map[string]string{
		swarm.LabelNodeID: c.NodeID, swarm.LabelServiceID: c.ServiceID, swarm.LabelServiceName: c.ServiceName,
		swarm.LabelTaskID: c.TaskID,
	} {
		if _, ok := s.Labels[k]; !ok && v != "" {
			s.Labels[k] = v
		}
	}
	if _, ok := s.Labels[swarm.LabelTaskSlot]; !ok && c.Slot != 0 {
		s.Labels[swarm.LabelTaskSlot] = fmt.Sprint(c.Slot)
	}
	if _, ok := s.Labels[swarm.LabelManagedBy]; !ok {
		s.Labels[swarm.LabelManagedBy] = "true"
	}

	if len(sp.Command) > 0 {
		s.Entrypoint = append([]string(nil), sp.Command...)
	}
	if len(sp.Args) > 0 {
		s.Command = append([]string(nil), sp.Args...)
	}
	if len(sp.Env) > 0 {
		s.Env = make(map[string]string, len(sp.Env))
		for i, kv := range sp.Env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, invalidf("env[%d] %q: want KEY=value (the Podman runtime cannot unset an image's variable)", i, kv)
			}
			s.Env[k] = v
		}
	}
	s.User = sp.User
	if sp.Dir != "" {
		if !path.IsAbs(sp.Dir) {
			return nil, invalidf("dir %q: the working directory must be an absolute path", sp.Dir)
		}
		s.WorkDir = sp.Dir
	}
	s.Hostname = sp.Hostname

	if err := podmanMounts(s, sp.Mounts, h); err != nil {
		return nil, err
	}
	if err := podmanResources(s, sp, h); err != nil {
		return nil, err
	}
	rl, err := podmanRlimits(sp.Ulimits)
	if err != nil {
		return nil, err
	}
	s.Rlimits = rl

	if sp.StopSignal != "" {
		sig, err := signal.ParseSignalNameOrNumber(sp.StopSignal)
		if err != nil {
			return nil, invalidf("stop_signal %q: %v", sp.StopSignal, err)
		}
		s.StopSignal = &sig
	}
	grace := defaultStopGrace
	if sp.StopGracePeriod != nil {
		grace = *sp.StopGracePeriod
		if grace < 0 {
			return nil, invalidf("stop_grace_period %v: must not be negative", grace)
		}
	}
	secs := uint(math.Ceil(grace.Seconds())) // Podman counts whole seconds
	s.StopTimeout = &secs

	s.Init = sp.Init
	s.ReadOnlyFilesystem = sp.ReadOnly
	if s.CapAdd, err = podmanCaps("cap_add", sp.CapAdd); err != nil {
		return nil, err
	}
	if s.CapDrop, err = podmanCaps("cap_drop", sp.CapDrop); err != nil {
		return nil, err
	}
	if s.HealthConfig, err = podmanHealth(sp.Healthcheck); err != nil {
		return nil, err
	}
	if s.PortMappings, err = podmanPorts(sp.Ports); err != nil {
		return nil, err
	}
	return s, nil
}

// podmanMounts adds bind mounts and tmpfs (spec mounts) and volumes.
func podmanMounts(s *specgen.SpecGenerator, mounts []swarm.Mount, h podmanHost) error {
	targets := map[string]int{}
	for i, m := range mounts {
		name := fmt.Sprintf("mounts[%d] (%s %s)", i, m.Type, m.Target)
		if !path.IsAbs(m.Target) {
			return invalidf("%s: target must be an absolute path", name)
		}
		tgt := path.Clean(m.Target)
		if j, dup := targets[tgt]; dup {
			return invalidf("%s: target is also the target of mounts[%d]", name, j)
		}
		targets[tgt] = i
		if m.Type != swarm.MountTmpfs && m.TmpfsSizeBytes != 0 {
			return invalidf("%s: tmpfs size is only for tmpfs mounts", name)
		}
		rw := "rw"
		if m.ReadOnly {
			rw = "ro"
		}
		switch m.Type {
		case swarm.MountBind:
			if !filepath.IsAbs(m.Source) {
				return invalidf("%s: bind source %q must be an absolute host path", name, m.Source)
			}
			if h.local {
				if _, err := os.Stat(m.Source); errors.Is(err, fs.ErrNotExist) {
					return invalidf("%s: bind source %s does not exist", name, m.Source)
				} else if err != nil {
					return invalidf("%s: bind source %s: %v", name, m.Source, err)
				}
			}
			s.Mounts = append(s.Mounts, spec.Mount{
				Type: "bind", Source: m.Source, Destination: tgt,
				Options: []string{"rbind", rw},
			})
		case swarm.MountVolume:
			if strings.ContainsRune(m.Source, '/') {
				return invalidf("%s: volume name %q must not contain '/' (use a bind mount for host paths)", name, m.Source)
			}
			// An empty name is an anonymous volume, removed with the container.
			s.Volumes = append(s.Volumes, &specgen.NamedVolume{Name: m.Source, Dest: tgt, Options: []string{rw}})
		case swarm.MountTmpfs:
			if m.Source != "" {
				return invalidf("%s: a tmpfs mount has no source (got %q)", name, m.Source)
			}
			if m.TmpfsSizeBytes < 0 {
				return invalidf("%s: tmpfs size must not be negative", name)
			}
			opts := []string{rw}
			if m.TmpfsSizeBytes > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", m.TmpfsSizeBytes))
			}
			s.Mounts = append(s.Mounts, spec.Mount{Type: "tmpfs", Source: "tmpfs", Destination: tgt, Options: opts})
		default:
			return invalidf("%s: unknown mount type %q (want bind, volume or tmpfs)", name, m.Type)
		}
	}
	return nil
}

// podmanResources sets CPU, memory and pids limits, or says why this host
// cannot: a rootless Podman on cgroup v1 ignores every cgroup limit, and on
// cgroup v2 it needs the controller delegated to the user.
func podmanResources(s *specgen.SpecGenerator, sp swarm.ServiceSpec, h podmanHost) error {
	lim := sp.Resources.Limits
	switch {
	case lim.NanoCPUs < 0:
		return invalidf("resources.limits.nano_cpus %d: must not be negative", lim.NanoCPUs)
	case lim.MemoryBytes < 0:
		return invalidf("resources.limits.memory_bytes %d: must not be negative", lim.MemoryBytes)
	case lim.MemoryBytes > 0 && lim.MemoryBytes < minMemoryLimit:
		return invalidf("resources.limits.memory_bytes %d: the minimum is 6 MiB", lim.MemoryBytes)
	case sp.PidsLimit < 0:
		return invalidf("pids_limit %d: must not be negative (0 means no limit)", sp.PidsLimit)
	}
	need := map[string]string{}
	if lim.NanoCPUs > 0 {
		need["cpu"] = "resources.limits.nano_cpus"
	}
	if lim.MemoryBytes > 0 {
		need["memory"] = "resources.limits.memory_bytes"
	}
	if sp.PidsLimit > 0 {
		need["pids"] = "pids_limit"
	}
	if len(need) == 0 {
		return nil
	}
	if h.rootless {
		for _, ctl := range []string{"cpu", "memory", "pids"} {
			field, ok := need[ctl]
			if !ok {
				continue
			}
			if h.cgroupV1 {
				return invalidf("%s: rootless Podman cannot enforce cgroup limits on this cgroup v1 host (it needs cgroup v2)", field)
			}
			if !slices.Contains(h.controllers, ctl) {
				return invalidf("%s: the cgroup %s controller is not delegated to the rootless Podman user", field, ctl)
			}
		}
	}
	res := &spec.LinuxResources{}
	if lim.NanoCPUs > 0 {
		period := uint64(100000) // CFS period in µs, as Docker
		quota := lim.NanoCPUs * int64(period) / 1e9
		if quota < 1000 {
			quota = 1000 // the kernel's minimum quota, 1 ms
		}
		res.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
	}
	if lim.MemoryBytes > 0 {
		mem := lim.MemoryBytes
		res.Memory = &spec.LinuxMemory{Limit: &mem}
	}
	if sp.PidsLimit > 0 {
		res.Pids = &spec.LinuxPids{Limit: sp.PidsLimit}
	}
	s.ResourceLimits = res
	return nil
}

// podmanRlimits translates ulimits (-1 is unlimited; Podman wants the name
// without "RLIMIT_") and adds the defaults
// for nofile and nproc.
func podmanRlimits(ulimits []swarm.Ulimit) ([]spec.POSIXRlimit, error) {
	seen := map[string]bool{}
	var out []spec.POSIXRlimit
	conv := func(v int64) uint64 {
		if v == -1 {
			return math.MaxUint64 // RLIM_INFINITY
		}
		return uint64(v)
	}
	for i, u := range ulimits {
		name := strings.ToLower(strings.TrimPrefix(strings.ToUpper(u.Name), "RLIMIT_"))
		switch {
		case !rlimitNames[name]:
			return nil, invalidf("ulimits[%d] %q: unknown ulimit name", i, u.Name)
		case seen[name]:
			return nil, invalidf("ulimits[%d] %q: set twice", i, u.Name)
		case u.Soft < -1 || u.Hard < -1:
			return nil, invalidf("ulimits[%d] %q: negative limit (-1 means unlimited)", i, u.Name)
		case conv(u.Soft) > conv(u.Hard):
			return nil, invalidf("ulimits[%d] %q: soft limit %d is above hard limit %d", i, u.Name, u.Soft, u.Hard)
		}
		seen[name] = true
		out = append(out, spec.POSIXRlimit{Type: name, Soft: conv(u.Soft), Hard: conv(u.Hard)})
	}
	for _, u := range defaultRlimits {
		if !seen[u.Name] {
			out = append(out, spec.POSIXRlimit{Type: u.Name, Soft: conv(u.Soft), Hard: conv(u.Hard)})
		}
	}
	return out, nil
}

// podmanCaps normalizes capability names ("NET_ADMIN" -> "CAP_NET_ADMIN", "ALL").
func podmanCaps(field string, caps []string) ([]string, error) {
	if len(caps) == 0 {
		return nil, nil
	}
	out, err := capabilities.NormalizeCapabilities(caps)
	if err != nil {
		return nil, invalidf("%s: %v", field, err)
	}
	return out, nil
}

// podmanHealth translates a healthcheck, with Docker's defaults for zero
// values. ["NONE"] disables the image's healthcheck.
func podmanHealth(hc *swarm.Healthcheck) (*manifest.Schema2HealthConfig, error) {
	if hc == nil {
		return nil, nil
	}
	if len(hc.Test) == 0 {
		return nil, invalidf("healthcheck.test is empty (want [\"CMD\", prog, args...], [\"CMD-SHELL\", command] or [\"NONE\"])")
	}
	switch hc.Test[0] {
	case "NONE":
		if len(hc.Test) > 1 {
			return nil, invalidf("healthcheck.test: NONE takes no arguments")
		}
		return &manifest.Schema2HealthConfig{Test: []string{"NONE"}}, nil
	case "CMD", "CMD-SHELL":
		if len(hc.Test) < 2 || hc.Test[1] == "" {
			return nil, invalidf("healthcheck.test: %s needs a command", hc.Test[0])
		}
	default:
		return nil, invalidf("healthcheck.test[0] %q: want CMD, CMD-SHELL or NONE", hc.Test[0])
	}
	switch {
	case hc.Interval < 0:
		return nil, invalidf("healthcheck.interval %v: must not be negative", hc.Interval)
	case hc.Timeout < 0:
		return nil, invalidf("healthcheck.timeout %v: must not be negative", hc.Timeout)
	case hc.StartPeriod < 0:
		return nil, invalidf("healthcheck.start_period %v: must not be negative", hc.StartPeriod)
	case hc.Retries < 0:
		return nil, invalidf("healthcheck.retries %d: must not be negative", hc.Retries)
	}
	out := &manifest.Schema2HealthConfig{
		Test:        append([]string(nil), hc.Test...),
		Interval:    hc.Interval,
		Timeout:     hc.Timeout,
		StartPeriod: hc.StartPeriod,
		Retries:     hc.Retries,
	}
	if out.Interval == 0 {
		out.Interval = defaultHealthInterval
	}
	if out.Timeout == 0 {
		out.Timeout = defaultHealthTimeout
	}
	if out.Retries == 0 {
		out.Retries = defaultHealthRetries
	}
	return out, nil
}

// podmanPorts publishes host-mode ports. The routing mesh (ingress mode,
// Swarm's default) is not there yet, so it is refused rather than dropped.
func podmanPorts(ports []swarm.PortConfig) ([]nettypes.PortMapping, error) {
	var out []nettypes.PortMapping
	for i, p := range ports {
		switch p.PublishMode {
		case swarm.PublishHost:
		case swarm.PublishIngress, "":
			return nil, invalidf("ports[%d] (%d): publish mode ingress (the routing mesh, Swarm's default) is not supported yet; use publish mode host", i, p.TargetPort)
		default:
			return nil, invalidf("ports[%d]: unknown publish mode %q", i, p.PublishMode)
		}
		proto := strings.ToLower(p.Protocol)
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp", "sctp":
		default:
			return nil, invalidf("ports[%d]: unknown protocol %q (want tcp, udp or sctp)", i, p.Protocol)
		}
		if p.TargetPort == 0 || p.TargetPort > 65535 {
			return nil, invalidf("ports[%d]: target port %d out of range 1-65535", i, p.TargetPort)
		}
		if p.PublishedPort > 65535 {
			return nil, invalidf("ports[%d]: published port %d out of range 0-65535", i, p.PublishedPort)
		}
		// PublishedPort 0 lets Podman pick a free host port, as Docker does.
		out = append(out, nettypes.PortMapping{
			ContainerPort: uint16(p.TargetPort), HostPort: uint16(p.PublishedPort), Protocol: proto,
		})
	}
	return out, nil
}
