package swarm

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// constraintNode is the node the constraint tests match against.
func constraintNode() *NodeInfo {
	return &NodeInfo{
		ID:           "n1abc",
		Hostname:     "Worker-1",
		Addr:         "10.1.2.3:2377",
		Role:         RoleWorker,
		Availability: AvailabilityActive,
		State:        NodeReady,
		Labels:       map[string]string{"zone": "East", "Disk": "ssd", "empty": ""},
		EngineLabels: map[string]string{"gpu": "true"},
		Platform:     Platform{OS: "linux", Arch: "amd64"},
	}
}

// TestParseConstraints covers every key, both operators and the canonical form.
func TestParseConstraints(t *testing.T) {
	tests := []struct {
		expr string
		want constraint
	}{
		{"node.id==abc", constraint{"node.id", opEq, "abc"}},
		{"node.id!=abc", constraint{"node.id", opNe, "abc"}},
		{"  node.hostname  ==  web-1  ", constraint{"node.hostname", opEq, "web-1"}},
		{"NODE.ROLE==Manager", constraint{"node.role", opEq, "Manager"}},
		{"node.ip==10.0.0.1", constraint{"node.ip", opEq, "10.0.0.1"}},
		{"node.ip!=10.0.0.0/8", constraint{"node.ip", opNe, "10.0.0.0/8"}},
		{"node.ip==2001:db8::1", constraint{"node.ip", opEq, "2001:db8::1"}},
		{"node.ip==2001:db8::/32", constraint{"node.ip", opEq, "2001:db8::/32"}},
		{"node.platform.os==linux", constraint{"node.platform.os", opEq, "linux"}},
		{"Node.Platform.Arch!=arm64", constraint{"node.platform.arch", opNe, "arm64"}},
		{"node.labels.zone==east", constraint{"node.labels.zone", opEq, "east"}},
		{"NODE.LABELS.Zone==east", constraint{"node.labels.Zone", opEq, "east"}},
		{"engine.labels.gpu!=false", constraint{"engine.labels.gpu", opNe, "false"}},
		{"node.labels.a.b-c_d==x y", constraint{"node.labels.a.b-c_d", opEq, "x y"}},
		{"node.hostname==web-*", constraint{"node.hostname", opEq, "web-*"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := parseConstraints([]string{tt.expr})
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, tt.want, got[0])
		})
	}
}

// TestParseConstraintsEmpty covers no and several expressions.
func TestParseConstraintsEmpty(t *testing.T) {
	got, err := parseConstraints(nil)
	require.NoError(t, err)
	assert.Empty(t, got)

	got, err = parseConstraints([]string{"node.role==manager", "node.labels.zone!=east"})
	require.NoError(t, err)
	assert.Equal(t, []constraint{{"node.role", opEq, "manager"}, {"node.labels.zone", opNe, "east"}}, got)
}

// TestParseConstraintsErrors covers malformed expressions.
func TestParseConstraintsErrors(t *testing.T) {
	tests := []struct {
		expr    string
		wantMsg string
	}{
		{"node.foo==x", `invalid constraint "node.foo==x": unknown key "node.foo"`},
		{"zone==x", `unknown key "zone"`},
		{"node.labels==x", `unknown key "node.labels"`},
		{"node.labels.==x", `empty label name in key "node.labels."`},
		{"engine.labels.==x", `empty label name`},
		{"node.role", `missing operator`},
		{"node.role=manager", `missing operator`},
		{"node.labels.x>=5", `missing operator`},
		{"node.labels.x<5", `missing operator`},
		{"node.labels.x~=5", `missing operator`},
		{"", `missing operator`},
		{"==x", `empty key`},
		{"  != x", `empty key`},
		{"node.role==", `empty value`},
		{"node.role==   ", `empty value`},
		{"node.role==manager==worker", `invalid value "manager==worker"`},
		{"node.role!=a==b", `invalid value "a==b"`},
		{"node.role===manager", `invalid value "=manager"`},
		{"node.role==a!b", `invalid value "a!b"`},
		{"node.role==a<b", `invalid value "a<b"`},
		{"node.labels.a b==x", `invalid key "node.labels.a b"`},
		{"node.hoſtname==x", `invalid key`},
		{"node.ip==10.0.0.300", `invalid IP address or CIDR "10.0.0.300"`},
		{"node.ip==10.0.0.0/33", `invalid IP address or CIDR`},
		{"node.ip==host.example", `invalid IP address or CIDR`},
		{"node.ip!=10.0.0.0/", `invalid IP address or CIDR`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := parseConstraints([]string{"node.role==manager", tt.expr})
			require.Error(t, err)
			assert.Nil(t, got)
			assert.True(t, errors.Is(err, ErrInvalidSpec), "error %v does not wrap ErrInvalidSpec", err)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assert.Contains(t, err.Error(), `invalid constraint "`)
		})
	}
}

