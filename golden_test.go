package swarm

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// Golden fixtures of the Raft log and snapshot formats (testdata/golden,
// described in its README.md). The tests never write them unless run with
//
//	go test -run TestGolden -update .
//
// and a rewritten fixture is a change of format: see the rule at the top of
// raftfsm.go.
var updateGolden = flag.Bool("update", false, "rewrite the testdata/golden fixtures that the current code produces")

const goldenDir = "testdata/golden"

// The objects of testdata/golden/snapshot-format0.json (written by
// format0_gen_test.go.txt with the code of commit 73dac23).
const (
	gClusterID = "5qz8f0c2hj7n1m4k9x3w6v2bt"
	gManager   = "1d7xqk4m9p2w5z8c3f6h0j4nr"
	gWorker1   = "8s2v5y9b3e6g0i4l7o1r5u8xa"
	gWorker2   = "4t7w0z3c6f9i2l5o8r1u4x7ab"
	gSecretID  = "9a3d6g9j2m5p8s1v4y7b0e3hk"
	gConfigID  = "2b5e8h1k4n7q0t3w6z9c2f5il"
	gWebID     = "6c9f2i5l8o1r4u7x0a3d6g9jm"
	gWeb1      = "3e6h9k2n5q8t1w4z7c0f3i6lo"
	gWeb2      = "7g0j3m6p9s2v5y8b1e4h7k0nq"
	gJobID     = "0h3k6n9q2t5w8z1c4f7i0l3or"
	gJob1      = "5j8m1p4s7v0y3b6e9h2k5n8qt"
	// Objects the log adds.
	gWeb3     = "1k4n7q0t3w6z9c2f5i8l1o4rv"
	gWorker3  = "6m9p2s5v8y1b4e7h0k3n6q9tx"
	gSecret2  = "8n1q4t7w0z3c6f9i2l5o8r1uz"
	gConfig2  = "3p6s9v2y5b8e1h4k7n0q3t6w1"
	gSnapshot = 19 // the format 0 snapshot's index
)

var goldenBase = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

// goldenAt is the leader's stamp of the entry at index i.
func goldenAt(i int) time.Time { return goldenBase.Add(time.Duration(10*i) * time.Second) }

func goldenKey(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// goldenWebSpec is the web service's spec as format 0 stored it (the
// secret and config references resolved by the FSM).
func goldenWebSpec() ServiceSpec {
	grace, monitor, delay := 30*time.Second, 5*time.Second, 2*time.Second
	return ServiceSpec{
		Name: "web", Labels: map[string]string{"tier": "front"}, Image: "docker.io/library/nginx:1.27",
		Args: []string{"nginx", "-g", "daemon off;"}, Env: []string{"MODE=prod", "WORKERS=4"},
		ContainerLabels: map[string]string{"team": "web"}, Mode: Replicated(2),
		Placement:       Placement{Constraints: []string{"node.role==worker"}, Preferences: []PlacementPreference{{Spread: "node.labels.zone"}}},
		Resources:       ResourceRequirements{Limits: Resources{NanoCPUs: 5e8, MemoryBytes: 256 << 20}},
		RestartPolicy:   RestartPolicy{Condition: RestartOnFailure, Delay: &delay, MaxAttempts: 3, Window: time.Minute},
		StopGracePeriod: &grace,
		Mounts:          []Mount{{Type: MountTmpfs, Target: "/var/cache/nginx", TmpfsSizeBytes: 64 << 20}},
		Healthcheck:     &Healthcheck{Test: []string{"CMD", "curl", "-f", "http://localhost/"}, Interval: 10 * time.Second, Timeout: 2 * time.Second, Retries: 3},
		Ports:           []PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: PublishHost}},
		UpdateConfig:    &UpdateConfig{Parallelism: 1, Delay: 5 * time.Second, FailureAction: UpdateActionRollback, Monitor: &monitor, Order: UpdateStartFirst},
		Secrets:         []SecretReference{{SecretID: gSecretID, SecretName: "db-password", Target: FileTarget{Name: "db-password", Mode: 0400}}},
		Configs:         []ConfigReference{{ConfigID: gConfigID, ConfigName: "nginx.conf", Target: FileTarget{Name: "/etc/nginx/nginx.conf"}}},
	}
}

