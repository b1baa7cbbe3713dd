package swarm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Encryption at rest and autolock.
//
// Every manager holds the swarm's data-encryption key (DEK, 256 bits): the
// leader's API seals each secret's data with it (AES-256-GCM, a random
// nonce, the secret's ID as additional data) before the secret is
// proposed, so the Raft log, the snapshots and the bolt file only ever hold
// ciphertext. The DEK itself never enters the Raft log: it lives in each
// manager's DataDir/keys.json (in memory only when DataDir is ""), reaches a
// manager that joins in the join reply, and a manager that lacks it
// (promoted, or restored from an old DataDir) asks another manager for it.
//
// Autolock seals keys.json with a key-encryption key derived from the
// swarm's unlock key (SWMKEY-1-...). The unlock key is replicated sealed
// with the DEK, so every manager can re-seal its key file when the key is
// set, rotated or cleared, while a DataDir alone reveals neither key. A
// manager restarted on a sealed key file comes up locked (see
// Node.Unlock).

var (
	// ErrLocked means the node is an autolocked manager that restarted and
	// waits for its unlock key: it serves nothing until Node.Unlock.
	ErrLocked = errors.New("swarm: node is locked; unlock it with the swarm's unlock key")
	// ErrInvalidUnlockKey means an unlock key is malformed or does not open
	// this node's key file.
	ErrInvalidUnlockKey = errors.New("swarm: invalid unlock key")
)

// unlockKeyPrefix starts every unlock key, as in Swarm.
const unlockKeyPrefix = "SWMKEY-1-"

// keyFileName is the manager's key file in DataDir.
const keyFileName = "keys.json"

// cmdKeys sets the swarm's keys record (autolock and the sealed unlock key).
const cmdKeys cmdType = "keys"

// keysRecord is the replicated part of the swarm's keys. It holds no key in
// the clear.
type keysRecord struct {
	// KeyID names the data-encryption key every manager must hold.
	KeyID string
	// AutoLock says whether managers' key files are sealed.
	AutoLock bool
	// SealedUnlockKey is the unlock key sealed with the DEK (autolock only).
	SealedUnlockKey []byte `json:",omitempty"`
	// Version is the index of the last change.
	Version   uint64
	UpdatedAt time.Time
}

// applyKeys applies cmdKeys (deterministic; untouched on error).
func (s *state) applyKeys(c *command, index uint64) error {
	k := c.Keys
	if k == nil || k.KeyID == "" {
		return invalidf("keys command without a key ID")
	}
	if k.AutoLock != (len(k.SealedUnlockKey) > 0) {
		return invalidf("keys command: autolock needs a sealed unlock key and only then")
	}
	if s.keys != nil {
		if k.KeyID != s.keys.KeyID {
			return invalidf("data key %s is not the swarm's (%s)", k.KeyID, s.keys.KeyID)
		}
		if c.Version != 0 && c.Version != s.keys.Version {
			return fmt.Errorf("%w: the swarm's keys are at version %d, not %d", ErrVersionConflict, s.keys.Version, c.Version)
		}
	}
	nk := *k
	nk.Version, nk.UpdatedAt = index, c.Time
	s.keys = &nk
	return nil
}

// keyring is a node's key material and lock state. It has its own mutex:
// key file writes never hold the node's.
type keyring struct {
	mu sync.Mutex
	// dek and keyID are the data-encryption key (nil on workers, and on a
	// manager that has not got it yet).
	dek   []byte
	keyID string
	// fileVersion is the keys record version the key file was last
	// written for, so replayed older records never re-seal it.
	fileVersion uint64
	// locked is set while a manager waits for Unlock; ident and addr are
	// what resume needs then.
	locked bool
	file   *keyFile
	ident  *identity
	addr   string
	// fetching is set while a goroutine fetches the DEK from a manager.
	fetching bool
}

// keyFile is DataDir/keys.json.
type keyFile struct {
	KeyID string
	// DEK is the data-encryption key in the clear (autolock off).
	DEK []byte `json:",omitempty"`
	// Sealed is the DEK sealed with the key-encryption key derived from
	// the unlock key (autolock on).
	Sealed []byte `json:",omitempty"`
	// RecordVersion is the version of the keys record the file follows.
	RecordVersion uint64
}

// sealVersion is the first byte of every sealed blob.
const sealVersion byte = 1