// TestConstraintMatches matches every key against one node.
func TestConstraintMatches(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{"node.id==n1abc", true},
		{"node.id==N1ABC", true},
		{"node.id!=n1abc", false},
		{"node.id==other", false},
		{"node.id!=other", true},
		{"node.hostname==worker-1", true},
		{"node.hostname!=WORKER-1", false},
		{"node.role==worker", true},
		{"node.role==WORKER", true},
		{"node.role==manager", false},
		{"node.role!=manager", true},
		{"node.platform.os==Linux", true},
		{"node.platform.os!=linux", false},
		{"node.platform.arch==amd64", true},
		{"node.platform.arch==arm64", false},
		{"node.platform.arch!=arm64", true},
		{"node.ip==10.1.2.3", true},
		{"node.ip!=10.1.2.3", false},
		{"node.ip==10.1.2.4", false},
		{"node.ip==::ffff:10.1.2.3", true},
		{"node.ip==10.0.0.0/8", true},
		{"node.ip==10.1.2.0/24", true},
		{"node.ip==10.1.3.0/24", false},
		{"node.ip!=10.1.3.0/24", true},
		{"node.ip!=10.0.0.0/8", false},
		{"node.ip==10.1.2.99/16", true},
		{"node.ip==2001:db8::/32", false},
		{"node.ip!=2001:db8::/32", true},
		{"node.labels.zone==east", true},
		{"node.labels.zone==EAST", true},
		{"node.labels.zone!=east", false},
		{"node.labels.zone==west", false},
		{"node.labels.zone!=west", true},
		{"node.labels.Zone==east", false}, // label names are case-sensitive
		{"node.labels.Zone!=east", true},
		{"node.labels.disk==ssd", false},
		{"node.labels.Disk==SSD", true},
		{"node.labels.missing==x", false},
		{"node.labels.missing!=x", true},
		{"node.labels.empty==x", false},
		{"node.labels.empty!=x", true},
		{"engine.labels.gpu==true", true},
		{"engine.labels.gpu!=true", false},
		{"engine.labels.zone==east", false}, // node labels are not engine labels
		{"engine.labels.zone!=east", true},
		{"node.labels.gpu==true", false},
	}
	n := constraintNode()
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			cs, err := parseConstraints([]string{tt.expr})
			require.NoError(t, err)
			require.Len(t, cs, 1)
			assert.Equal(t, tt.want, cs[0].matches(n))
		})
	}
}

// TestConstraintMatchesIPAddrForms covers node.ip against the forms of Addr.
func TestConstraintMatchesIPAddrForms(t *testing.T) {
	tests := []struct {
		addr string
		expr string
		want bool
	}{
		{"[2001:db8::5]:2377", "node.ip==2001:db8::5", true},
		{"[2001:db8::5]:2377", "node.ip==2001:db8::/32", true},
		{"[2001:db8::5]:2377", "node.ip==10.0.0.0/8", false},
		{"[::ffff:10.1.2.3]:2377", "node.ip==10.1.2.0/24", true},
		{"[fe80::1%eth0]:2377", "node.ip==fe80::1", true},
		{"10.1.2.3", "node.ip==10.1.2.3", true}, // no port
		{"host.example:2377", "node.ip==10.1.2.3", false},
		{"host.example:2377", "node.ip!=10.1.2.3", true},
		{"host.example:2377", "node.ip==10.0.0.0/8", false},
		{"host.example:2377", "node.ip!=10.0.0.0/8", true},
		{"", "node.ip==10.0.0.0/8", false},
		{"", "node.ip!=10.0.0.0/8", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr+" "+tt.expr, func(t *testing.T) {
			cs, err := parseConstraints([]string{tt.expr})
			require.NoError(t, err)
			assert.Equal(t, tt.want, cs[0].matches(&NodeInfo{Addr: tt.addr}))
		})
	}
}

