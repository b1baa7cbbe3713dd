package swarm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// identity is what a node keeps in DataDir/node.json to resume its place
// in the swarm after a restart.
type identity struct {
	NodeID     string
	ClusterID  string
	Role       Role
	Addr       string
	GossipAddr string
	// Managers are control addresses of managers, for rejoining.
	Managers []string
	// Digest is the swarm's digest as join tokens carry it, so a restart
	// with a token of another swarm is refused.
	Digest string
}

const identityFile = "node.json"

// loadIdentity reads DataDir/node.json; it returns nil, nil when there is none.
func loadIdentity(dataDir string) (*identity, error) {
	if dataDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("swarm: read node identity: %w", err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("swarm: %s is corrupt: %w", filepath.Join(dataDir, identityFile), err)
	}
	if id.NodeID == "" || id.ClusterID == "" {
		return nil, fmt.Errorf("swarm: %s is incomplete", filepath.Join(dataDir, identityFile))
	}
	return &id, nil
}

// save writes the identity atomically (temp file, fsync, rename).
func (id *identity) save(dataDir string) error {
	if dataDir == "" {
		return nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("swarm: create DataDir: %w", err)
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, identityFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("swarm: save node identity: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("swarm: save node identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("swarm: save node identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("swarm: save node identity: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dataDir, identityFile))
}

// wipeDataDir removes what the node wrote to DataDir (after Leave).
func wipeDataDir(dataDir string) error {
	if dataDir == "" {
		return nil
	}
	for _, name := range []string{identityFile, "raft.db", "snapshots"} {
		if err := os.RemoveAll(filepath.Join(dataDir, name)); err != nil {
			return err
		}
	}
	return nil
}