// goldenEntry is one entry of the golden log: the command a leader
// proposed at Index, and what Apply returns for it.
type goldenEntry struct {
	Index uint64
	Name  string
	Cmd   *command
	// Want is nil (applied), a sentinel the refusal wraps, or the
	// *applyOutcome of a request ID applied before.
	Want any
}

func (e goldenEntry) file() string {
	return filepath.Join(goldenDir, "log", fmt.Sprintf("%03d-%s.entry", e.Index, e.Name))
}

// goldenLog is the log after the format 0 snapshot: one entry of every
// command type and every task op, client writes with request IDs, a retry
// of one, refusals that the dedupe table remembers, and a stamp behind its
// predecessor's (a new leader whose clock is behind).
func goldenLog() []goldenEntry {
	web2 := goldenWebSpec()
	web2.Image = "docker.io/library/nginx:1.28"
	web2.Env = append(web2.Env, "FEATURE=on")
	prev := goldenWebSpec()
	cmds := []goldenEntry{
		{Name: "node-state", Cmd: &command{Type: cmdNodeState, ID: gWorker1, NodeState: NodeDown, Message: "heartbeat failure"}},
		{Name: "node-update", Cmd: &command{Type: cmdNodeUpdate, ID: gWorker1, Version: 20, ReqID: "7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c2e",
			Node: &NodeInfo{Availability: AvailabilityDrain, Labels: map[string]string{"zone": "a"}}}},
		{Name: "tasks-desired-create", Cmd: &command{Type: cmdTasks, Ops: []taskOp{
			{Op: opDesired, ID: gWeb1, State: TaskShutdown},
			{Op: opCreate, FromService: true, Task: &Task{ID: gWeb3, ServiceID: gWebID, ServiceName: "web", Slot: 1, SpecVersion: 1,
				Attempt: 1, DesiredState: TaskRunning, Status: TaskStatus{State: TaskNew, Message: "created"}}},
		}}},
		{Name: "tasks-pending-assign", Cmd: &command{Type: cmdTasks, Ops: []taskOp{
			{Op: opPending, ID: gWeb3, Status: &TaskStatus{Message: "no suitable node (1 node not available for new tasks)"}},
			{Op: opAssign, ID: gWeb3, NodeID: gWorker2},
		}}},
		{Name: "tasks-status", Cmd: &command{Type: cmdTasks, Ops: []taskOp{
			{Op: opStatus, ID: gWeb1, NodeID: gWorker1, Status: &TaskStatus{State: TaskShutdown, Message: "shutdown", ContainerID: "c0ffee01", ExitCode: 0}},
			{Op: opStatus, ID: gWeb3, NodeID: gWorker2, Status: &TaskStatus{State: TaskRunning, Message: "started", ContainerID: "c0ffee04"}},
		}}},
		{Name: "tasks-delete", Cmd: &command{Type: cmdTasks, Ops: []taskOp{{Op: opDelete, ID: gWeb1}}}},
		{Name: "service-update", Cmd: &command{Type: cmdServiceUpdate, Version: 10, ReqID: "0b9e8d7c6b5a49382716f5e4d3c2b1a0",
			Service: &Service{ID: gWebID, Spec: web2, PreviousSpec: &prev, SpecVersion: 2,
				UpdateStatus: &UpdateStatus{State: UpdateUpdating, Message: "update in progress"}}}},
		// A retry of the same write after a lost reply: the first
		// outcome, nothing applied.
		{Name: "service-update-retry", Want: &applyOutcome{Index: 26}},
		{Name: "service-status", Cmd: &command{Type: cmdServiceStatus, ID: gWebID,
			Service: &Service{SpecVersion: 2, UpdateStatus: &UpdateStatus{State: UpdateCompleted, StartedAt: goldenAt(26), Message: "update completed"}}}},
		{Name: "service-create-conflict", Want: ErrNameConflict, Cmd: &command{Type: cmdServiceCreate, ReqID: "5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a",
			Service: &Service{ID: "9r2u5x8a1d4g7j0m3p6s9v2yb", SpecVersion: 1, Spec: ServiceSpec{Name: "web", Image: "docker.io/library/httpd:2.4", Mode: Replicated(1)}}}},
		{Name: "secret-update", Cmd: &command{Type: cmdSecretUpdate, ID: gSecretID, Version: 8, ReqID: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
			Labels: map[string]string{"app": "web", "rotated": "2026-01"}}},
		{Name: "config-update", Cmd: &command{Type: cmdConfigUpdate, ID: gConfigID, Version: 9, ReqID: "b2c3d4e5f60718293a4b5c6d7e8f90a1",
			Labels: map[string]string{"owner": "web"}}},
		{Name: "secret-create", Cmd: &command{Type: cmdSecretCreate, ReqID: "c3d4e5f60718293a4b5c6d7e8f90a1b2",
			Secret: &secretRecord{Secret: Secret{ID: gSecret2, Spec: SecretSpec{Name: "api-token"}}, Sealed: []byte("nonce+ciphertext of the api token")}}},
		{Name: "secret-remove", Cmd: &command{Type: cmdSecretRemove, ID: gSecret2, ReqID: "d4e5f60718293a4b5c6d7e8f90a1b2c3"}},
		{Name: "config-create", Cmd: &command{Type: cmdConfigCreate, ReqID: "e5f60718293a4b5c6d7e8f90a1b2c3d4",
			Config: &ConfigObject{ID: gConfig2, Spec: ConfigSpec{Name: "old.conf", Labels: map[string]string{"stale": "yes"}, Data: []byte("# unused\n")}}}},
		{Name: "config-remove", Cmd: &command{Type: cmdConfigRemove, ID: gConfig2, ReqID: "f60718293a4b5c6d7e8f90a1b2c3d4e5"}},
		{Name: "secret-remove-in-use", Want: ErrInUse, Cmd: &command{Type: cmdSecretRemove, ID: gSecretID, ReqID: "0718293a4b5c6d7e8f90a1b2c3d4e5f6"}},
		{Name: "keys-autolock", Cmd: &command{Type: cmdKeys, Version: 3, ReqID: "18293a4b5c6d7e8f90a1b2c3d4e5f607",
			Keys: &keysRecord{KeyID: "dek-6f1c2a9b", AutoLock: true, SealedUnlockKey: []byte("unlock key sealed with the DEK")}}},
		{Name: "rotate-token", Cmd: &command{Type: cmdRotateToken, ReqID: "293a4b5c6d7e8f90a1b2c3d4e5f60718",
			Sec: &securityCmd{Role: RoleManager, Secret: "4k5l6m7n8o9p0q1r2s3t4u5v6"}}},
		{Name: "gossip-keys", Cmd: &command{Type: cmdGossipKeys, Sec: &securityCmd{Keys: [][]byte{goldenKey(101)}}}},
		{Name: "ca-key", Cmd: &command{Type: cmdCAKey, Sec: &securityCmd{CAKey: []byte("rotated CA key sealed with the DEK")}}},
		{Name: "node-upsert", Cmd: &command{Type: cmdNodeUpsert, Version: 1, Node: &NodeInfo{ID: gWorker3, Hostname: "worker-3",
			Addr: "10.0.0.4:4242", GossipAddr: "10.0.0.4:7946", Role: RoleWorker, EngineLabels: map[string]string{"rack": "r2"},
			Resources: Resources{NanoCPUs: 2e9, MemoryBytes: 4 << 30}, Platform: Platform{OS: "linux", Arch: "arm64"}, NoRuntime: true}}},
		{Name: "node-remove-stamped-behind", Cmd: &command{Type: cmdNodeRemove, ID: gWorker3, ReqID: "3a4b5c6d7e8f90a1b2c3d4e5f6071829"}},
		{Name: "node-spec", Cmd: &command{Type: cmdNodeSpec, ID: gWorker2, Version: 7, ReqID: "4b5c6d7e8f90a1b2c3d4e5f60718293a",
			Node: &NodeInfo{Labels: map[string]string{"zone": "b", "disk": "ssd"}}}},
		{Name: "service-remove", Cmd: &command{Type: cmdServiceRemove, ID: gJobID, ReqID: "5c6d7e8f90a1b2c3d4e5f60718293a4b"}},
		{Name: "tasks-delete-job", Cmd: &command{Type: cmdTasks, Ops: []taskOp{{Op: opDelete, ID: gJob1}}}},
		{Name: "node-update-stale", Want: ErrVersionConflict, Cmd: &command{Type: cmdNodeUpdate, ID: gWorker2, Version: 7,
			ReqID: "6d7e8f90a1b2c3d4e5f60718293a4b5c", Node: &NodeInfo{Availability: AvailabilityPause}}},
	}
	for i := range cmds {
		e := &cmds[i]
		e.Index = uint64(gSnapshot + 1 + i)
		if e.Cmd == nil { // a retry: the previous entry again
			e.Cmd = cmds[i-1].Cmd
			continue
		}
		e.Cmd.Time = goldenAt(int(e.Index))
		if e.Name == "node-remove-stamped-behind" {
			e.Cmd.Time = goldenAt(int(e.Index) - 5)
		}
	}
	return cmds
}