// seal encrypts plaintext with AES-256-GCM under key, binding aad.
func seal(key, plaintext []byte, aad string) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+gcm.NonceSize(), 1+gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return gcm.Seal(out, out[1:], plaintext, []byte(aad)), nil
}

// unseal reverses seal; it fails on any tampering or a wrong key.
func unseal(key, sealed []byte, aad string) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+gcm.NonceSize()+gcm.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("swarm: malformed sealed data")
	}
	ns := 1 + gcm.NonceSize()
	return gcm.Open(nil, sealed[1:ns], sealed[ns:], []byte(aad))
}

func randomKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("swarm: crypto/rand failed: %v", err))
	}
	return k
}

// kekFrom derives the key-encryption key from an unlock key's 256 random
// bits (no password stretching needed: the key is not a password).
func kekFrom(unlock []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, unlock, nil, "podswarm key-encryption key v1", 32)
}

func formatUnlockKey(raw []byte) string {
	return unlockKeyPrefix + base64.RawStdEncoding.EncodeToString(raw)
}

func parseUnlockKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, unlockKeyPrefix) {
		return nil, fmt.Errorf("%w: malformed key (want %s<base64>)", ErrInvalidUnlockKey, unlockKeyPrefix)
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(s, unlockKeyPrefix))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%w: malformed key (want %s and 43 base64 characters)", ErrInvalidUnlockKey, unlockKeyPrefix)
	}
	return raw, nil
}

func dekAAD(keyID string) string { return "podswarm data key " + keyID }

const unlockKeyAAD = "podswarm unlock key"

// newKeyFile seals dek for the file: with the unlock key when unlock is
// non-nil, else in the clear.
func newKeyFile(dek []byte, keyID string, unlock []byte, version uint64) (*keyFile, error) {
	kf := &keyFile{KeyID: keyID, RecordVersion: version}
	if unlock == nil {
		kf.DEK = dek
		return kf, nil
	}
	kek, err := kekFrom(unlock)
	if err != nil {
		return nil, err
	}
	if kf.Sealed, err = seal(kek, dek, dekAAD(keyID)); err != nil {
		return nil, err
	}
	return kf, nil
}

// open returns the file's DEK, unsealing it with unlock when sealed.
func (kf *keyFile) open(unlock []byte) ([]byte, error) {
	if len(kf.Sealed) == 0 {
		return kf.DEK, nil
	}
	kek, err := kekFrom(unlock)
	if err != nil {
		return nil, err
	}
	dek, err := unseal(kek, kf.Sealed, dekAAD(kf.KeyID))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open this node's key file", ErrInvalidUnlockKey)
	}
	return dek, nil
}

func loadKeyFile(dataDir string) (*keyFile, error) {
	if dataDir == "" {
		return nil, nil
	}
	path := filepath.Join(dataDir, keyFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("swarm: read key file: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil || kf.KeyID == "" || (len(kf.DEK) != 32 && len(kf.Sealed) == 0) {
		return nil, fmt.Errorf("swarm: %s is corrupt", path)
	}
	return &kf, nil
}

// save writes the key file atomically (temp file, fsync, rename), mode 0600.
func (kf *keyFile) save(dataDir string) error {
	if dataDir == "" {
		return nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("swarm: create DataDir: %w", err)
	}
	b, err := json.Marshal(kf)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, keyFileName+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("swarm: save key file: %w", err)
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("swarm: save key file: %w", werr)
	}
	return os.Rename(tmp, filepath.Join(dataDir, keyFileName))
}

// initKeys creates the swarm's data key at Init and records it, with
// autolock when Config.AutoLock asks for it. The key file is written
// before the record is proposed, so a crash in between loses nothing.
func (n *Node) initKeys(ctx context.Context) error {
	dek, keyID := randomKey(), newID()
	rec := &keysRecord{KeyID: keyID}
	var unlock []byte
	if n.cfg.AutoLock {
		unlock = randomKey()
		sealed, err := seal(dek, unlock, unlockKeyAAD)
		if err != nil {
			return err
		}
		rec.AutoLock, rec.SealedUnlockKey = true, sealed
	}
	kf, err := newKeyFile(dek, keyID, unlock, 0)
	if err != nil {
		return err
	}
	if err := kf.save(n.cfg.DataDir); err != nil {
		return err
	}
	k := n.keys
	k.mu.Lock()
	k.dek, k.keyID = dek, keyID
	k.mu.Unlock()
	_, err = n.apply(ctx, &command{Type: cmdKeys, Keys: rec})
	return err
}

