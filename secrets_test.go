package swarm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	swarm "github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
)

// dataDirs records each node's DataDir (by hostname) as swarmtest creates
// its config, and the configs themselves.
type dataDirs struct {
	mu   sync.Mutex
	dirs map[string]string
	cfgs map[string]swarm.Config
}

func (d *dataDirs) hook(extra func(cfg *swarm.Config)) func(string, *swarm.Config) {
	return func(host string, cfg *swarm.Config) {
		if extra != nil {
			extra(cfg)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.dirs == nil {
			d.dirs, d.cfgs = map[string]string{}, map[string]swarm.Config{}
		}
		d.dirs[host] = cfg.DataDir
		d.cfgs[host] = *cfg
	}
}

func (d *dataDirs) get(host string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dirs[host]
}

// encodings are the forms a value could take in a file: raw, and the
// base64 (JSON's []byte) and hex spellings, at every alignment.
func encodings(v []byte) map[string][]byte {
	out := map[string][]byte{"raw": v, "hex": []byte(hex.EncodeToString(v))}
	for shift := 0; shift < 3; shift++ {
		padded := append(make([]byte, shift), v...)
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding} {
			s := enc.EncodeToString(padded)
			// Drop the characters that depend on the padding bytes and on
			// what follows the value.
			s = strings.TrimRight(s, "=")
			s = s[(shift*8+5)/6 : len(s)-1]
			out[fmt.Sprintf("base64-%s-%d", name, shift)] = []byte(s)
		}
	}
	return out
}

// A secret's value is nowhere under any node's DataDir: not in the Raft
// log (bolt), not in the snapshots (one is forced after the secret
// exists), not in any other file; the secret still reaches its task.
func TestSecretValueNeverOnDisk(t *testing.T) {
	var dd dataDirs
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 1, Persistent: true,
		Config: dd.hook(func(cfg *swarm.Config) {
			// Snapshot after every entry, soon: the test waits for one.
			cfg.SnapshotThreshold = 1
			cfg.SnapshotInterval = 100 * time.Millisecond
		})})
	ctx := ctxT(t)
	leader := c.Leader()
	value := []byte("s3cr3t-" + randHex(24))

	sec, err := leader.CreateSecret(ctx, swarm.SecretSpec{Name: "db-password", Data: value, Labels: map[string]string{"app": "db"}})
	require.NoError(t, err)
	require.NoError(t, leader.UpdateSecret(ctx, sec.ID, sec.Version, swarm.SecretSpec{Labels: map[string]string{"app": "db2"}}))
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "db", Image: "postgres",
		Placement: swarm.Placement{Constraints: []string{"node.role==worker"}},
		Secrets:   []swarm.SecretReference{{SecretName: "db-password"}}})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "db"))
	worker := c.Node(3)
	require.Equal(t, []string{sec.ID}, worker.HeldSecrets(), "the worker running the task holds the secret")

	hosts := []string{"manager-1", "manager-2", "manager-3", "worker-1"}
	// Every manager has snapshotted a state that holds the secret.
	c.Eventually(func() error {
		for _, h := range hosts[:3] {
			found := false
			snaps, _ := filepath.Glob(filepath.Join(dd.get(h), "snapshots", "*", "state.bin"))
			for _, s := range snaps {
				if b, err := os.ReadFile(s); err == nil && bytes.Contains(b, []byte(sec.ID)) {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("%s has no snapshot with the secret yet (%d snapshots)", h, len(snaps))
			}
		}
		return nil
	}, 30*time.Second)

	forms := encodings(value)
	files := 0
	for _, h := range hosts {
		dir := dd.get(h)
		require.NotEmpty(t, dir)
		require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a snapshot being replaced
			}
			require.NoError(t, err)
			files++
			for form, enc := range forms {
				assert.False(t, bytes.Contains(b, enc), "%s holds the secret's value (%s)", p, form)
			}
			return nil
		}))
		_, err := os.Stat(filepath.Join(dir, "keys.json"))
		if strings.HasPrefix(h, "manager") {
			assert.NoError(t, err, "%s keeps the data key", h)
		} else {
			assert.True(t, errors.Is(err, fs.ErrNotExist), "worker %s must not have a key file", h)
		}
	}
	t.Logf("grepped %d files under %d DataDirs", files, len(hosts))
	raftDB := 0
	for _, h := range hosts[:3] {
		if _, err := os.Stat(filepath.Join(dd.get(h), "raft.db")); err == nil {
			raftDB++
		}
	}
	require.Equal(t, 3, raftDB, "the bolt files were among the files checked")
}

