package swarm

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
)

// The checks of this file enforce the limits of limits.go. validateSpec
// runs them first, so a spec too large to be worth looking at is refused
// before anything else parses it.

var (
	// imageRE is the character set of a Docker image reference
	// (registry[:port]/path[:tag][@digest]); the runtime resolves the rest.
	imageRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@+-]*$`)
	// hostnameRE is RFC 1123's alphabet (underscores tolerated, as Docker does).
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$`)
	// volumeNameRE is Docker's rule for named volumes.
	volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// signalRE matches signal names and numbers (SIGTERM, TERM, 15, SIGRTMIN+3).
	signalRE = regexp.MustCompile(`^[a-zA-Z0-9+]{1,32}$`)
	// capabilityRE matches capability names (NET_ADMIN, CAP_SYS_TIME, ALL).
	capabilityRE = regexp.MustCompile(`^[a-zA-Z_0-9]{1,64}$`)
)

// validateBounds checks the sizes and counts of a spec against limits.go,
// and the syntax of its strings.
func validateBounds(spec *ServiceSpec) error {
	name := spec.Name
	m := spec.Mode
	for _, c := range []struct {
		field string
		v     uint64
	}{{"mode.replicas", m.Replicas}, {"mode.max_concurrent", m.MaxConcurrent}, {"mode.total_completions", m.TotalCompletions}} {
		if c.v > MaxReplicas {
			return invalidf("service %q: %s %d exceeds the limit of %d", name, c.field, c.v, MaxReplicas)
		}
	}
	for _, u := range []struct {
		which string
		c     *UpdateConfig
	}{{"update_config", spec.UpdateConfig}, {"rollback_config", spec.RollbackConfig}} {
		if u.c != nil && u.c.Parallelism > MaxReplicas {
			return invalidf("service %q: %s.parallelism %d exceeds the limit of %d", name, u.which, u.c.Parallelism, MaxReplicas)
		}
	}
	if err := validateImage(name, spec.Image); err != nil {
		return err
	}
	if h := spec.Hostname; h != "" {
		if err := validateHostname(h); err != nil {
			return fmt.Errorf("service %q: %w", name, err)
		}
	}
	if err := validateLabels("service "+quote(name)+": labels", spec.Labels); err != nil {
		return err
	}
	if err := validateLabels("service "+quote(name)+": container_labels", spec.ContainerLabels); err != nil {
		return err
	}
	if err := validateStrings(name, "command", spec.Command, MaxArgs); err != nil {
		return err
	}
	if err := validateStrings(name, "args", spec.Args, MaxArgs); err != nil {
		return err
	}
	if err := validateStrings(name, "env", spec.Env, MaxEnv); err != nil {
		return err
	}
	for _, e := range spec.Env {
		k, _, _ := strings.Cut(e, "=")
		if strings.IndexFunc(k, unicode.IsSpace) >= 0 {
			return invalidf("service %q: env %q: the variable name contains whitespace", name, k)
		}
	}
	if d := spec.Dir; d != "" {
		if err := checkString(d, MaxStringLength); err != nil {
			return invalidf("service %q: dir: %v", name, err)
		}
		if !path.IsAbs(d) {
			return invalidf("service %q: dir %q: the working directory must be an absolute path", name, d)
		}
	}
	if u := spec.User; u != "" {
		if len(u) > 256 || strings.IndexFunc(u, notPrintableOrSpace) >= 0 {
			return invalidf("service %q: user %q: at most 256 printable characters without whitespace", name, trunc(u))
		}
	}
	if s := spec.StopSignal; s != "" && !signalRE.MatchString(s) {
		return invalidf("service %q: stop_signal %q is not a signal name or number", name, trunc(s))
	}
	for _, c := range []struct {
		field string
		v     []string
	}{{"cap_add", spec.CapAdd}, {"cap_drop", spec.CapDrop}} {
		if len(c.v) > MaxCapabilities {
			return invalidf("service %q: %s has %d entries, more than the limit of %d", name, c.field, len(c.v), MaxCapabilities)
		}
		for _, v := range c.v {
			if !capabilityRE.MatchString(v) {
				return invalidf("service %q: %s %q is not a capability name", name, c.field, trunc(v))
			}
		}
	}
	pl := spec.Placement
	if len(pl.Constraints) > MaxConstraints {
		return invalidf("service %q: placement.constraints has %d entries, more than the limit of %d", name, len(pl.Constraints), MaxConstraints)
	}
	if err := validateStrings(name, "placement.constraints", pl.Constraints, MaxConstraints); err != nil {
		return err
	}
	if len(pl.Preferences) > MaxPreferences {
		return invalidf("service %q: placement.preferences has %d entries, more than the limit of %d", name, len(pl.Preferences), MaxPreferences)
	}
	for _, c := range []struct {
		field    string
		n, limit int
	}{
		{"mounts", len(spec.Mounts), MaxMounts}, {"ports", len(spec.Ports), MaxPorts},
		{"secrets", len(spec.Secrets), MaxFileRefs}, {"configs", len(spec.Configs), MaxFileRefs},
		{"ulimits", len(spec.Ulimits), MaxUlimits},
	} {
		if c.n > c.limit {
			return invalidf("service %q: %s has %d entries, more than the limit of %d", name, c.field, c.n, c.limit)
		}
	}
	if err := validateMounts(spec); err != nil {
		return err
	}
	if err := validatePortSet(spec); err != nil {
		return err
	}
	if err := validateHealthcheck(name, spec.Healthcheck); err != nil {
		return err
	}
	// Last, as it costs the most: the whole spec's size.
	if b, err := json.Marshal(spec); err != nil {
		return invalidf("service %q: spec does not encode: %v", name, err)
	} else if len(b) > MaxSpecSize {
		return invalidf("service %q: spec is %d bytes encoded, more than the limit of %d", name, len(b), MaxSpecSize)
	}
	return nil
}

