package podman_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
)

// On rootless Podman a task's container reads its secrets at
// /run/secrets/<target> (or an absolute target) and its configs at
// /<name>, with the right content, owner and mode, read-only, on a tmpfs;
// the host keeps no staged copy once the container runs.
func TestPodmanSecretsMounted(t *testing.T) {
	pc := newPodCluster(t, swarmtest.Options{Managers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*podWait)
	defer cancel()
	n := pc.Leader()
	value := "pod-secret-" + randHex(12)
	secName, cfgName := uniqueName("sec"), uniqueName("conf")
	_, err := n.CreateSecret(ctx, swarm.SecretSpec{Name: secName, Data: []byte(value)})
	require.NoError(t, err)
	_, err = n.CreateConfig(ctx, swarm.ConfigSpec{Name: cfgName, Data: []byte("key=value\n")})
	require.NoError(t, err)
	spec := sleepSpec(uniqueName("secsvc"), 1)
	spec.Secrets = []swarm.SecretReference{
		{SecretName: secName, Target: swarm.FileTarget{Name: "x"}},
		{SecretName: secName, Target: swarm.FileTarget{Name: "/etc/app/owned", UID: 1000, GID: 1000, Mode: 0o440}},
	}
	spec.Configs = []swarm.ConfigReference{{ConfigName: cfgName}}
	svc, err := n.CreateService(ctx, spec)
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, svc.ID), describe(pc.podTasks(ctx, svc.ID)))
	list, err := pc.ps(svc.ID)
	require.NoError(t, err)
	live := runningOnly(list)
	require.Len(t, live, 1)
	ctr := live[0]

	// Podman 4.3's remote exec now and then returns a short session's exit
	// status without its output (CI saw an empty `stat`); every command here
	// prints something, so an empty answer is asked again.
	exec := func(args ...string) string {
		t.Helper()
		var out string
		for range 5 {
			o, err := pc.podman(append([]string{"exec", ctr.ID}, args...)...)
			require.NoError(t, err)
			if out = strings.TrimSpace(o); out != "" {
				break
			}
		}
		return out
	}
	assert.Equal(t, value, exec("cat", "/run/secrets/x"))
	assert.Equal(t, "0 0 444", exec("stat", "-c", "%u %g %a", "/run/secrets/x"))
	assert.Equal(t, value, exec("cat", "/etc/app/owned"))
	assert.Equal(t, "1000 1000 440", exec("stat", "-c", "%u %g %a", "/etc/app/owned"))
	assert.Equal(t, "key=value", exec("cat", "/"+cfgName))
	assert.Equal(t, "0 0 444", exec("stat", "-c", "%u %g %a", "/"+cfgName))
	mounts := exec("cat", "/proc/mounts")
	for _, p := range []string{"/run/secrets/x", "/etc/app/owned", "/" + cfgName} {
		var line string
		for _, l := range strings.Split(mounts, "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[1] == p {
				line = l
			}
		}
		require.NotEmpty(t, line, "%s is a mount", p)
		f := strings.Fields(line)
		assert.Equal(t, "tmpfs", f[2], "%s is on a tmpfs: %s", p, line)
		assert.Contains(t, strings.Split(f[3], ","), "ro", "%s is read-only: %s", p, line)
	}
	_, err = pc.podman("exec", ctr.ID, "sh", "-c", "echo overwritten > /run/secrets/x")
	require.Error(t, err, "the secret file is read-only")
	assert.Equal(t, value, exec("cat", "/run/secrets/x"))

	// The host keeps no staged copy of a running container's files.
	staged, _ := filepath.Glob(filepath.Join("/dev/shm/podswarm", "*", ctr.name()+"*"))
	assert.Empty(t, staged)

	require.NoError(t, n.RemoveService(ctx, svc.ID))
	pc.waitContainers(svc.ID, 0)
	require.NoError(t, n.RemoveSecret(ctx, secName))
	require.NoError(t, n.RemoveConfig(ctx, cfgName))
}