// TestConstraintMatchesOddInputs covers nil nodes, bare nodes and hand-made constraints.
func TestConstraintMatchesOddInputs(t *testing.T) {
	// Hand-made constraints that parseConstraints never returns match nothing
	// and do not panic.
	n := constraintNode()
	assert.False(t, constraint{"node.foo", opNe, "x"}.matches(n))
	assert.False(t, constraint{"node.ip", opNe, "not-an-ip"}.matches(n))
	assert.False(t, constraint{"node.role", opEq, "worker"}.matches(nil))
	// A node without labels: a missing label fails == and passes !=.
	bare := &NodeInfo{}
	for expr, want := range map[string]bool{
		"node.labels.zone==east":  false,
		"node.labels.zone!=east":  true,
		"engine.labels.zone==a":   false,
		"engine.labels.zone!=a":   true,
		"node.role==worker":       false,
		"node.role!=worker":       true,
		"node.platform.os!=linux": true,
	} {
		cs, err := parseConstraints([]string{expr})
		require.NoError(t, err)
		assert.Equal(t, want, cs[0].matches(bare), expr)
	}
}

// TestConstraintStringRoundTrip checks that String parses back to the constraint.
func TestConstraintStringRoundTrip(t *testing.T) {
	cs, err := parseConstraints([]string{" NODE.LABELS.Zone != East ", "node.ip==10.0.0.0/8"})
	require.NoError(t, err)
	assert.Equal(t, "node.labels.Zone!=East", cs[0].String())
	again, err := parseConstraints([]string{cs[0].String(), cs[1].String()})
	require.NoError(t, err)
	assert.Equal(t, cs, again)
}

// FuzzParseConstraints checks that parsing and matching never panic and that
// a parsed constraint, formatted back as key+op+value, parses to itself.
func FuzzParseConstraints(f *testing.F) {
	for _, seed := range []string{
		"node.id==abc", "node.hostname != web-1", "NODE.ROLE==manager",
		"node.ip==10.0.0.1", "node.ip!=10.0.0.0/8", "node.ip==2001:db8::/32",
		"node.platform.os==linux", "node.platform.arch!=arm64",
		"node.labels.zone==east", "engine.labels.gpu!=true", "node.labels.a b==c",
		"node.foo==x", "node.role", "node.role=manager", "a>=b", "==", "!=",
		"node.role==a==b", "node.ip==300.1.1.1", "node.ip==10.0.0.0/40", "node.labels.==x",
		"", " ", "node.ip==[::1]", "node.ip==fe80::1%eth0", "node.hoſtname==x",
	} {
		f.Add(seed)
	}
	nodes := []*NodeInfo{constraintNode(), {}, {Addr: "[2001:db8::1]:80", Labels: map[string]string{}}}
	f.Fuzz(func(t *testing.T, expr string) {
		cs, err := parseConstraints([]string{expr})
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			if !strings.Contains(err.Error(), "invalid constraint") {
				t.Fatalf("error %q does not name the constraint", err)
			}
			return
		}
		if len(cs) != 1 {
			t.Fatalf("parsed %q into %d constraints", expr, len(cs))
		}
		c := cs[0]
		if c.key == "" || c.value == "" || (c.op != opEq && c.op != opNe) {
			t.Fatalf("parsed %q into incomplete %#v", expr, c)
		}
		for _, n := range nodes {
			c.matches(n)
		}
		again, err := parseConstraints([]string{c.key + c.op + c.value})
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", c.String(), expr, err)
		}
		if again[0] != c {
			t.Fatalf("re-parsing %q (from %q) gave %#v, want %#v", c.String(), expr, again[0], c)
		}
	})
}
