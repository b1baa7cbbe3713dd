package swarm

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Constraint operators, Swarm's only two.
const (
	opEq = "=="
	opNe = "!="
)

// Label key prefixes of constraints; the label name after the prefix is
// case-sensitive, the prefix itself is not (as in SwarmKit).
const (
	nodeLabelPrefix   = "node.labels."
	engineLabelPrefix = "engine.labels."
)

// constraintKeys are the fixed (non-label) constraint keys, in their
// canonical lower-case spelling.
var constraintKeys = [...]string{
	"node.id", "node.hostname", "node.role", "node.ip",
	"node.platform.os", "node.platform.arch",
}

// constraint is one parsed placement constraint, "key op value". key is in
// canonical form: fixed keys and label prefixes lower-cased, label names as
// written; value is trimmed. Formatting key+op+value and parsing it again
// yields the same constraint.
type constraint struct {
	key   string
	op    string // opEq or opNe
	value string
}

// String returns the constraint as an expression that parses back to it.
func (c constraint) String() string { return c.key + c.op + c.value }

// parseConstraints parses Swarm constraint expressions ("node.role==manager",
// "node.labels.zone != east"). Any malformed expression is an error wrapping
// ErrInvalidSpec that names it; nil or empty input gives no constraints.
func parseConstraints(exprs []string) ([]constraint, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	out := make([]constraint, 0, len(exprs))
	for _, e := range exprs {
		c, problem := parseConstraint(e)
		if problem != "" {
			return nil, invalidf("invalid constraint %q: %s", e, problem)
		}
		out = append(out, c)
	}
	return out, nil
}

// parseConstraint parses one expression. It returns a non-empty problem
// description instead of an error so that callers choose the wrapping.
func parseConstraint(expr string) (constraint, string) {
	// The earliest operator wins; whatever follows it must be a plain value,
	// so "a==b!=c" and "a!=b==c" are both rejected by the value check.
	op, i := opEq, strings.Index(expr, opEq)
	if j := strings.Index(expr, opNe); j >= 0 && (i < 0 || j < i) {
		op, i = opNe, j
	}
	if i < 0 {
		return constraint{}, `missing operator (want "==" or "!=")`
	}
	key := strings.TrimSpace(expr[:i])
	value := strings.TrimSpace(expr[i+len(op):])
	if key == "" {
		return constraint{}, "empty key"
	}
	if value == "" {
		return constraint{}, "empty value"
	}
	canon, problem := canonicalKey(key)
	if problem != "" {
		return constraint{}, problem
	}
	if !validConstraintValue(value) {
		return constraint{}, fmt.Sprintf("invalid value %q", value)
	}
	if canon == "node.ip" {
		if _, err := netip.ParseAddr(value); err != nil {
			if _, err := netip.ParsePrefix(value); err != nil {
				return constraint{}, fmt.Sprintf("invalid IP address or CIDR %q", value)
			}
		}
	}
	return constraint{key: canon, op: op, value: value}, ""
}

// canonicalKey validates a constraint key and returns its canonical form, or
// a problem description.
func canonicalKey(key string) (string, string) {
	// ASCII only, so that Unicode case folding ("ſ" folds to "s") cannot
	// make an odd spelling match a known key.
	if !validKeyChars(key) {
		return "", fmt.Sprintf("invalid key %q", key)
	}
	for _, k := range constraintKeys {
		if strings.EqualFold(key, k) {
			return k, ""
		}
	}
	for _, prefix := range [...]string{nodeLabelPrefix, engineLabelPrefix} {
		if len(key) < len(prefix) || !strings.EqualFold(key[:len(prefix)], prefix) {
			continue
		}
		name := key[len(prefix):]
		if name == "" {
			return "", fmt.Sprintf("empty label name in key %q", key)
		}
		return prefix + name, ""
	}
	return "", fmt.Sprintf("unknown key %q", key)
}