// loadKeys reads a resuming manager's key file. It reports locked when
// the file is sealed and Config.UnlockKey does not open it; the node then
// waits for Unlock. A missing file is fine: the key is fetched from
// another manager when needed.
func (n *Node) loadKeys(ident *identity, addr string) (locked bool, err error) {
	k := n.keys
	k.mu.Lock()
	have := k.dek != nil
	k.mu.Unlock()
	if have {
		return false, nil
	}
	kf, err := loadKeyFile(n.cfg.DataDir)
	if err != nil || kf == nil {
		return false, err
	}
	if len(kf.Sealed) > 0 && n.cfg.UnlockKey == "" {
		k.mu.Lock()
		k.locked, k.file, k.ident, k.addr = true, kf, ident, addr
		k.mu.Unlock()
		return true, nil
	}
	var raw []byte
	if len(kf.Sealed) > 0 {
		if raw, err = parseUnlockKey(n.cfg.UnlockKey); err != nil {
			return false, fmt.Errorf("Config.UnlockKey: %w", err)
		}
	}
	dek, err := kf.open(raw)
	if err != nil {
		return false, fmt.Errorf("Config.UnlockKey: %w", err)
	}
	k.mu.Lock()
	k.dek, k.keyID, k.fileVersion = dek, kf.KeyID, kf.RecordVersion
	k.mu.Unlock()
	return false, nil
}

// Unlock unlocks an autolocked manager that restarted: Init or Join on a
// DataDir whose key file is sealed (and no Config.UnlockKey) returns nil
// but leaves the node locked, serving nothing (its calls fail with
// ErrLocked, peers see it down) until Unlock is given the swarm's current
// unlock key (or, for a manager that was down while the key was rotated,
// the key of that time). Unlock then resumes the node as Init or Join
// would have; if that fails the node is shut down, as after a failed Init.
// A wrong key fails with ErrInvalidUnlockKey and the node stays locked.
// It is [Node.UnlockContext] with context.Background().
func (n *Node) Unlock(key string) error {
	return n.UnlockContext(context.Background(), key)
}

// Locked reports whether the node is an autolocked manager waiting for
// Unlock.
func (n *Node) Locked() bool {
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	return n.keys.locked
}

func (n *Node) lockedErr() error {
	if n.Locked() {
		return ErrLocked
	}
	return nil
}

// dataKey returns the swarm's data-encryption key, fetching it from
// another manager (and saving it) if this manager does not hold it yet.
func (n *Node) dataKey(ctx context.Context) ([]byte, error) {
	if err := n.checkManager(); err != nil {
		return nil, err
	}
	k := n.keys
	k.mu.Lock()
	dek, keyID := k.dek, k.keyID
	k.mu.Unlock()
	var rec *keysRecord
	n.fsm.read(func(s *state) { rec = s.keys })
	if dek != nil {
		if rec != nil && rec.KeyID != keyID {
			return nil, fmt.Errorf("swarm: this manager's data key %s is not the swarm's (%s)", keyID, rec.KeyID)
		}
		return dek, nil
	}
	return n.fetchDataKey(ctx)
}

// dataKeyArgs asks a manager for the DEK; only managers get it.
type dataKeyArgs struct{ NodeID string }

type dataKeyReply struct {
	KeyID   string
	DataKey []byte
}

// handleDataKey hands the DEK to another manager of the swarm. With mutual
// TLS this endpoint must only answer a manager certificate whose node ID
// is args.NodeID.
func (n *Node) handleDataKey(ctx context.Context, a *dataKeyArgs) (*dataKeyReply, error) {
	if err := n.checkManager(); err != nil {
		return nil, err
	}
	var nd *NodeInfo
	n.fsm.read(func(s *state) { nd = s.nodes[a.NodeID] })
	if nd == nil || nd.Role != RoleManager {
		return nil, fmt.Errorf("%w: node %s is not a manager of this swarm", ErrNotManager, a.NodeID)
	}
	k := n.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dek == nil {
		return nil, fmt.Errorf("%w: this manager does not hold the data key either", ErrNoLeader)
	}
	return &dataKeyReply{KeyID: k.keyID, DataKey: k.dek}, nil
}