// A worker without a task that uses a secret (or config) never receives
// it: not in what the manager sends it, not in what its agent holds, not
// in its containers; the worker that runs the task holds it until the
// task ends, and its container gets the file as specified.
func TestSecretsDeliveredOnlyWhereUsed(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	ctx := ctxT(t)
	leader := c.Leader()
	w1, w2 := c.Node(1), c.Node(2)
	value := []byte("token-" + randHex(16))
	sec, err := leader.CreateSecret(ctx, swarm.SecretSpec{Name: "api-token", Data: value})
	require.NoError(t, err)
	other, err := leader.CreateSecret(ctx, swarm.SecretSpec{Name: "unused", Data: []byte("nobody gets this")})
	require.NoError(t, err)
	cfg, err := leader.CreateConfig(ctx, swarm.ConfigSpec{Name: "app.conf", Data: []byte("listen=80\n")})
	require.NoError(t, err)

	// Watch the nodes that must never hold anything, the whole time.
	var (
		mu     sync.Mutex
		leaked []string
		stop   = make(chan struct{})
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			for _, n := range []*swarm.Node{leader, w2} {
				if s, cf := n.HeldSecrets(), n.HeldConfigs(); len(s)+len(cf) > 0 {
					mu.Lock()
					leaked = append(leaked, fmt.Sprintf("%s holds secrets %v configs %v", n.ID(), s, cf))
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "api", Image: "api",
		Placement: swarm.Placement{Constraints: []string{"node.hostname==worker-1"}},
		Secrets:   []swarm.SecretReference{{SecretName: "api-token", Target: swarm.FileTarget{Name: "token", UID: 1000, GID: 1001, Mode: 0o400}}},
		Configs:   []swarm.ConfigReference{{ConfigID: cfg.ID}}})
	require.NoError(t, err)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "everywhere", Image: "busybox", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "api"))
	require.NoError(t, leader.WaitConverged(ctx, "everywhere"))

	svc, err := leader.Service(ctx, "api")
	require.NoError(t, err)
	require.Equal(t, []swarm.SecretReference{{SecretID: sec.ID, SecretName: "api-token",
		Target: swarm.FileTarget{Name: "token", UID: 1000, GID: 1001, Mode: 0o400}}}, svc.Spec.Secrets, "references are resolved")
	require.Equal(t, []swarm.ConfigReference{{ConfigID: cfg.ID, ConfigName: "app.conf",
		Target: swarm.FileTarget{Name: "app.conf"}}}, svc.Spec.Configs)

	assert.Equal(t, []string{sec.ID}, w1.HeldSecrets())
	assert.Equal(t, []string{cfg.ID}, w1.HeldConfigs())
	for _, n := range []*swarm.Node{leader, w2} {
		assert.Empty(t, n.HeldSecrets(), "node %s", n.ID())
		assert.Empty(t, n.HeldConfigs(), "node %s", n.ID())
	}
	// What the manager sends each node: exactly what its tasks use.
	for _, tc := range []struct {
		n             *swarm.Node
		secrets, cfgs []string
	}{{w1, []string{sec.ID}, []string{cfg.ID}}, {w2, []string{}, []string{}}, {leader, []string{}, []string{}}} {
		s, cf, err := swarm.DeliveredFiles(ctx, leader, tc.n.ID())
		require.NoError(t, err)
		assert.Equal(t, tc.secrets, s, "secrets sent to %s", tc.n.ID())
		assert.Equal(t, tc.cfgs, cf, "configs sent to %s", tc.n.ID())
		assert.NotContains(t, s, other.ID)
	}

	// The task's container got the files as specified; no other did.
	tasks, err := leader.Tasks(ctx, swarm.TaskFilter{})
	require.NoError(t, err)
	checked := 0
	for _, tk := range tasks {
		if tk.Status.State != swarm.TaskRunning {
			continue
		}
		rt := c.Runtime(c.Index(nodeByID(c, tk.NodeID))).(*swarm.InmemRuntime)
		cc, ok := rt.Config(tk.Status.ContainerID)
		require.True(t, ok)
		checked++
		if tk.ServiceName != "api" {
			assert.Empty(t, cc.Secrets, "task %s", tk.Name())
			assert.Empty(t, cc.Configs, "task %s", tk.Name())
			continue
		}
		require.Equal(t, w1.ID(), tk.NodeID)
		require.Len(t, cc.Secrets, 1)
		assert.Equal(t, swarm.ContainerFile{ID: sec.ID, Name: "api-token", Path: "/run/secrets/token",
			UID: 1000, GID: 1001, Mode: 0o400, Data: value}, cc.Secrets[0])
		require.Len(t, cc.Configs, 1)
		assert.Equal(t, swarm.ContainerFile{ID: cfg.ID, Name: "app.conf", Path: "/app.conf",
			Mode: 0o444, Data: []byte("listen=80\n")}, cc.Configs[0])
	}
	assert.Equal(t, 4, checked, "api's task and the global service's three")

	// The task ends: the worker forgets the secret and the config.
	require.NoError(t, leader.RemoveService(ctx, "api"))
	c.Eventually(func() error {
		if s, cf := w1.HeldSecrets(), w1.HeldConfigs(); len(s)+len(cf) > 0 {
			return fmt.Errorf("worker-1 still holds secrets %v configs %v", s, cf)
		}
		return nil
	}, 10*time.Second)
	require.NoError(t, leader.RemoveSecret(ctx, "api-token"))
	close(stop)
	<-done
	assert.Empty(t, leaked)
}