// validKeyChars reports whether name uses only the characters SwarmKit
// allows in constraint keys: ASCII letters, digits, '-', '_' and '.'.
func validKeyChars(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// validConstraintValue reports whether v uses only the characters SwarmKit
// allows in constraint values (its valuePattern): letters, digits, ASCII
// whitespace and ":-_.*()?+[]\^$|/". Operator characters such as '=', '!',
// '<', '>' and '~' are excluded, which keeps "a==b==c" from parsing.
func validConstraintValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(":-_.*()?+[]\\^$|/ \t\n\f\r", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// matches reports whether node n satisfies the constraint. Values compare
// case-insensitively; a label the node lacks fails "==" and passes "!=". A
// nil node or an unknown key matches nothing.
func (c constraint) matches(n *NodeInfo) bool {
	if n == nil {
		return false
	}
	switch c.key {
	case "node.id":
		return c.test(n.ID)
	case "node.hostname":
		return c.test(n.Hostname)
	case "node.role":
		return c.test(string(n.Role))
	case "node.platform.os":
		return c.test(n.Platform.OS)
	case "node.platform.arch":
		return c.test(n.Platform.Arch)
	case "node.ip":
		return c.matchIP(n.Addr)
	}
	switch {
	case strings.HasPrefix(c.key, nodeLabelPrefix):
		return c.testLabel(n.Labels, c.key[len(nodeLabelPrefix):])
	case strings.HasPrefix(c.key, engineLabelPrefix):
		return c.testLabel(n.EngineLabels, c.key[len(engineLabelPrefix):])
	}
	return false
}

// test applies the operator to a node's value.
func (c constraint) test(v string) bool {
	return strings.EqualFold(c.value, v) == (c.op == opEq)
}

// testLabel applies the operator to a label, which may be missing.
func (c constraint) testLabel(labels map[string]string, name string) bool {
	v, ok := labels[name]
	if !ok {
		return c.op == opNe
	}
	return c.test(v)
}

// matchIP applies a node.ip constraint to the host part of the node's
// address. A node whose address is not an IP is outside every address and
// subnet; a malformed constraint value matches no node, as in SwarmKit.
func (c constraint) matchIP(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	known := err == nil
	ip = ip.WithZone("")
	var in bool
	if want, err := netip.ParseAddr(c.value); err == nil {
		in = known && want.WithZone("").Unmap() == ip.Unmap()
	} else if p, err := netip.ParsePrefix(c.value); err == nil {
		p = p.Masked()
		in = known && (p.Contains(ip) || p.Contains(ip.Unmap()))
	} else {
		return false
	}
	return in == (c.op == opEq)
}

// spreadKey is a parsed placement preference: the label whose values the
// tasks are spread over.
type spreadKey struct {
	engine bool   // engine.labels.X rather than node.labels.X
	name   string // X, case-sensitive
}

// value returns the node's value of the label; a node without the label
// gives "", which puts it in one group with the other nodes lacking it.
func (k spreadKey) value(n *NodeInfo) string {
	if k.engine {
		return n.EngineLabels[k.name]
	}
	return n.Labels[k.name]
}

// parseSpread parses a preference's Spread descriptor, "node.labels.X" or
// "engine.labels.X" (the prefix case-insensitive, X case-sensitive, as in
// SwarmKit); ok is false for anything else.
func parseSpread(descriptor string) (k spreadKey, ok bool) {
	if !validKeyChars(descriptor) {
		return spreadKey{}, false
	}
	for _, prefix := range [...]string{nodeLabelPrefix, engineLabelPrefix} {
		if len(descriptor) > len(prefix) && strings.EqualFold(descriptor[:len(prefix)], prefix) {
			return spreadKey{engine: prefix == engineLabelPrefix, name: descriptor[len(prefix):]}, true
		}
	}
	return spreadKey{}, false
}

// spreadKeys returns the spec's placement preferences as label keys, in
// order. Preferences that do not parse are skipped, as SwarmKit skips them
// (validatePreferences keeps them out of new specs).
func spreadKeys(spec *ServiceSpec) []spreadKey {
	if spec == nil || len(spec.Placement.Preferences) == 0 {
		return nil
	}
	keys := make([]spreadKey, 0, len(spec.Placement.Preferences))
	for _, p := range spec.Placement.Preferences {
		if k, ok := parseSpread(p.Spread); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// validatePreferences checks placement preferences: each must spread over
// a node or engine label. The error wraps ErrInvalidSpec and names the bad
// preference.
func validatePreferences(prefs []PlacementPreference) error {
	for i, p := range prefs {
		if _, ok := parseSpread(p.Spread); !ok {
			return invalidf("placement preference %d: cannot spread over %q (want node.labels.<name> or engine.labels.<name>)", i+1, p.Spread)
		}
	}
	return nil
}
