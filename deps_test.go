package swarm_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The packages a program gets by importing swarm (or swarmtest) are part of
// the API: an embedder pays for every one in build time, binary size and
// audits. TestDeps pins them, as tailscale's depaware does: the non-standard
// packages of `go list -deps` must match testdata/deps.golden. Regenerate
// the file after an intended change with
//
//	SWARM_UPDATE_DEPS=1 go test -run '^TestDeps$' .
//
// and review the diff. No regeneration makes a container engine's package
// acceptable: those belong in package podman.

// depsGolden is the golden list of TestDeps.
const depsGolden = "testdata/deps.golden"

// depsPackages are the packages whose dependencies TestDeps pins.
var depsPackages = []string{"github.com/podswarm/swarm", "github.com/podswarm/swarm/swarmtest"}

// maxThirdParty caps the third-party packages of the core (issue 9: an SDK
// that embeds cleanly).
const maxThirdParty = 35

// forbiddenDep reports whether the core must never depend on p: Podman's
// bindings and the container-engine libraries they bring need build tags
// and cgo headers, and would make a plain `go build` of any embedder fail.
func forbiddenDep(p string) bool {
	for _, prefix := range []string{
		"github.com/containers/",
		"github.com/docker/",
		"github.com/moby/",
		"github.com/opencontainers/",
	} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return strings.Contains(p, "podman")
}

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	return p
}

// listDeps returns the non-standard packages pkg depends on (itself
// included), as a plain `go build` for linux/amd64 without cgo sees them:
// GOFLAGS is cleared so the Makefile's build tags cannot hide a package
// that needs them.
func listDeps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command(goTool(t), "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
	}
	var deps []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			deps = append(deps, l)
		}
	}
	return deps
}

// formatDeps renders the golden file: per package, its dependencies
// sorted, one a line.
func formatDeps(lists map[string][]string) string {
	var b strings.Builder
	b.WriteString("# Non-standard packages of `go list -deps` (GOOS=linux GOARCH=amd64 CGO_ENABLED=0, no tags).\n")
	b.WriteString("# Checked by TestDeps (deps_test.go); regenerate: SWARM_UPDATE_DEPS=1 go test -run '^TestDeps$' .\n")
	for _, pkg := range depsPackages {
		fmt.Fprintf(&b, "\n%s:\n", pkg)
		deps := slices.Sorted(slices.Values(lists[pkg]))
		for _, d := range deps {
			fmt.Fprintf(&b, "\t%s\n", d)
		}
	}
	return b.String()
}

func TestDeps(t *testing.T) {
	lists := map[string][]string{}
	for _, pkg := range depsPackages {
		deps := listDeps(t, pkg)
		lists[pkg] = deps
		third := 0
		for _, d := range deps {
			if forbiddenDep(d) {
				t.Errorf("%s depends on %s: container-engine packages belong in package podman only", pkg, d)
			}
			if !strings.HasPrefix(d, "github.com/podswarm/swarm") {
				third++
			}
		}
		if third > maxThirdParty {
			t.Errorf("%s has %d third-party packages, want at most %d", pkg, third, maxThirdParty)
		}
	}
	got := formatDeps(lists)
	if os.Getenv("SWARM_UPDATE_DEPS") != "" {
		if err := os.WriteFile(depsGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(depsGolden)
	if err != nil {
		t.Fatalf("%v (create it with SWARM_UPDATE_DEPS=1)", err)
	}
	if got != string(want) {
		t.Errorf("the dependencies changed; if that is intended, run SWARM_UPDATE_DEPS=1 go test -run '^TestDeps$' . and review the diff\n%s",
			depsDiff(string(want), got))
	}
}

// depsDiff lists the lines only in want (-) or only in got (+), each
// under the package whose list it is in.
func depsDiff(want, got string) string {
	keys := func(s string) []string {
		var out []string
		section := ""
		for _, l := range strings.Split(s, "\n") {
			if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, "\t") {
				section = strings.TrimSuffix(l, ":")
			}
			if strings.HasPrefix(l, "\t") {
				l = section + ": " + strings.TrimSpace(l)
			}
			out = append(out, l)
		}
		return out
	}
	set := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, k := range l {
			m[k] = true
		}
		return m
	}
	wk, gk := keys(want), keys(got)
	w, g := set(wk), set(gk)
	var b strings.Builder
	for _, k := range wk {
		if !g[k] {
			fmt.Fprintf(&b, "-%s\n", k)
		}
	}
	for _, k := range gk {
		if !w[k] {
			fmt.Fprintf(&b, "+%s\n", k)
		}
	}
	return b.String()
}