// cmdTypesDeclared returns the cmdType constants of the package's
// non-test files.
func cmdTypesDeclared(t *testing.T) []cmdType {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var out []cmdType
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "cmdType" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					require.True(t, ok, "%s: cmdType constants are string literals", name)
					var s string
					require.NoError(t, json.Unmarshal([]byte(lit.Value), &s))
					out = append(out, cmdType(s))
				}
			}
		}
	}
	return out
}

// Each entry of testdata/golden/log decodes to the command the test
// spells out, and that command encodes to the same bytes: renaming a
// field, a JSON tag or a command type fails here.
func TestGoldenCommands(t *testing.T) {
	log := goldenLog()
	if *updateGolden {
		require.NoError(t, os.RemoveAll(filepath.Join(goldenDir, "log")))
		require.NoError(t, os.MkdirAll(filepath.Join(goldenDir, "log"), 0o755))
	}
	want := map[string]bool{}
	types := map[cmdType]bool{}
	ops := map[taskOpKind]bool{}
	for _, e := range log {
		enc, err := encodeCommand(e.Cmd)
		require.NoError(t, err)
		require.Equal(t, commandVersion, enc[0])
		want[filepath.Base(e.file())] = true
		if *updateGolden {
			require.NoError(t, os.WriteFile(e.file(), enc, 0o644))
			continue
		}
		data, err := os.ReadFile(e.file())
		require.NoError(t, err, "missing fixture (new entry? run go test -run TestGolden -update)")
		got, err := decodeCommand(data)
		require.NoError(t, err, e.file())
		require.Equal(t, e.Cmd, got, "%s decodes to another command", e.file())
		require.Equal(t, string(data), string(enc), "%s: the command encodes differently now", e.file())
		types[got.Type] = true
		for _, op := range got.Ops {
			ops[op.Op] = true
		}
	}
	if *updateGolden {
		return
	}
	// Nothing else in the directory, and every type is there.
	files, err := os.ReadDir(filepath.Join(goldenDir, "log"))
	require.NoError(t, err)
	for _, f := range files {
		require.True(t, want[f.Name()], "stale fixture %s (run go test -run TestGolden -update)", f.Name())
	}
	// The cluster-init command is in the format 0 fixture's history; the
	// log after it needs no second one.
	types[cmdClusterInit] = true
	for _, ct := range cmdTypesDeclared(t) {
		require.True(t, types[ct], "no golden entry of command type %q: add one to goldenLog", ct)
	}
	for op := opCreate; op <= opDelete; op++ {
		require.True(t, ops[op], "no golden entry of task op %d", op)
	}
	ci := &command{Type: cmdClusterInit, Time: goldenAt(1), Cluster: &clusterRecord{ID: gClusterID}}
	enc, err := encodeCommand(ci)
	require.NoError(t, err)
	require.Equal(t, "\x01"+`{"t":"cluster-init","tm":"2026-01-02T03:04:10Z","c":{"ID":"5qz8f0c2hj7n1m4k9x3w6v2bt","CreatedAt":"0001-01-01T00:00:00Z","WorkerSecret":"","ManagerSecret":"","Digest":""}}`, string(enc))
}