func nodeByID(c *swarmtest.Cluster, id string) *swarm.Node {
	for _, n := range c.Nodes() {
		if n.ID() == id {
			return n
		}
	}
	return nil
}

// Bad input gets clear errors: sizes, names, duplicates, updates of more
// than labels, references to what does not exist, removing what is in use.
func TestSecretsBadInput(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	ctx := ctxT(t)
	n := c.Leader()

	_, err := n.CreateSecret(ctx, swarm.SecretSpec{Name: "big", Data: make([]byte, swarm.MaxSecretSize+1)})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "500 KiB")
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "max", Data: bytes.Repeat([]byte("x"), swarm.MaxSecretSize)})
	require.NoError(t, err, "exactly 500 KiB is fine")
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "", Data: []byte("x")})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "name is empty")
	for _, bad := range []string{"-x", "x-", "a b", "a/b", strings.Repeat("a", 65)} {
		_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: bad, Data: []byte("x")})
		require.ErrorIs(t, err, swarm.ErrInvalidSpec, "name %q", bad)
	}
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "empty"})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "data is empty")

	pw, err := n.CreateSecret(ctx, swarm.SecretSpec{Name: "pw", Data: []byte("hunter2"), Labels: map[string]string{"a": "1"}})
	require.NoError(t, err)
	assert.Nil(t, pw.Spec.Data, "reads never return a secret's data")
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "pw", Data: []byte("other")})
	require.ErrorIs(t, err, swarm.ErrNameConflict)
	assert.Contains(t, err.Error(), `"pw"`)

	got, err := n.Secret(ctx, pw.ID[:6])
	require.NoError(t, err, "unique ID prefix")
	assert.Equal(t, pw.ID, got.ID)
	all, err := n.Secrets(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	for _, s := range all {
		assert.Nil(t, s.Spec.Data)
	}
	_, err = n.Secret(ctx, "nope")
	require.ErrorIs(t, err, swarm.ErrNotFound)

	// Updates: labels only.
	err = n.UpdateSecret(ctx, "pw", pw.Version, swarm.SecretSpec{Name: "pw", Data: []byte("changed")})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "only its labels")
	err = n.UpdateSecret(ctx, "pw", pw.Version, swarm.SecretSpec{Name: "pw2"})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	require.NoError(t, n.UpdateSecret(ctx, "pw", pw.Version, swarm.SecretSpec{Name: "pw", Data: []byte("hunter2"), Labels: map[string]string{"a": "2"}}),
		"the same data with new labels is a label update")
	got, err = n.Secret(ctx, "pw")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "2"}, got.Spec.Labels)
	assert.Greater(t, got.Version, pw.Version)
	err = n.UpdateSecret(ctx, "pw", pw.Version, swarm.SecretSpec{Labels: map[string]string{"a": "3"}})
	require.ErrorIs(t, err, swarm.ErrVersionConflict)

	// References.
	_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: "s0", Image: "x", Secrets: []swarm.SecretReference{{SecretName: "missing"}}})
	require.ErrorIs(t, err, swarm.ErrNotFound)
	assert.Contains(t, err.Error(), `"missing"`)
	_, err = n.Service(ctx, "s0")
	require.ErrorIs(t, err, swarm.ErrNotFound, "no service was created")
	for _, refs := range [][]swarm.SecretReference{
		{{SecretName: "pw"}, {SecretName: "max", Target: swarm.FileTarget{Name: "pw"}}}, // one path twice
		{{SecretName: "pw", Target: swarm.FileTarget{Name: "../etc/passwd"}}},
		{{SecretName: "pw", Target: swarm.FileTarget{Mode: 0o4755}}},
		{{}},
	} {
		_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: "s1", Image: "x", Secrets: refs})
		require.ErrorIs(t, err, swarm.ErrInvalidSpec, "%+v", refs)
	}

	// Removing a secret in use names the services.
	for _, name := range []string{"web", "worker"} {
		_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: name, Image: "x", Secrets: []swarm.SecretReference{{SecretName: "pw"}}})
		require.NoError(t, err)
	}
	err = n.RemoveSecret(ctx, "pw")
	require.ErrorIs(t, err, swarm.ErrInUse)
	assert.Contains(t, err.Error(), "web, worker")
	require.NoError(t, n.RemoveService(ctx, "web"))
	err = n.RemoveSecret(ctx, "pw")
	require.ErrorIs(t, err, swarm.ErrInUse)
	assert.NotContains(t, err.Error(), "web,")
	assert.Contains(t, err.Error(), "worker")
	// Updating the service to drop the secret frees it.
	wsvc, err := n.Service(ctx, "worker")
	require.NoError(t, err)
	spec := wsvc.Spec
	spec.Secrets = nil
	require.NoError(t, n.UpdateService(ctx, "worker", wsvc.Version, spec))
	require.NoError(t, n.RemoveSecret(ctx, "pw"))
	_, err = n.Secret(ctx, "pw")
	require.ErrorIs(t, err, swarm.ErrNotFound)

	// Configs: the same rules, 1000 KiB, and reads return the data.
	_, err = n.CreateConfig(ctx, swarm.ConfigSpec{Name: "huge", Data: make([]byte, swarm.MaxConfigSize+1)})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "1000 KiB")
	_, err = n.CreateConfig(ctx, swarm.ConfigSpec{Name: "", Data: []byte("x")})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	cf, err := n.CreateConfig(ctx, swarm.ConfigSpec{Name: "nginx.conf", Data: []byte("worker_processes 1;")})
	require.NoError(t, err)
	assert.Equal(t, []byte("worker_processes 1;"), cf.Spec.Data)
	_, err = n.CreateConfig(ctx, swarm.ConfigSpec{Name: "nginx.conf", Data: []byte("x")})
	require.ErrorIs(t, err, swarm.ErrNameConflict)
	err = n.UpdateConfig(ctx, "nginx.conf", 0, swarm.ConfigSpec{Data: []byte("worker_processes 2;")})
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	require.NoError(t, n.UpdateConfig(ctx, "nginx.conf", 0, swarm.ConfigSpec{Labels: map[string]string{"v": "1"}}))
	_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: "nginx", Image: "nginx", Configs: []swarm.ConfigReference{{ConfigName: "nginx.conf", Target: swarm.FileTarget{Name: "/etc/nginx/nginx.conf"}}}})
	require.NoError(t, err)
	err = n.RemoveConfig(ctx, cf.ID)
	require.ErrorIs(t, err, swarm.ErrInUse)
	assert.Contains(t, err.Error(), "nginx")
	cfgs, err := n.Configs(ctx)
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	assert.Equal(t, map[string]string{"v": "1"}, cfgs[0].Spec.Labels)
}

