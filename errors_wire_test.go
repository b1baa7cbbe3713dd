package swarm

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// pinnedErrorCodes is the wire table of errorCodes as released: the code
// each sentinel travels as, in RPC replies and in snapshots' dedupe
// tables. Never edit a line; a new sentinel gets a new line at the end
// (and in errorCodes) with the next code.
var pinnedErrorCodes = []struct {
	code int
	name string
	err  error
}{
	{1, "ErrNotFound", ErrNotFound},
	{2, "ErrNameConflict", ErrNameConflict},
	{3, "ErrAmbiguous", ErrAmbiguous},
	{4, "ErrNotManager", ErrNotManager},
	{5, "ErrNoLeader", ErrNoLeader},
	{6, "ErrInvalidSpec", ErrInvalidSpec},
	{7, "ErrShutdown", ErrShutdown},
	{8, "ErrInvalidToken", ErrInvalidToken},
	{9, "ErrNotInSwarm", ErrNotInSwarm},
	{10, "ErrAlreadyInSwarm", ErrAlreadyInSwarm},
	{11, "ErrLastManager", ErrLastManager},
	{12, "ErrVersionConflict", ErrVersionConflict},
	{13, "ErrNodeNotDown", ErrNodeNotDown},
	{14, "ErrQuorumLoss", ErrQuorumLoss},
	{15, "ErrInUse", ErrInUse},
	{16, "ErrLocked", ErrLocked},
	{17, "ErrInvalidUnlockKey", ErrInvalidUnlockKey},
	{18, "ErrPermissionDenied", ErrPermissionDenied},
	{19, "ErrEventsTruncated", ErrEventsTruncated},
}

// localOnlyErrors are exported sentinels that never cross the network nor
// reach the replicated state, with the reason; they need no code.
// None today (podman.ErrNoPodman lives in package podman).
var localOnlyErrors = map[string]string{}

// exportedSentinels returns the names of the package-level exported Err*
// variables declared in the package's non-test files.
func exportedSentinels(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var names []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		if f.Name.Name != "swarm" {
			continue
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, sp := range gd.Specs {
				for _, id := range sp.(*ast.ValueSpec).Names {
					if strings.HasPrefix(id.Name, "Err") && id.IsExported() {
						names = append(names, id.Name)
					}
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// Every exported sentinel has exactly one code, the codes are unique, and
// the table is the pinned one: moving a variable to another file, renaming
// it or reordering declarations cannot change the wire.
func TestErrorCodesArePinned(t *testing.T) {
	require.Len(t, errorCodes, len(pinnedErrorCodes), "errorCodes and pinnedErrorCodes differ in length: add new sentinels to both, at the end")
	for i, p := range pinnedErrorCodes {
		require.Equal(t, p.code, errorCodes[i].code, "entry %d (%s)", i, p.name)
		require.Same(t, p.err, errorCodes[i].err, "code %d is %s", p.code, p.name)
	}

	codes := map[int]string{}
	errs := map[error]int{}
	names := map[string]bool{}
	for _, p := range pinnedErrorCodes {
		require.Greater(t, p.code, 0, "%s: codes are positive (0 is no error, -1 no sentinel)", p.name)
		require.NotContains(t, codes, p.code, "code %d given to %s and %s", p.code, codes[p.code], p.name)
		require.NotContains(t, errs, p.err, "%s has two codes", p.name)
		require.False(t, names[p.name], "%s listed twice", p.name)
		codes[p.code], errs[p.err], names[p.name] = p.name, p.code, true
		require.True(t, strings.HasPrefix(p.err.Error(), "swarm: "), "%s: %q", p.name, p.err)
	}

	declared := exportedSentinels(t)
	require.NotEmpty(t, declared)
	seen := map[string]bool{}
	for _, name := range declared {
		seen[name] = true
		if _, ok := localOnlyErrors[name]; ok {
			continue
		}
		require.True(t, names[name], "exported sentinel %s has no wire code: add it to errorCodes (errors.go) and pinnedErrorCodes with the next code", name)
	}
	for name := range names {
		require.True(t, seen[name], "pinnedErrorCodes lists %s, which the package does not declare (renamed? keep the code, fix the name)", name)
	}
}

// The envelope's bytes for each sentinel are pinned, and every code
// decodes back to its sentinel.
func TestErrorCodesOnTheWire(t *testing.T) {
	for _, p := range pinnedErrorCodes {
		var env rpcEnvelope
		env.setErr(fmt.Errorf("service %q: %w", "web", p.err))
		b, err := json.Marshal(&env)
		require.NoError(t, err)
		msg, _ := json.Marshal(fmt.Sprintf("service %q: %s", "web", p.err))
		require.Equal(t, fmt.Sprintf(`{"e":%s,"k":%d}`, msg, p.code), string(b), p.name)

		var back rpcEnvelope
		require.NoError(t, json.Unmarshal(b, &back))
		got := back.err()
		require.ErrorIs(t, got, p.err, p.name)
		require.Equal(t, env.ErrMsg, got.Error())
		for _, q := range pinnedErrorCodes {
			if q.err != p.err && !errors.Is(p.err, q.err) {
				require.NotErrorIs(t, got, q.err, "%s decodes as %s too", p.name, q.name)
			}
		}
	}

	// An error wrapping no sentinel, and a code from a newer peer, come
	// back with their message and no sentinel.
	var env rpcEnvelope
	env.setErr(errors.New("disk on fire"))
	b, err := json.Marshal(&env)
	require.NoError(t, err)
	require.Equal(t, `{"e":"disk on fire","k":-1}`, string(b))
	for _, raw := range []string{`{"e":"disk on fire","k":-1}`, `{"e":"disk on fire","k":9999}`, `{"e":"disk on fire","k":-7}`} {
		var back rpcEnvelope
		require.NoError(t, json.Unmarshal([]byte(raw), &back))
		got := back.err()
		require.Error(t, got, raw)
		require.Equal(t, "disk on fire", got.Error())
		for _, q := range pinnedErrorCodes {
			require.NotErrorIs(t, got, q.err, raw)
		}
	}
	// No error: no code, nothing decoded.
	var none rpcEnvelope
	require.NoError(t, json.Unmarshal([]byte(`{"b":{}}`), &none))
	require.NoError(t, none.err())
}