func validateImage(svc, image string) error {
	switch {
	case len(image) > MaxImageLength:
		return invalidf("service %q: image is %d characters, more than the limit of %d", svc, len(image), MaxImageLength)
	case !imageRE.MatchString(image) || strings.Contains(image, "//"):
		return invalidf("service %q: image %q is not a valid reference (no whitespace or control characters; [a-zA-Z0-9._/:@+-])", svc, trunc(image))
	}
	return nil
}

// validateHostname checks a container's or a node's hostname.
func validateHostname(h string) error {
	if len(h) > MaxHostnameLength {
		return invalidf("hostname is %d characters, more than the limit of %d", len(h), MaxHostnameLength)
	}
	if !hostnameRE.MatchString(h) {
		return invalidf("hostname %q: only [a-zA-Z0-9_.-] allowed, starting and ending with a letter or digit", trunc(h))
	}
	return nil
}

// validateLabels bounds a label map; what names the map in errors.
func validateLabels(what string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalidf("%s: %d labels, more than the limit of %d", what, len(labels), MaxLabels)
	}
	total := 0
	// In key order: the message of a refusal inside Apply is replicated
	// (the dedupe table), so it must not depend on map iteration order.
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		switch {
		case k == "":
			return invalidf("%s: empty label key", what)
		case len(k) > MaxLabelKeyLength:
			return invalidf("%s: key %q... is %d bytes, more than the limit of %d", what, trunc(k), len(k), MaxLabelKeyLength)
		case strings.IndexFunc(k, notPrintableOrSpace) >= 0:
			return invalidf("%s: key %q contains whitespace or control characters", what, trunc(k))
		case len(v) > MaxLabelValueLength:
			return invalidf("%s: value of %q is %d bytes, more than the limit of %d", what, trunc(k), len(v), MaxLabelValueLength)
		}
		total += len(k) + len(v)
	}
	if total > MaxLabelsSize {
		return invalidf("%s: %d bytes of keys and values, more than the limit of %d", what, total, MaxLabelsSize)
	}
	return nil
}

// validateStrings bounds a list of strings that end up in an exec call or
// a parser: their count, their length, and no NUL.
func validateStrings(svc, field string, v []string, limit int) error {
	if len(v) > limit {
		return invalidf("service %q: %s has %d entries, more than the limit of %d", svc, field, len(v), limit)
	}
	for i, s := range v {
		if err := checkString(s, MaxStringLength); err != nil {
			return invalidf("service %q: %s[%d]: %v", svc, field, i, err)
		}
	}
	return nil
}

