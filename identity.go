package swarm

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
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
	for _, name := range []string{identityFile, "raft.db", "snapshots", keyFileName, certDir} {
		if err := os.RemoveAll(filepath.Join(dataDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// A node's key material lives in DataDir/certificates, as Swarm keeps it:
// the root CA certificate, the node's certificate and private key, on
// managers the CA key sealed with the data key (keys.json), and the
// security state (gossip keyring, removed nodes). Files holding keys are
// mode 0600.
const (
	certDir        = "certificates"
	caCertFile     = "swarm-root-ca.crt"
	nodeCertFile   = "swarm-node.crt"
	nodeKeyFile    = "swarm-node.key"
	sealedCAFile   = "swarm-root-ca.key.sealed"
	secStateFile   = "security.json"
	pemSealedCAKey = "SEALED CA PRIVATE KEY"
)

// writeFileAtomic writes a file by temp file, fsync and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp)
		return werr
	}
	return os.Rename(tmp, path)
}

// saveCreds writes a node's credentials to DataDir ("" = nothing to do).
func saveCreds(dataDir string, c *nodeCreds) error {
	if dataDir == "" {
		return nil
	}
	dir := filepath.Join(dataDir, certDir)
	keyDER, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		return err
	}
	type file struct {
		name string
		data []byte
		perm os.FileMode
	}
	files := []file{
		{caCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.ca.Raw}), 0o644},
		// The key first: a certificate is never on disk without its key.
		{nodeKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600},
		{nodeCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.leaf.Raw}), 0o644},
	}
	if len(c.caKeySealed) > 0 {
		files = append(files, file{sealedCAFile, pem.EncodeToMemory(&pem.Block{Type: pemSealedCAKey, Bytes: c.caKeySealed}), 0o600})
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("swarm: save %s: %w", f.name, err)
		}
	}
	if len(c.caKeySealed) == 0 {
		if err := os.Remove(filepath.Join(dir, sealedCAFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("swarm: remove %s: %w", sealedCAFile, err)
		}
	}
	return nil
}

// loadCreds reads a node's credentials from DataDir.
func loadCreds(dataDir string) (*nodeCreds, error) {
	dir := filepath.Join(dataDir, certDir)
	read := func(name, typ string) (*pem.Block, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("swarm: %s holds a swarm but no %s; clear it and join again", dataDir, filepath.Join(certDir, name))
			}
			return nil, fmt.Errorf("swarm: read %s: %w", name, err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != typ {
			return nil, fmt.Errorf("swarm: %s is not a PEM %s", filepath.Join(dir, name), typ)
		}
		return blk, nil
	}
	caBlk, err := read(caCertFile, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	certBlk, err := read(nodeCertFile, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	keyBlk, err := read(nodeKeyFile, "EC PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(keyBlk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("swarm: %s: %w", nodeKeyFile, err)
	}
	c, err := newCreds(caBlk.Bytes, certBlk.Bytes, key)
	if err != nil {
		return nil, err
	}
	if c.role() == RoleManager {
		if blk, err := read(sealedCAFile, pemSealedCAKey); err == nil {
			c.caKeySealed = blk.Bytes
		}
	}
	return c, nil
}

// saveSecState writes the security state (gossip keyring, removed nodes).
func saveSecState(dataDir string, st *secState) error {
	if dataDir == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dataDir, certDir, secStateFile), b, 0o600)
}

// loadSecState reads the security state from DataDir.
func loadSecState(dataDir string) (*secState, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, certDir, secStateFile))
	if err != nil {
		return nil, fmt.Errorf("swarm: read the gossip keyring: %w", err)
	}
	var st secState
	if err := json.Unmarshal(b, &st); err != nil || len(st.Keyring.Keys) == 0 {
		return nil, fmt.Errorf("swarm: %s is corrupt", filepath.Join(dataDir, certDir, secStateFile))
	}
	return &st, nil
}
