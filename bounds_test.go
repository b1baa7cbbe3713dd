package swarm_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/stretchr/testify/require"
)

// startBoundsNode starts a single-node swarm on dir with an in-memory runtime.
func startBoundsNode(t *testing.T, dir string) *swarm.Node {
	t.Helper()
	cfg := swarm.DefaultLocalConfig()
	cfg.Hostname = "bounds"
	cfg.DataDir = dir
	cfg.Runtime = swarm.NewInmemRuntime()
	n := swarm.NewNode(cfg)
	require.NoError(t, n.Init())
	t.Cleanup(func() { n.Shutdown() })
	return n
}

func bigLabels(n, size int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("k%d", i)] = strings.Repeat("v", size)
	}
	return m
}

func repeatList(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", s, i)
	}
	return out
}

// badSpecs are the inputs of issue 8 (and their neighbours) that the API
// must refuse, each with the field its error must name.
func badSpecs() []struct {
	name  string
	spec  swarm.ServiceSpec
	field string
} {
	ns := time.Nanosecond
	base := func(f func(s *swarm.ServiceSpec)) swarm.ServiceSpec {
		s := swarm.ServiceSpec{Name: "bad", Image: "nginx"}
		f(&s)
		return s
	}
	return []struct {
		name  string
		spec  swarm.ServiceSpec
		field string
	}{
		{"replicas 1<<62", base(func(s *swarm.ServiceSpec) { s.Mode = swarm.Replicated(1 << 62) }), "mode.replicas"},
		{"replicas above limit", base(func(s *swarm.ServiceSpec) { s.Mode = swarm.Replicated(swarm.MaxReplicas + 1) }), "mode.replicas"},
		{"job 1<<62", base(func(s *swarm.ServiceSpec) { s.Mode = swarm.ReplicatedJob(1<<62, 1<<62) }), "mode.max_concurrent"},
		{"job total", base(func(s *swarm.ServiceSpec) { s.Mode = swarm.ReplicatedJob(1, 1<<62) }), "mode.total_completions"},
		{"parallelism", base(func(s *swarm.ServiceSpec) { s.UpdateConfig = &swarm.UpdateConfig{Parallelism: 1 << 63} }), "update_config.parallelism"},
		{"image newline", base(func(s *swarm.ServiceSpec) { s.Image = "nginx\n" }), "image"},
		{"image spaces", base(func(s *swarm.ServiceSpec) { s.Image = "my image" }), "image"},
		{"image control", base(func(s *swarm.ServiceSpec) { s.Image = "nginx\x07" }), "image"},
		{"image 1 MiB", base(func(s *swarm.ServiceSpec) { s.Image = strings.Repeat("a", 1<<20) }), "image"},
		{"hostname 5000 + newline", base(func(s *swarm.ServiceSpec) { s.Hostname = strings.Repeat("h", 5000) + "\n" }), "hostname"},
		{"hostname newline", base(func(s *swarm.ServiceSpec) { s.Hostname = "a\nb" }), "hostname"},
		{"label value 4 MiB", base(func(s *swarm.ServiceSpec) { s.Labels = bigLabels(1, 4<<20) }), "labels"},
		{"labels total", base(func(s *swarm.ServiceSpec) { s.Labels = bigLabels(3, 100<<10) }), "labels"},
		{"label key newline", base(func(s *swarm.ServiceSpec) { s.Labels = map[string]string{"a\nb": "x"} }), "labels"},
		{"container label value", base(func(s *swarm.ServiceSpec) { s.ContainerLabels = bigLabels(1, 1<<20) }), "container_labels"},
		{"too many labels", base(func(s *swarm.ServiceSpec) { s.Labels = bigLabels(swarm.MaxLabels+1, 1) }), "labels"},
		{"10,000 env", base(func(s *swarm.ServiceSpec) { s.Env = repeatList("K=", 10000) }), "env"},
		{"env key space", base(func(s *swarm.ServiceSpec) { s.Env = []string{"MY VAR=1"} }), "env"},
		{"env no name", base(func(s *swarm.ServiceSpec) { s.Env = []string{"=1"} }), "env"},
		{"env NUL", base(func(s *swarm.ServiceSpec) { s.Env = []string{"A=\x00"} }), "env"},
		{"10,000 args", base(func(s *swarm.ServiceSpec) { s.Args = repeatList("a", 10000) }), "args"},
		{"10,000 command", base(func(s *swarm.ServiceSpec) { s.Command = repeatList("a", 10000) }), "command"},
		{"duplicate host ports", base(func(s *swarm.ServiceSpec) {
			s.Ports = []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PublishHost},
				{TargetPort: 81, PublishedPort: 8080, PublishMode: swarm.PublishHost}}
		}), "published port"},
		{"healthcheck interval 1ns", base(func(s *swarm.ServiceSpec) {
			s.Healthcheck = &swarm.Healthcheck{Test: []string{"CMD", "true"}, Interval: ns}
		}), "healthcheck.interval"},
		{"healthcheck timeout 1ns", base(func(s *swarm.ServiceSpec) {
			s.Healthcheck = &swarm.Healthcheck{Test: []string{"CMD", "true"}, Timeout: ns}
		}), "healthcheck.timeout"},
		{"healthcheck start period", base(func(s *swarm.ServiceSpec) {
			s.Healthcheck = &swarm.Healthcheck{Test: []string{"CMD", "true"}, StartPeriod: 500 * time.Microsecond}
		}), "healthcheck.start_period"},
		{"healthcheck CMD alone", base(func(s *swarm.ServiceSpec) { s.Healthcheck = &swarm.Healthcheck{Test: []string{"CMD"}} }), "healthcheck.test"},
		{"healthcheck CMD-SHELL alone", base(func(s *swarm.ServiceSpec) { s.Healthcheck = &swarm.Healthcheck{Test: []string{"CMD-SHELL"}} }), "healthcheck.test"},
		{"mount target escapes", base(func(s *swarm.ServiceSpec) {
			s.Mounts = []swarm.Mount{{Type: swarm.MountTmpfs, Target: "/a/../../etc"}}
		}), "mounts[0].target"},
		{"mount target relative", base(func(s *swarm.ServiceSpec) { s.Mounts = []swarm.Mount{{Type: swarm.MountTmpfs, Target: "data"}} }), "mounts[0].target"},
		{"mount target root", base(func(s *swarm.ServiceSpec) { s.Mounts = []swarm.Mount{{Type: swarm.MountTmpfs, Target: "/"}} }), "mounts[0].target"},
		{"mount targets twice", base(func(s *swarm.ServiceSpec) {
			s.Mounts = []swarm.Mount{{Type: swarm.MountTmpfs, Target: "/x"}, {Type: swarm.MountTmpfs, Target: "/x"}}
		}), "mounts[1].target"},
		{"bind source relative", base(func(s *swarm.ServiceSpec) {
			s.Mounts = []swarm.Mount{{Type: swarm.MountBind, Source: "data", Target: "/data"}}
		}), "mounts[0].source"},
		{"volume name", base(func(s *swarm.ServiceSpec) {
			s.Mounts = []swarm.Mount{{Type: swarm.MountVolume, Source: "a b", Target: "/data"}}
		}), "mounts[0].source"},
		{"10,000 constraints", base(func(s *swarm.ServiceSpec) { s.Placement.Constraints = repeatList("node.labels.a==", 10000) }), "placement.constraints"},
		{"100 preferences", base(func(s *swarm.ServiceSpec) {
			for i := 0; i < 100; i++ {
				s.Placement.Preferences = append(s.Placement.Preferences, swarm.PlacementPreference{Spread: "node.labels.z"})
			}
		}), "placement.preferences"},
		{"1,000 mounts", base(func(s *swarm.ServiceSpec) {
			for i := 0; i < 1000; i++ {
				s.Mounts = append(s.Mounts, swarm.Mount{Type: swarm.MountTmpfs, Target: fmt.Sprintf("/m%d", i)})
			}
		}), "mounts"},
		{"2,000 ports", base(func(s *swarm.ServiceSpec) {
			for i := 0; i < 2000; i++ {
				s.Ports = append(s.Ports, swarm.PortConfig{TargetPort: uint32(i + 1)})
			}
		}), "ports"},
		{"1,000 secrets", base(func(s *swarm.ServiceSpec) {
			for i := 0; i < 1000; i++ {
				s.Secrets = append(s.Secrets, swarm.SecretReference{SecretName: fmt.Sprint("s", i)})
			}
		}), "secrets"},
		{"1,000 configs", base(func(s *swarm.ServiceSpec) {
			for i := 0; i < 1000; i++ {
				s.Configs = append(s.Configs, swarm.ConfigReference{ConfigName: fmt.Sprint("c", i)})
			}
		}), "configs"},
		{"relative dir", base(func(s *swarm.ServiceSpec) { s.Dir = "rel" }), "dir"},
		{"user newline", base(func(s *swarm.ServiceSpec) { s.User = "root\n" }), "user"},
		{"stop signal", base(func(s *swarm.ServiceSpec) { s.StopSignal = "SIG TERM" }), "stop_signal"},
		{"capability", base(func(s *swarm.ServiceSpec) { s.CapAdd = []string{"NET ADMIN"} }), "cap_add"},
		{"name too long", base(func(s *swarm.ServiceSpec) { s.Name = strings.Repeat("n", 64) }), "name"},
		{"spec over 1 MiB", base(func(s *swarm.ServiceSpec) { s.Env = repeatList("K="+strings.Repeat("v", 30<<10), 50) }), "spec is"},
	}
}