// fetchDataKey gets the DEK from another manager and saves it.
func (n *Node) fetchDataKey(ctx context.Context) ([]byte, error) {
	var rec *keysRecord
	n.fsm.read(func(s *state) { rec = s.keys })
	if rec == nil {
		return nil, fmt.Errorf("%w: the swarm's keys have not replicated to this manager yet", ErrNoLeader)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RPCTimeout)
		defer cancel()
	}
	var reply dataKeyReply
	if err := n.callManagers(ctx, "dataKey", &dataKeyArgs{NodeID: n.ID()}, &reply); err != nil {
		return nil, fmt.Errorf("swarm: fetching the data key: %w", err)
	}
	if reply.KeyID != rec.KeyID || len(reply.DataKey) != 32 {
		return nil, fmt.Errorf("swarm: the data key a manager sent is not the swarm's (%s)", rec.KeyID)
	}
	n.setDataKey(reply.DataKey, reply.KeyID)
	return reply.DataKey, nil
}

// setDataKey takes a DEK received from another manager and writes the key
// file for the current keys record.
func (n *Node) setDataKey(dek []byte, keyID string) {
	if n.checkManager() != nil {
		return // demoted (or stopped) while the key was on its way
	}
	k := n.keys
	k.mu.Lock()
	if k.dek == nil {
		k.dek, k.keyID, k.fileVersion = dek, keyID, 0
	}
	k.mu.Unlock()
	n.syncKeyFile(true)
}

// joinedKeys takes the DEK a manager join reply carries.
func (n *Node) joinedKeys(reply *joinReply) {
	if reply.Role == RoleManager && len(reply.DataKey) == 32 && reply.DataKeyID != "" {
		n.setDataKey(reply.DataKey, reply.DataKeyID)
	}
}

// joinDataKey is what handleJoin hands a new manager: the DEK, if this
// manager holds it (else the new manager fetches it later).
func (n *Node) joinDataKey() ([]byte, string) {
	k := n.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dek, k.keyID
}

// forgetDataKey drops the DEK and the key file (a demoted manager).
func (n *Node) forgetDataKey() {
	k := n.keys
	k.mu.Lock()
	clear(k.dek)
	k.dek, k.keyID, k.fileVersion = nil, "", 0
	k.mu.Unlock()
	if n.cfg.DataDir != "" {
		if err := os.Remove(filepath.Join(n.cfg.DataDir, keyFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("removing the key file failed", "error", err)
		}
	}
}

// keysApplied runs after every applied entry on a manager (onApply): it
// re-seals the key file when the keys record changed, and starts fetching
// the DEK when this manager lacks it.
func (n *Node) keysApplied(c *command) {
	k := n.keys
	var rec *keysRecord
	n.fsm.read(func(s *state) { rec = s.keys })
	if rec == nil {
		return
	}
	k.mu.Lock()
	missing := k.dek == nil && !k.fetching && !k.locked
	stale := k.dek != nil && rec.Version > k.fileVersion
	if missing {
		k.fetching = true
	}
	k.mu.Unlock()
	if stale {
		n.syncKeyFile(false)
	}
	if missing {
		n.wg.Add(1)
		go n.fetchDataKeyLoop()
	}
}

// fetchDataKeyLoop fetches the DEK in the background until it has it, the
// node stops being a manager, or it shuts down.
func (n *Node) fetchDataKeyLoop() {
	defer n.wg.Done()
	defer func() {
		n.keys.mu.Lock()
		n.keys.fetching = false
		n.keys.mu.Unlock()
	}()
	for attempt := 0; ; attempt++ {
		if n.checkManager() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.baseCtx, n.cfg.RPCTimeout)
		_, err := n.dataKey(ctx)
		cancel()
		if err == nil {
			return
		}
		n.log.Debug("fetching the data key failed, retrying", "error", err)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff(attempt)):
		}
	}
}

