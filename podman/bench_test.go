package podman_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/podman"
	"github.com/podswarm/swarm/swarmtest"
)

// Docker Swarm 20.10's times on this machine class (the reference)
// from `docker service create --replicas N` to all N running, and the
// target: at most 0.8 of them.
var dockerSwarmSeconds = map[int]float64{10: 5.4, 50: 24.1}

// BenchmarkPodmanReplicas measures, on an in-process swarm of 3 nodes (1
// manager, 2 workers) sharing the rootless Podman socket, the time from
// CreateService of N replicas of busybox `sleep` until all N tasks run
// (reported by the nodes, i.e. their containers started), for N = 10 and
// 50. In the same run it measures the baseline: N sequential
// `podman --url $CONTAINER_HOST run -d` of the same image and command
// through the CLI. Both are cleaned up after each iteration, outside the
// timer; ns/op is the swarm's time. Metrics: s/swarm, s/podman-run (the
// sequential baseline),
// s/podman-run-each, and vs-docker-swarm (s/swarm over Docker Swarm's
// 5.4 s / 24.1 s; the target is <= 0.8).
//
//	make bench-podman
//	CONTAINER_HOST=unix:///run/user/1001/podman/podman.sock \
//	  go test -run '^$' -bench 'PodmanReplicas' -benchtime 3x .
func BenchmarkPodmanReplicas(b *testing.B) {
	rt := benchPodman(b)
	cli, err := exec.LookPath("podman")
	require.NoError(b, err, "the baseline needs the podman CLI")
	c := swarmtest.NewCluster(b, swarmtest.Options{
		Managers: 1, Workers: 2,
		Runtime: func(string) swarm.Runtime { return rt },
	})
	b.Cleanup(func() { benchReap(b, rt, c) })
	leader := c.Leader()
	ctx := context.Background()

	// Warm up Podman (image metadata, storage, runc) and the swarm.
	warm := sleepSpec(uniqueName("benchwarm"), 3)
	_, err = leader.CreateService(ctx, warm)
	require.NoError(b, err)
	benchConverge(b, leader, warm.Name)
	require.NoError(b, leader.RemoveService(ctx, warm.Name))
	benchGone(b, rt, c, warm.Name)

	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			var swarmTotal, podmanTotal time.Duration
			for i := 0; i < b.N; i++ {
				// The swarm: CreateService -> all running.
				spec := sleepSpec(uniqueName(fmt.Sprintf("bench%d", n)), uint64(n))
				start := time.Now()
				_, err := leader.CreateService(ctx, spec)
				require.NoError(b, err)
				benchConverge(b, leader, spec.Name)
				swarmTotal += time.Since(start)
				b.StopTimer()
				require.Equal(b, n, countRunning(b, leader, spec.Name))
				require.Equal(b, n, benchRunningContainers(b, rt, spec.Name), "running containers")
				require.NoError(b, leader.RemoveService(ctx, spec.Name))
				benchGone(b, rt, c, spec.Name)

				// The baseline: n sequential `podman run -d`, on its own
				// clock (ns/op is the swarm's time only).
				label := "io.podswarm.bench=" + randHex(6)
				start = time.Now()
				for j := 0; j < n; j++ {
					out, err := exec.Command(cli, "--url", rt.URI(), "run", "-d", "--rm=false", "--label", label,
						testImage, "sleep", "3600").CombinedOutput()
					require.NoError(b, err, "podman run: %s", out)
				}
				podmanTotal += time.Since(start)
				out, err := exec.Command(cli, "--url", rt.URI(), "ps", "-aq", "--filter", "label="+label).Output()
				require.NoError(b, err)
				ids := strings.Fields(string(out))
				require.Len(b, ids, n)
				out, err = exec.Command(cli, append([]string{"--url", rt.URI(), "rm", "-f", "-t", "0"}, ids...)...).CombinedOutput()
				require.NoError(b, err, "podman rm: %s", out)
				b.StartTimer()
			}
			sw := swarmTotal.Seconds() / float64(b.N)
			pm := podmanTotal.Seconds() / float64(b.N)
			b.ReportMetric(sw, "s/swarm")
			b.ReportMetric(pm, "s/podman-run")
			b.ReportMetric(pm/float64(n), "s/podman-run-each")
			b.ReportMetric(sw/dockerSwarmSeconds[n], "vs-docker-swarm")
		})
	}
}

// benchPodman connects to Podman for a benchmark (skips without it, or
// fails with SWARM_REQUIRE_PODMAN=1).
func benchPodman(b *testing.B) *podman.Runtime {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := podman.NewRuntime(ctx, "")
	if err != nil {
		if os.Getenv("SWARM_REQUIRE_PODMAN") == "1" {
			b.Fatalf("SWARM_REQUIRE_PODMAN=1 but Podman is not reachable: %v", err)
		}
		b.Skipf("no Podman (set CONTAINER_HOST, or run scripts/setup.sh as root): %v", err)
	}
	b.Cleanup(func() { rt.Close() })
	return rt
}

func benchConverge(b *testing.B, leader *swarm.Node, name string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(b, leader.WaitConverged(ctx, name))
}

// benchRunningContainers counts the service's running containers.
func benchRunningContainers(b *testing.B, rt *podman.Runtime, name string) int {
	list, err := rt.List(context.Background(), "")
	require.NoError(b, err)
	n := 0
	for _, ci := range list {
		if ci.Running && strings.HasPrefix(ci.Name, name+".") {
			n++
		}
	}
	return n
}

// benchGone waits until the service's containers are gone, and the service.
func benchGone(b *testing.B, rt *podman.Runtime, c *swarmtest.Cluster, name string) {
	b.Helper()
	c.Eventually(func() error {
		list, err := rt.List(context.Background(), "")
		if err != nil {
			return err
		}
		n := 0
		for _, ci := range list {
			if strings.HasPrefix(ci.Name, name+".") {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%d containers of %s left", n, name)
		}
		return nil
	}, 2*time.Minute)
}

// benchReap shuts the swarm down and removes whatever its nodes left.
func benchReap(b *testing.B, rt *podman.Runtime, c *swarmtest.Cluster) {
	c.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := map[string]bool{}
	for _, n := range c.Nodes() {
		ids[n.ID()] = true
	}
	list, err := rt.List(ctx, "")
	if err != nil {
		b.Errorf("cleanup: %v", err)
		return
	}
	for _, ci := range list {
		if ids[ci.NodeID] {
			if err := rt.Remove(ctx, ci.ID); err != nil {
				b.Errorf("cleanup: removing %s: %v", ci.Name, err)
			}
		}
	}
}

// countRunning counts the running tasks of a service.
func countRunning(b testing.TB, n *swarm.Node, svc string) int {
	tasks, err := n.Tasks(context.Background(), swarm.TaskFilter{Service: svc, DesiredState: swarm.TaskRunning})
	require.NoError(b, err)
	c := 0
	for _, t := range tasks {
		if t.Status.State == swarm.TaskRunning {
			c++
		}
	}
	return c
}
