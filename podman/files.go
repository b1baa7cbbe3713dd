package podman

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containers/podman/v4/pkg/specgen"
	"github.com/containers/storage/pkg/idtools"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	swarm "github.com/podswarm/swarm"
)

// Secrets and configs in Podman containers. As Docker does, Runtime
// writes each file on a tmpfs of the host (podmanFilesDir, /dev/shm) with
// the file's mode and its owner mapped through the service's user
// namespace, and bind-mounts it read-only at its path in the container.
// Once the container has started the staged copy is unlinked: the mount
// keeps the tmpfs inode alive for the container alone, and the memory is
// freed with the container. The data never touches a persistent disk; a
// host without a tmpfs there, or a remote Podman socket (whose host this
// process cannot write to), fails Create with ErrInvalidSpec rather than
// put it elsewhere.

// podmanFilesDir is the tmpfs directory files are staged in: one
// directory per node (named by its ID), one per container in it, so what a
// node staged can be found and removed after it crashed (PruneStaged).
const podmanFilesDir = "/dev/shm/podswarm"

// tmpfsMagic is TMPFS_MAGIC from linux/magic.h.
const tmpfsMagic = 0x01021994

// hostID maps a container uid or gid to the host's through the service's
// user namespace (identity for a rootful service).
func hostID(id uint32, m []idtools.IDMap) (int, bool) {
	if len(m) == 0 {
		return int(id), true
	}
	for _, e := range m {
		if int64(id) >= int64(e.ContainerID) && int64(id) < int64(e.ContainerID)+int64(e.Size) {
			return e.HostID + int(int64(id)-int64(e.ContainerID)), true
		}
	}
	return 0, false
}

// stageFiles writes a container's secrets and configs to a fresh
// directory on the tmpfs and adds their read-only bind mounts to s. It
// returns the directory ("" when there are no files); the caller removes
// it if the container is not created.
func (r *Runtime) stageFiles(c swarm.ContainerConfig, s *specgen.SpecGenerator) (string, error) {
	if len(c.Secrets) == 0 && len(c.Configs) == 0 {
		return "", nil
	}
	if !r.host.local {
		return "", invalidf("secrets and configs: the Podman socket %s is not local, so they cannot be staged on a tmpfs of its host", r.uri)
	}
	taken := map[string]string{}
	for _, m := range s.Mounts {
		taken[path.Clean(m.Destination)] = "mount"
	}
	for _, v := range s.Volumes {
		taken[path.Clean(v.Dest)] = "volume"
	}
	type staged struct {
		f    swarm.ContainerFile
		kind string
	}
	var files []staged
	for _, f := range c.Secrets {
		files = append(files, staged{f, "secret"})
	}
	for _, f := range c.Configs {
		files = append(files, staged{f, "config"})
	}
	for _, sf := range files {
		p := sf.f.Path
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return "", invalidf("%s %q: path %q must be a clean absolute file path", sf.kind, sf.f.Name, p)
		}
		if what, dup := taken[p]; dup {
			return "", invalidf("%s %q: path %s is also the target of a %s", sf.kind, sf.f.Name, p, what)
		}
		taken[p] = sf.kind + " " + sf.f.Name
	}

	base, err := ensureFilesBase()
	if err != nil {
		return "", err
	}
	rootUID, ok1 := hostID(0, r.host.uidMap)
	rootGID, ok2 := hostID(0, r.host.gidMap)
	if !ok1 || !ok2 {
		return "", invalidf("secrets and configs: the Podman service's user namespace maps no root")
	}
	nodeDir := filepath.Join(base, stagingName(c.NodeID))
	if err := os.Mkdir(nodeDir, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("staging files: %w", err)
	}
	if err := checkOwnDir(nodeDir); err != nil {
		return "", err
	}
	dir := filepath.Join(nodeDir, stagingName(c.Name))
	if err := os.RemoveAll(dir); err != nil { // a leftover of a crash
		return "", fmt.Errorf("staging files: %w", err)
	}
	// Only the container's root (as which the OCI runtime mounts) may
	// enter the directory.
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("staging files: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(dir)
		return "", err
	}
	if err := chownIfNeeded(dir, rootUID, rootGID); err != nil {
		return fail(invalidf("secrets and configs: cannot hand the staging directory to the container's root (host uid %d): %v", rootUID, err))
	}
	for i, sf := range files {
		uid, ok1 := hostID(sf.f.UID, r.host.uidMap)
		gid, ok2 := hostID(sf.f.GID, r.host.gidMap)
		if !ok1 || !ok2 {
			return fail(invalidf("%s %q: uid %d or gid %d is not mapped in the Podman service's user namespace", sf.kind, sf.f.Name, sf.f.UID, sf.f.GID))
		}
		src := filepath.Join(dir, fmt.Sprintf("%s%d", sf.kind[:1], i))
		if err := writeStaged(src, sf.f.Data); err != nil {
			return fail(fmt.Errorf("staging %s %q: %w", sf.kind, sf.f.Name, err))
		}
		if err := chownIfNeeded(src, uid, gid); err != nil {
			return fail(invalidf("%s %q: cannot give the file to uid %d gid %d (host %d:%d); a process that is not root can only stage files for the container's root: %v",
				sf.kind, sf.f.Name, sf.f.UID, sf.f.GID, uid, gid, err))
		}
		if err := os.Chmod(src, sf.f.Mode.Perm()); err != nil {
			return fail(fmt.Errorf("staging %s %q: %w", sf.kind, sf.f.Name, err))
		}
		s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: src, Destination: sf.f.Path,
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec", "rprivate"}})
	}
	return dir, nil
}

// ensureFilesBase makes podmanFilesDir (mode 0711: traversable, not
// listable) and checks that it is on a tmpfs and ours, not a directory or
// link another user planted in the world-writable /dev/shm.
func ensureFilesBase() (string, error) {
	base := podmanFilesDir
	if err := os.MkdirAll(base, 0o711); err != nil {
		return "", fmt.Errorf("staging files: %w", err)
	}
	if err := checkOwnDir(base); err != nil {
		return "", err
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(base, &fs); err != nil {
		return "", fmt.Errorf("staging files: %w", err)
	}
	if int64(fs.Type) != tmpfsMagic {
		return "", invalidf("secrets and configs: %s is not on a tmpfs, and they must stay off persistent disks", base)
	}
	return base, nil
}

// checkOwnDir checks that dir is a directory (not a link) owned by this
// process's user, and makes its mode 0711.
func checkOwnDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("staging files: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("staging files: %s is not a directory owned by this process's user", dir)
	}
	if fi.Mode().Perm() != 0o711 {
		if err := os.Chmod(dir, 0o711); err != nil {
			return fmt.Errorf("staging files: %w", err)
		}
	}
	return nil
}

// stagingName makes a node ID or container name a single path element.
func stagingName(s string) string {
	s = strings.ReplaceAll(s, "/", "_")
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

func writeStaged(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func chownIfNeeded(p string, uid, gid int) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	return os.Lchown(p, uid, gid)
}

// trackStaged remembers a created container's staging directory.
func (r *Runtime) trackStaged(id, dir string) {
	if dir == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.staged == nil {
		r.staged = map[string]string{}
	}
	r.staged[id] = dir
}

// dropStaged removes a container's staged files: once it has started (its
// mounts hold the data) or when it is removed. On failure the directory
// stays tracked, for the next try.
func (r *Runtime) dropStaged(id string) error {
	r.mu.Lock()
	dir, ok := r.staged[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the staged secrets and configs of container %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.staged, id)
	r.mu.Unlock()
	return nil
}