func unlockKey(t *testing.T, ctx context.Context, n *swarm.Node) string {
	t.Helper()
	key, err := n.UnlockKey(ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, "SWMKEY-1-"), key)
	return key
}

// requireLocked checks that a restarted manager is locked: it serves
// nothing, and a wrong key leaves it so.
func requireLocked(t *testing.T, ctx context.Context, n *swarm.Node, wrongKeys ...string) {
	t.Helper()
	require.True(t, n.Locked())
	_, err := n.Info(ctx)
	require.ErrorIs(t, err, swarm.ErrLocked)
	_, err = n.Services(ctx)
	require.ErrorIs(t, err, swarm.ErrLocked)
	_, err = n.CreateSecret(ctx, swarm.SecretSpec{Name: "x", Data: []byte("x")})
	require.ErrorIs(t, err, swarm.ErrLocked)
	require.ErrorIs(t, n.Leave(), swarm.ErrLocked)
	for _, k := range append(wrongKeys, "SWMKEY-1-short", "not-a-key") {
		require.ErrorIs(t, n.Unlock(k), swarm.ErrInvalidUnlockKey, "key %q", k)
	}
	require.True(t, n.Locked())
}

// An autolocked manager restarts locked and serves again after Unlock; a
// rotated key replaces the old one; Config.UnlockKey unlocks at start;
// turning autolock off restarts unlocked.
func TestAutoLockedManagerRestartsLocked(t *testing.T) {
	var dd dataDirs
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Persistent: true,
		Config: dd.hook(func(cfg *swarm.Config) { cfg.AutoLock = true })})
	ctx := ctxT(t)
	n := c.Leader()
	key := unlockKey(t, ctx, n)
	value := []byte("locked-" + randHex(8))
	sec, err := n.CreateSecret(ctx, swarm.SecretSpec{Name: "k", Data: value})
	require.NoError(t, err)
	_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: "app", Image: "app", Secrets: []swarm.SecretReference{{SecretName: "k"}}})
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, "app"))

	// The key file is sealed: no data key in the clear.
	var kf map[string]any
	b, err := os.ReadFile(filepath.Join(dd.get("manager-1"), "keys.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &kf))
	assert.NotContains(t, kf, "DEK")
	assert.Contains(t, kf, "Sealed")

	n = c.Restart(0)
	requireLocked(t, ctx, n, "SWMKEY-1-"+base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	require.NoError(t, n.Unlock(key))
	require.False(t, n.Locked())
	waitReplayed(t, c, n, "app")
	require.NoError(t, n.WaitConverged(ctx, "app"))
	got, err := n.Secret(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, sec.ID, got.ID)
	c.Eventually(func() error {
		if h := n.HeldSecrets(); len(h) != 1 || h[0] != sec.ID {
			return fmt.Errorf("the unlocked manager's task holds %v", h)
		}
		return nil
	}, 10*time.Second)
	// The data key still opens the secret: a new task gets it.
	_, err = n.CreateService(ctx, swarm.ServiceSpec{Name: "app2", Image: "app", Secrets: []swarm.SecretReference{{SecretName: "k", Target: swarm.FileTarget{Name: "k2"}}}})
	require.NoError(t, err)
	require.NoError(t, n.WaitConverged(ctx, "app2"))
	require.ErrorContains(t, n.Unlock(key), "not locked")

	// Rotation: only the new key unlocks.
	newKey, err := n.RotateUnlockKey(ctx)
	require.NoError(t, err)
	require.NotEqual(t, key, newKey)
	require.Equal(t, newKey, unlockKey(t, ctx, n))
	n = c.Restart(0)
	requireLocked(t, ctx, n, key)
	require.NoError(t, n.Unlock(newKey))
	waitReplayed(t, c, n, "app2")
	require.NoError(t, n.WaitConverged(ctx, "app"))

	// Config.UnlockKey unlocks at start, for unattended restarts; a wrong
	// one is an error.
	n.Shutdown()
	cfg := dd.cfgs["manager-1"]
	cfg.UnlockKey = key
	err = swarm.NewNode(cfg).Join("")
	require.ErrorIs(t, err, swarm.ErrInvalidUnlockKey)
	cfg.UnlockKey = newKey
	n2 := swarm.NewNode(cfg)
	t.Cleanup(func() { n2.Shutdown() })
	require.NoError(t, n2.Join(""))
	require.False(t, n2.Locked())
	waitReplayed(t, c, n2, "app2")
	require.NoError(t, n2.WaitConverged(ctx, "app"))

	// Autolock off: the next restart is not locked.
	require.NoError(t, n2.SetAutoLock(ctx, false))
	k, err := n2.UnlockKey(ctx)
	require.NoError(t, err)
	require.Empty(t, k)
	_, err = n2.RotateUnlockKey(ctx)
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	n2.Shutdown()
	cfg.UnlockKey = ""
	n3 := swarm.NewNode(cfg)
	t.Cleanup(func() { n3.Shutdown() })
	require.NoError(t, n3.Join(""))
	require.False(t, n3.Locked())
	waitReplayed(t, c, n3, "app2")
	require.NoError(t, n3.WaitConverged(ctx, "app"))
}

// waitReplayed waits until a restarted manager's state has caught up with
// its log (as far as service svc): a restarted leader serves reads before
// its state machine has replayed everything.
func waitReplayed(t *testing.T, c *swarmtest.Cluster, n *swarm.Node, svc string) {
	t.Helper()
	c.Eventually(func() error {
		_, err := n.Service(context.Background(), svc)
		return err
	}, 15*time.Second)
}

// Autolock turned on later, from a follower, reaches every manager's key
// file, and so does a rotation: restarted followers need the current key.
func TestAutoLockRotationReachesEveryManager(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Persistent: true})
	ctx := ctxT(t)
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if !m.IsLeader() {
			follower = m
			break
		}
	}
	key, err := follower.UnlockKey(ctx)
	require.NoError(t, err)
	require.Empty(t, key, "autolock is off by default")
	require.NoError(t, follower.SetAutoLock(ctx, true))
	key = unlockKey(t, ctx, c.Leader())
	require.Equal(t, key, unlockKey(t, ctx, follower))
	_, err = c.Leader().CreateSecret(ctx, swarm.SecretSpec{Name: "s", Data: []byte("v")})
	require.NoError(t, err)

	idx := c.Index(follower)
	n := c.Restart(idx)
	requireLocked(t, ctx, n)
	require.NoError(t, n.Unlock(key))
	c.Eventually(func() error {
		_, err := n.Secret(ctx, "s")
		return err
	}, 15*time.Second)

	newKey, err := c.Leader().RotateUnlockKey(ctx)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		if c.Node(i).IsLeader() {
			continue
		}
		// Wait until the follower has the rotation, then restart it.
		m := c.Node(i)
		c.Eventually(func() error {
			k, err := m.UnlockKey(ctx)
			if err != nil || k != newKey {
				return fmt.Errorf("manager %d has key %q (%v)", i, k, err)
			}
			return nil
		}, 15*time.Second)
		n := c.Restart(i)
		requireLocked(t, ctx, n, key)
		require.NoError(t, n.Unlock(newKey))
		c.Eventually(func() error {
			_, err := n.Secret(ctx, "s")
			return err
		}, 15*time.Second)
	}
}

// randHex returns n random bytes in hex, for values no other test shares.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