// goldenState describes an FSM's replicated state: everything a snapshot
// holds (nodes, services, tasks with their specs, secrets, configs, keys,
// the cluster record, the clock, the dedupe table), as indented JSON.
func goldenState(t *testing.T, f *fsm) []byte {
	t.Helper()
	var d *snapshotData
	f.read(func(s *state) { d = s.export() })
	if f.dedupe != nil {
		d.Dedupe = f.dedupe.export()
	}
	b, err := json.MarshalIndent(d, "", "\t")
	require.NoError(t, err)
	return append(b, '\n')
}

// checkGolden compares got with the fixture name, or rewrites it with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing fixture (run go test -run TestGolden -update)")
	require.Equal(t, string(want), string(got), "%s differs", path)
}

func restoreGolden(t *testing.T, name string) *fsm {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, name))
	require.NoError(t, err)
	f := newFSM()
	require.NoError(t, f.Restore(&memSink{buf: data}))
	return f
}

// canonicalJSON decodes b into generic values, for comparisons that ignore
// key order and whitespace.
func canonicalJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

// An old snapshot and the log after it decode into the expected state: the
// format 0 snapshot restores without losing a field, the golden log
// applies onto it with the expected outcomes, the result is the golden
// state and snapshots to the golden format 2 file, and that file restores
// to the same state, dedupe table included.
func TestGoldenReplay(t *testing.T) {
	// Format 0, frozen: the export of what it restores is what it holds.
	old, err := os.ReadFile(filepath.Join(goldenDir, "snapshot-format0.json"))
	require.NoError(t, err)
	f := restoreGolden(t, "snapshot-format0.json")
	require.Equal(t, canonicalJSON(t, old), canonicalJSON(t, goldenState(t, f)), "restoring the format 0 snapshot lost or changed something")
	require.Equal(t, uint64(gSnapshot), f.appliedIndex())

	// The log, read from the fixtures (TestGoldenCommands pins them).
	for _, e := range goldenLog() {
		data, err := os.ReadFile(e.file())
		if *updateGolden && os.IsNotExist(err) {
			data, err = encodeCommand(e.Cmd)
		}
		require.NoError(t, err)
		res := f.Apply(&raft.Log{Index: e.Index, Term: 2, Type: raft.LogCommand, Data: data})
		switch want := e.Want.(type) {
		case nil:
			require.Nil(t, res, "entry %d (%s)", e.Index, e.Name)
		case *applyOutcome:
			require.Equal(t, want, res, "entry %d (%s)", e.Index, e.Name)
		case error:
			require.ErrorIs(t, res.(error), want, "entry %d (%s)", e.Index, e.Name)
		}
	}
	final := goldenState(t, f)
	checkGolden(t, "state.json", final)

	// A few facts of the golden state, in words.
	f.read(func(s *state) {
		require.Equal(t, uint64(46), s.index)
		require.Equal(t, goldenAt(45), s.clock, "the clock is the last applied entry's stamp (46 was refused)")
		require.Equal(t, goldenAt(24), s.tasks[gWeb3].UpdatedAt)
		require.Equal(t, goldenAt(41).Add(time.Nanosecond), s.cluster.Revoked[gWorker3],
			"an entry stamped behind its predecessor is moved just after it")
		require.Len(t, s.services, 1)
		web := s.services[gWebID]
		require.Equal(t, "docker.io/library/nginx:1.28", web.Spec.Image)
		require.Equal(t, uint64(2), web.SpecVersion)
		require.Equal(t, UpdateCompleted, web.UpdateStatus.State)
		require.Equal(t, goldenAt(26), web.UpdateStatus.StartedAt)
		require.Equal(t, goldenAt(28), web.UpdateStatus.CompletedAt)
		require.Equal(t, "docker.io/library/nginx:1.27", web.PreviousSpec.Image)
		require.Equal(t, []string{gWeb3, gWeb2}, sortedKeys(s.tasks))
		require.Equal(t, TaskRunning, s.tasks[gWeb3].Status.State)
		require.Equal(t, gWorker2, s.tasks[gWeb3].NodeID)
		require.Equal(t, "docker.io/library/nginx:1.27", s.tasks[gWeb3].Spec.Image, "created before the update, from spec 1")
		require.Equal(t, []string{gManager, gWorker2, gWorker1}, sortedNodeIDs(s))
		require.Equal(t, AvailabilityDrain, s.nodes[gWorker1].Availability)
		require.Equal(t, NodeDown, s.nodes[gWorker1].State)
		require.Equal(t, map[string]string{"zone": "b", "disk": "ssd"}, s.nodes[gWorker2].Labels)
		require.Equal(t, "4k5l6m7n8o9p0q1r2s3t4u5v6", s.cluster.ManagerSecret)
		require.Equal(t, [][]byte{goldenKey(101)}, s.cluster.GossipKeys)
		require.Equal(t, []byte("rotated CA key sealed with the DEK"), s.cluster.CAKey)
		require.True(t, s.keys.AutoLock)
		require.Len(t, s.secrets, 1)
		require.Equal(t, "2026-01", s.secrets[gSecretID].Spec.Labels["rotated"])
		require.Len(t, s.configs, 1)
	})
	// One dedupe entry per request ID, refusals with their sentinel's code.
	kinds := map[uint64]int{}
	for _, e := range f.dedupe.export() {
		kinds[e.Index] = e.ErrKind
	}
	require.Len(t, kinds, 16)
	require.Equal(t, 2, kinds[29], "ErrNameConflict")
	require.Equal(t, 15, kinds[36], "ErrInUse")
	require.Equal(t, 12, kinds[46], "ErrVersionConflict")

	// The current format: the snapshot of that state is the golden file.
	sink := persist(t, f)
	require.True(t, bytes.HasPrefix(sink.buf, []byte("{")))
	checkGolden(t, "snapshot-format2.json", sink.buf)

	// ...which restores to the same state.
	g := restoreGolden(t, "snapshot-format2.json")
	require.Equal(t, string(final), string(goldenState(t, g)))

	// The restored dedupe table answers retries with the first outcome,
	// its sentinel decoded from the code in the snapshot.
	log := goldenLog()
	for i, e := range log {
		if e.Want == nil || e.Cmd.ReqID == "" {
			continue
		}
		if _, ok := e.Want.(error); !ok {
			continue
		}
		data, err := encodeCommand(e.Cmd)
		require.NoError(t, err)
		res := g.Apply(&raft.Log{Index: uint64(47 + i), Term: 3, Type: raft.LogCommand, Data: data})
		out, ok := res.(*applyOutcome)
		require.True(t, ok, "entry %d (%s): a retry after the restore gets %v", e.Index, e.Name, res)
		require.Equal(t, e.Index, out.Index)
		require.ErrorIs(t, out.Err, e.Want.(error))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedNodeIDs(s *state) []string { return sortedKeys(s.nodes) }

// A refusal's message is replicated (the dedupe table, hence snapshots), so
// it must be the same on every manager: a command with several bad labels
// is refused for the same one whatever the map iteration order.
func TestApplyRefusalIsDeterministic(t *testing.T) {
	labels := map[string]string{}
	for _, k := range []string{"b key", "a key", "c key", "d\tkey", "e key", "f key"} {
		labels[k] = "v"
	}
	var first string
	for i := 0; i < 30; i++ {
		f := newFSM()
		require.NoError(t, applyCmd(t, f, 1, &command{Type: cmdNodeUpsert, Time: goldenAt(1), Node: &NodeInfo{ID: gWorker1, Hostname: "worker-1"}}))
		err := applyCmd(t, f, 2, &command{Type: cmdNodeSpec, Time: goldenAt(2), ID: gWorker1, ReqID: "r1", Node: &NodeInfo{Labels: labels}})
		require.ErrorIs(t, err, ErrInvalidSpec)
		es := f.dedupe.export()
		require.Len(t, es, 1)
		if i == 0 {
			first = es[0].ErrMsg
			require.Contains(t, first, `"a key"`)
		}
		require.Equal(t, first, es[0].ErrMsg)
	}
}