// syncKeyFile writes the key file for the current keys record: sealed
// with the unlock key under autolock, else in the clear. Unless force, it
// writes only when the record is newer than the file.
func (n *Node) syncKeyFile(force bool) {
	var rec *keysRecord
	n.fsm.read(func(s *state) { rec = s.keys })
	k := n.keys
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dek == nil {
		return
	}
	ver := uint64(0)
	if rec != nil {
		ver = rec.Version
	}
	if !force && ver <= k.fileVersion {
		return
	}
	var unlock []byte
	if rec != nil && rec.AutoLock {
		var err error
		if unlock, err = unseal(k.dek, rec.SealedUnlockKey, unlockKeyAAD); err != nil {
			n.log.Error("the swarm's unlock key does not open with this manager's data key", "error", err)
			return
		}
	}
	kf, err := newKeyFile(k.dek, k.keyID, unlock, ver)
	if err == nil {
		err = kf.save(n.cfg.DataDir)
	}
	if err != nil {
		n.log.Error("writing the key file failed", "error", err)
		return
	}
	k.fileVersion = ver
}

// keysRecordFor reads the keys record and the DEK for an autolock change.
func (n *Node) keysRecordFor(ctx context.Context) (*keysRecord, []byte, error) {
	if err := n.readBarrier(ctx); err != nil {
		return nil, nil, err
	}
	if r := n.raftNode(); r != nil && r.State() == raft.Leader {
		// A leader that just took over (or restarted) may not have
		// applied the whole log yet: a stale record would hand out an
		// old unlock key.
		if err := r.Barrier(n.cfg.RPCTimeout).Error(); err != nil {
			return nil, nil, translateRaftErr(err)
		}
	}
	var rec *keysRecord
	n.fsm.read(func(s *state) { rec = s.keys })
	if rec == nil {
		return nil, nil, fmt.Errorf("%w: the swarm's keys have not replicated to this manager yet", ErrNoLeader)
	}
	dek, err := n.dataKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	return rec, dek, nil
}

// SetAutoLock turns autolock on or off (Swarm's `docker swarm update
// --autolock`). On: a new unlock key is made (read it with UnlockKey) and
// every manager seals its key file with it; a manager that restarts then
// stays locked until Unlock. Off: the key files are written in the clear
// again. Setting the current value changes nothing.
func (n *Node) SetAutoLock(ctx context.Context, enable bool) error {
	rec, dek, err := n.keysRecordFor(ctx)
	if err != nil {
		return err
	}
	if rec.AutoLock == enable {
		return nil
	}
	next := &keysRecord{KeyID: rec.KeyID}
	if enable {
		next.AutoLock = true
		if next.SealedUnlockKey, err = seal(dek, randomKey(), unlockKeyAAD); err != nil {
			return err
		}
	}
	_, err = n.apply(ctx, &command{Type: cmdKeys, Keys: next, Version: rec.Version})
	return err
}

// UnlockKey returns the swarm's unlock key (SWMKEY-1-...), or "" when
// autolock is off. Only managers know it.
func (n *Node) UnlockKey(ctx context.Context) (string, error) {
	rec, dek, err := n.keysRecordFor(ctx)
	if err != nil {
		return "", err
	}
	if !rec.AutoLock {
		return "", nil
	}
	raw, err := unseal(dek, rec.SealedUnlockKey, unlockKeyAAD)
	if err != nil {
		return "", fmt.Errorf("swarm: the unlock key does not open with this manager's data key: %w", err)
	}
	return formatUnlockKey(raw), nil
}

// RotateUnlockKey replaces the unlock key with a new one and returns it.
// Every reachable manager re-seals its key file at once; a manager that is
// down meanwhile still needs the previous key for its next Unlock (keep it
// until then), and re-seals with the new one after it.
func (n *Node) RotateUnlockKey(ctx context.Context) (string, error) {
	rec, dek, err := n.keysRecordFor(ctx)
	if err != nil {
		return "", err
	}
	if !rec.AutoLock {
		return "", invalidf("autolock is off: there is no unlock key to rotate")
	}
	raw := randomKey()
	sealed, err := seal(dek, raw, unlockKeyAAD)
	if err != nil {
		return "", err
	}
	next := &keysRecord{KeyID: rec.KeyID, AutoLock: true, SealedUnlockKey: sealed}
	if _, err := n.apply(ctx, &command{Type: cmdKeys, Keys: next, Version: rec.Version}); err != nil {
		return "", err
	}
	return formatUnlockKey(raw), nil
}

// sameSecret compares data in constant time.
func sameSecret(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