// Every bad input is refused with ErrInvalidSpec naming the field, leaves
// nothing behind, and the node stays healthy, also across a restart.
func TestBadInputBounded(t *testing.T) {
	dir := t.TempDir()
	n := startBoundsNode(t, dir)
	ctx := ctxT(t)

	good, err := n.CreateService(ctx, swarm.ServiceSpec{Name: "good", Image: "nginx", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	for _, tc := range badSpecs() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.CreateService(ctx, tc.spec)
			require.ErrorIs(t, err, swarm.ErrInvalidSpec)
			require.Contains(t, err.Error(), tc.field)
			require.Less(t, len(err.Error()), 1000, "the error quotes a bounded part of the input")
			if tc.field == "name" {
				return
			}
			// The same spec as an update of a good service.
			spec := tc.spec
			spec.Name = "good"
			err = n.UpdateService(ctx, "good", 0, spec)
			require.ErrorIs(t, err, swarm.ErrInvalidSpec)
		})
	}

	// Scaling beyond the bound.
	err = n.ScaleService(ctx, "good", math.MaxUint64)
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	require.Contains(t, err.Error(), "mode.replicas")
	require.ErrorIs(t, n.ScaleService(ctx, "good", 1<<62), swarm.ErrInvalidSpec)

	// Events from an index that does not exist yet.
	info, err := n.Info(ctx)
	require.NoError(t, err)
	_, err = n.Events(ctx, 1<<60)
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	require.Contains(t, err.Error(), "since")
	_, err = n.Events(ctx, info.AppliedIndex+1000)
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)

	// Node labels, secrets and configs, tokens.
	err = n.UpdateNode(ctx, n.ID(), 0, swarm.NodeUpdate{Labels: bigLabels(1, 4<<20)})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	require.Contains(t, err.Error(), "node labels")
	err = n.UpdateNode(ctx, n.ID(), 0, swarm.NodeUpdate{Labels: map[string]string{"a\nb": "c"}})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "s", Data: []byte("x"), Labels: bigLabels(1, 1<<20)})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	require.Contains(t, err.Error(), "labels")
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "s\n", Data: []byte("x")})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = n.CreateConfig(ctx, swarm.ConfigSpec{Name: "c", Data: []byte("x"), Labels: map[string]string{"": "x"}})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = n.RotateJoinToken(ctx, swarm.Role("boss"))
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)

	// Nothing was created or changed.
	svcs, err := n.Services(ctx)
	require.NoError(t, err)
	require.Len(t, svcs, 1)
	cur, err := n.Service(ctx, "good")
	require.NoError(t, err)
	require.Equal(t, good.Version, cur.Version, "no refused update changed the service")
	secrets, err := n.Secrets(ctx)
	require.NoError(t, err)
	require.Empty(t, secrets)
	nd, err := n.Node(ctx, n.ID())
	require.NoError(t, err)
	require.Empty(t, nd.Labels)

	// Still healthy: a good service converges.
	require.NoError(t, n.WaitConverged(ctx, "good"))
	_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: "after", Image: "nginx", Mode: swarm.Replicated(3)})
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, "after"))

	// And it starts again from its DataDir.
	require.NoError(t, n.Shutdown())
	n2 := startBoundsNode(t, dir)
	require.Eventually(t, func() bool { return n2.IsLeader() }, waitFor, 10*time.Millisecond)
	svcs, err = n2.Services(ctx)
	require.NoError(t, err)
	require.Len(t, svcs, 2)
	_, err = n2.CreateService(ctx, swarm.ServiceSpec{Name: "restarted", Image: "nginx", Mode: swarm.Replicated(2)})
	require.NoError(t, err)
	require.NoError(t, n2.WaitConverged(ctx, "restarted"))
}