func checkString(s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%d bytes, more than the limit of %d", len(s), limit)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("contains a NUL byte")
	}
	return nil
}

// validateMounts checks mount paths the way Docker does: absolute, clean
// targets other than "/", each used once, and absolute bind sources.
func validateMounts(spec *ServiceSpec) error {
	targets := map[string]int{}
	for i, m := range spec.Mounts {
		if err := checkString(m.Target, MaxStringLength); err != nil {
			return invalidf("service %q: mounts[%d].target: %v", spec.Name, i, err)
		}
		if err := checkString(m.Source, MaxStringLength); err != nil {
			return invalidf("service %q: mounts[%d].source: %v", spec.Name, i, err)
		}
		t := m.Target
		switch {
		case !path.IsAbs(t):
			return invalidf("service %q: mounts[%d].target %q is not an absolute path", spec.Name, i, trunc(t))
		case path.Clean(t) != t:
			return invalidf("service %q: mounts[%d].target %q is not a clean path (want %q)", spec.Name, i, trunc(t), path.Clean(t))
		case t == "/":
			return invalidf("service %q: mounts[%d].target cannot be /", spec.Name, i)
		}
		if j, dup := targets[t]; dup {
			return invalidf("service %q: mounts[%d].target %q is also the target of mounts[%d]", spec.Name, i, t, j)
		}
		targets[t] = i
		switch m.Type {
		case MountBind:
			if m.Source != "" && !path.IsAbs(m.Source) {
				return invalidf("service %q: mounts[%d].source %q: a bind mount's source must be an absolute path", spec.Name, i, trunc(m.Source))
			}
		case MountVolume:
			if m.Source != "" && (len(m.Source) > 255 || !volumeNameRE.MatchString(m.Source)) {
				return invalidf("service %q: mounts[%d].source %q is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", spec.Name, i, trunc(m.Source))
			}
		}
		if m.TmpfsSizeBytes < 0 {
			return invalidf("service %q: mounts[%d].tmpfs_size is negative", spec.Name, i)
		}
	}
	return nil
}

// validatePortSet refuses two ports published on the same host port and
// protocol: the second could never bind.
func validatePortSet(spec *ServiceSpec) error {
	seen := map[string]int{}
	for i, p := range spec.Ports {
		if p.PublishedPort == 0 {
			continue
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		key := fmt.Sprintf("%d/%s", p.PublishedPort, proto)
		if j, dup := seen[key]; dup {
			return invalidf("service %q: ports[%d]: published port %s is also published by ports[%d]", spec.Name, i, key, j)
		}
		seen[key] = i
	}
	return nil
}

// validateHealthcheck applies Docker's rules: a test that runs something,
// periods of 0 (the default) or at least MinHealthcheckPeriod.
func validateHealthcheck(svc string, h *Healthcheck) error {
	if h == nil {
		return nil
	}
	if err := validateStrings(svc, "healthcheck.test", h.Test, MaxArgs); err != nil {
		return err
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
			if len(h.Test) > 1 {
				return invalidf("service %q: healthcheck.test: NONE takes no arguments", svc)
			}
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 || h.Test[1] == "" {
				return invalidf("service %q: healthcheck.test: %s needs a command", svc, h.Test[0])
			}
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
		if d.v != 0 && d.v < MinHealthcheckPeriod {
			return invalidf("service %q: healthcheck.%s %v: must be 0 (the default) or at least %v", svc, d.field, d.v, MinHealthcheckPeriod)
		}
	}
	if h.Retries > MaxHealthcheckRetries {
		return invalidf("service %q: healthcheck.retries %d exceeds the limit of %d", svc, h.Retries, MaxHealthcheckRetries)
	}
	return nil
}

func notPrintableOrSpace(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }

func quote(s string) string { return fmt.Sprintf("%q", s) }

// trunc shortens a string quoted in an error message, so a 1 MiB input
// does not make a 1 MiB error.
func trunc(s string) string { return truncN(s, 64) }

func truncN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