// The limits leave room for real specs: the largest counts and sizes
// allowed are accepted.
func TestLimitsAcceptWhatTheyAllow(t *testing.T) {
	n := startBoundsNode(t, "")
	ctx := ctxT(t)
	spec := swarm.ServiceSpec{
		Name: strings.Repeat("n", swarm.MaxServiceNameLength), Image: "registry.example.com:5000/team/app:v1.2_3@sha256:" + strings.Repeat("ab", 32),
		Mode:     swarm.Replicated(0),
		Hostname: strings.Repeat("h", swarm.MaxHostnameLength),
		Labels:   map[string]string{"big": strings.Repeat("v", swarm.MaxLabelValueLength)},
		Env:      repeatList("K=", swarm.MaxEnv),
		Dir:      "/work",
		User:     "1000:1000",
		Mounts:   []swarm.Mount{{Type: swarm.MountBind, Source: "/srv/data", Target: "/data"}, {Type: swarm.MountVolume, Source: "vol_1", Target: "/vol"}},
		Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PublishHost},
			{Protocol: "udp", TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PublishHost}},
		Healthcheck: &swarm.Healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Millisecond},
		StopSignal:  "SIGRTMIN+3",
		CapAdd:      []string{"NET_ADMIN"},
	}
	_, err := n.CreateService(ctx, spec)
	require.NoError(t, err)
	// One replica: two would claim the same host ports on the one node.
	require.NoError(t, n.ScaleService(ctx, spec.Name, 1))
	require.NoError(t, n.WaitConverged(ctx, spec.Name))
}
