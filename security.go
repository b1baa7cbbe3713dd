package swarm

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/memberlist"
)

// The swarm-wide security state every node follows: the gossip keyring
// and the removed nodes. It lives in the cluster record; managers follow
// their replicated state, workers long-poll a manager for it (secState),
// and a node receives it with every certificate (securityBundle).

// gossipKeyring is memberlist's keyring: AES-256 keys, the primary (the
// one that encrypts) first; the others still decrypt.
type gossipKeyring struct {
	Keys [][]byte
	// Version is the security state version the keyring came with.
	Version uint64
}

// secState is the security state as of Version (the log index of its last
// change).
type secState struct {
	Version uint64
	Keyring gossipKeyring
	// Revoked are the IDs of nodes removed from the swarm.
	Revoked []string `json:",omitempty"`
}

func secStateOf(cl *clusterRecord) *secState {
	st := &secState{Version: cl.SecVersion,
		Keyring: gossipKeyring{Keys: cl.GossipKeys, Version: cl.SecVersion}}
	for id := range cl.Revoked {
		st.Revoked = append(st.Revoked, id)
	}
	sort.Strings(st.Revoked)
	return st
}

// Replicated security commands.
const (
	// cmdRotateToken replaces the secret of one role's join token.
	cmdRotateToken cmdType = "rotate-token"
	// cmdGossipKeys replaces the gossip keyring (one step of a rotation).
	cmdGossipKeys cmdType = "gossip-keys"
	// cmdCAKey stores the root CA key, sealed with the data key (Init).
	cmdCAKey cmdType = "ca-key"
)

// securityCmd is the payload of the security commands.
type securityCmd struct {
	Role   Role     `json:"r,omitempty"`
	Secret string   `json:"s,omitempty"`
	Keys   [][]byte `json:"k,omitempty"`
	CAKey  []byte   `json:"ca,omitempty"`
}

// applySecurity applies cmdRotateToken and cmdGossipKeys (deterministic;
// the state is untouched on error).
func (s *state) applySecurity(c *command, index uint64) error {
	if s.cluster == nil {
		return fmt.Errorf("%w: the swarm is not initialised", ErrNotInSwarm)
	}
	if c.Sec == nil {
		return invalidf("%s without a payload", c.Type)
	}
	cl := *s.cluster
	switch c.Type {
	case cmdRotateToken:
		if len(c.Sec.Secret) != 25 || !isBase36(c.Sec.Secret) {
			return invalidf("join token secret %q", c.Sec.Secret)
		}
		switch c.Sec.Role {
		case RoleWorker:
			cl.WorkerSecret = c.Sec.Secret
		case RoleManager:
			cl.ManagerSecret = c.Sec.Secret
		default:
			return invalidf("role %q", c.Sec.Role)
		}
	case cmdGossipKeys:
		if len(c.Sec.Keys) == 0 {
			return invalidf("empty gossip keyring")
		}
		keys := make([][]byte, 0, len(c.Sec.Keys))
		for _, k := range c.Sec.Keys {
			if len(k) != 32 {
				return invalidf("gossip key of %d bytes (want 32)", len(k))
			}
			keys = append(keys, bytes.Clone(k))
		}
		cl.GossipKeys = keys
		cl.SecVersion = index
	case cmdCAKey:
		if len(c.Sec.CAKey) == 0 {
			return invalidf("ca-key without a key")
		}
		cl.CAKey = bytes.Clone(c.Sec.CAKey)
	default:
		return fmt.Errorf("unknown command type %q", c.Type)
	}
	s.cluster = &cl
	return nil
}

// revokeNode records a removed node: its certificates are refused until
// they have expired, after which the entry is dropped.
func (s *state) revokeNode(id string, now time.Time, index uint64) {
	if s.cluster == nil || id == "" {
		return
	}
	cl := *s.cluster
	keep := cl.CertExpiry
	if keep <= 0 {
		keep = DefaultCertExpiry
	}
	keep += time.Minute // the backdating of NotBefore, and skew
	rev := make(map[string]time.Time, len(cl.Revoked)+1)
	for k, t := range cl.Revoked {
		if now.Sub(t) <= keep {
			rev[k] = t
		}
	}
	rev[id] = now
	cl.Revoked, cl.SecVersion = rev, index
	s.cluster = &cl
}

// setKeyring installs the keyring before gossip starts (Init).
func (n *Node) setKeyring(kr *gossipKeyring) error {
	n.sec.mu.Lock()
	n.sec.keyring = kr
	n.sec.secVersion = kr.Version
	n.sec.mu.Unlock()
	return saveSecState(n.cfg.DataDir, &secState{Version: kr.Version, Keyring: *kr})
}

// secVersion is the version of the security state this node has adopted.
func (n *Node) secVersion() uint64 {
	n.sec.mu.RLock()
	defer n.sec.mu.RUnlock()
	return n.sec.secVersion
}

// memberlistKeyring returns the keyring gossip starts with.
func (n *Node) memberlistKeyring() (*memberlist.Keyring, error) {
	n.sec.mu.Lock()
	defer n.sec.mu.Unlock()
	kr := n.sec.keyring
	if kr == nil || len(kr.Keys) == 0 {
		return nil, fmt.Errorf("swarm: no gossip key")
	}
	k, err := memberlist.NewKeyring(kr.Keys, kr.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("swarm: gossip keyring: %w", err)
	}
	n.sec.mlKeyring = k
	return k, nil
}

// adoptSecState makes a newer security state this node's: installs the
// keyring in gossip (new keys first, then the primary, then removals, so
// the node never drops a key its peers may still use), saves it, and
// publishes the version over gossip, which is how RotateGossipKey sees that
// every node has followed.
func (n *Node) adoptSecState(st *secState) {
	if st == nil || len(st.Keyring.Keys) == 0 {
		return
	}
	n.sec.adoptMu.Lock()
	defer n.sec.adoptMu.Unlock()
	n.sec.mu.Lock()
	if n.sec.keyring != nil && st.Version <= n.sec.secVersion {
		n.sec.mu.Unlock()
		return
	}
	n.sec.secVersion = st.Version
	n.sec.revoked = make(map[string]bool, len(st.Revoked))
	for _, id := range st.Revoked {
		n.sec.revoked[id] = true
	}
	kr := &gossipKeyring{Keys: st.Keyring.Keys, Version: st.Version}
	n.sec.keyring = kr
	mlk := n.sec.mlKeyring
	n.sec.mu.Unlock()
	if mlk != nil {
		syncKeyring(mlk, kr.Keys)
	}
	if err := saveSecState(n.cfg.DataDir, st); err != nil {
		n.log.Warn("saving the gossip keyring failed", "error", err)
	}
	if ml := n.memberlistRef(); ml != nil && !n.isStopped() {
		if err := ml.UpdateNode(max(20*n.cfg.GossipInterval, 500*time.Millisecond)); err != nil {
			n.log.Debug("publishing the keyring version over gossip is slow", "error", err)
		}
	}
}

// syncKeyring makes memberlist's keyring hold exactly keys, keys[0] primary.
func syncKeyring(k *memberlist.Keyring, keys [][]byte) {
	for _, key := range keys {
		k.AddKey(key)
	}
	k.UseKey(keys[0])
	for _, have := range k.GetKeys() {
		keep := false
		for _, key := range keys {
			if bytes.Equal(have, key) {
				keep = true
				break
			}
		}
		if !keep {
			k.RemoveKey(have)
		}
	}
}

type secStateArgs struct {
	NodeID string
	Since  uint64
	Wait   time.Duration
}

// handleSecState is the workers' long poll for the security state: it
// answers once the state is newer than Since, or after Wait with the
// current one.
func (n *Node) handleSecState(ctx context.Context, a *secStateArgs) (*secState, error) {
	timer := time.NewTimer(min(max(a.Wait, 0), time.Minute))
	defer timer.Stop()
	for {
		if err := n.checkManager(); err != nil {
			return nil, err
		}
		ch, _ := n.fsm.waitCh()
		var st *secState
		have := false
		n.fsm.read(func(s *state) {
			if s.cluster != nil {
				have = true
				if s.cluster.SecVersion > a.Since {
					st = secStateOf(s.cluster)
				}
			}
		})
		if st != nil {
			return st, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			if !have {
				return nil, fmt.Errorf("%w: the swarm's state has not replicated to this manager yet", ErrNoLeader)
			}
			var cur *secState
			n.fsm.read(func(s *state) { cur = secStateOf(s.cluster) })
			return cur, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// secPollWait is how long a worker's security state poll waits for news.
const secPollWait = 30 * time.Second

// secLoop keeps the node's security state current until Shutdown: a
// manager follows its replicated state, a worker long-polls a manager.
func (n *Node) secLoop() {
	defer n.wg.Done()
	tick := time.NewTimer(roleCheckInterval)
	defer tick.Stop()
	for attempt := 0; ; {
		if f := n.fsmRef(); f != nil && n.raftNode() != nil {
			ch, _ := f.waitCh()
			have := n.secVersion()
			var st *secState
			f.read(func(s *state) {
				if s.cluster != nil && s.cluster.SecVersion > have {
					st = secStateOf(s.cluster)
				}
			})
			n.adoptSecState(st)
			if !tick.Stop() {
				select {
				case <-tick.C:
				default:
				}
			}
			// The tick notices a demotion or promotion meanwhile.
			tick.Reset(roleCheckInterval)
			select {
			case <-n.shutdownCh:
				return
			case <-ch:
			case <-tick.C:
			}
			continue
		}
		var st secState
		ctx, cancel := context.WithTimeout(n.baseCtx, secPollWait+n.cfg.RPCTimeout)
		err := n.callManagers(ctx, "secState", &secStateArgs{NodeID: n.ID(), Since: n.secVersion(), Wait: secPollWait}, &st)
		cancel()
		if n.isStopped() {
			return
		}
		if err != nil {
			attempt++
			n.log.Debug("polling the security state failed", "error", err)
			select {
			case <-n.shutdownCh:
				return
			case <-time.After(backoff(attempt)):
			}
			continue
		}
		attempt = 0
		n.adoptSecState(&st)
	}
}

// gossipPeers returns gossip addresses a joining node can join gossip at:
// this manager's and a few other ready managers'.
func (n *Node) gossipPeers() []string {
	var out []string
	if a := n.gossipAddr(); a != "" {
		out = append(out, a)
	}
	self := n.ID()
	n.fsm.read(func(s *state) {
		for _, nd := range s.nodes {
			if len(out) >= 4 {
				return
			}
			if nd.ID != self && nd.Role == RoleManager && nd.State == NodeReady && nd.GossipAddr != "" {
				out = append(out, nd.GossipAddr)
			}
		}
	})
	return out
}

// RotateGossipKey replaces the swarm's gossip encryption key without
// interrupting gossip, in three replicated steps, each waited for until
// every node that gossip sees alive has followed it: install the new key
// next to the old one, make it the key that encrypts, remove the old key.
// A node that is down meanwhile gets the new keyring when it comes back
// (managers from the Raft log, workers from the managers). Rotate after
// removing a node: a removed node keeps the old key, and with it its place
// in gossip, until then. It runs on any manager. Without a deadline in ctx
// it gives up after three times Config.RPCTimeout; an interrupted rotation
// leaves a working keyring and can simply be run again.
func (n *Node) RotateGossipKey(ctx context.Context) error {
	if err := n.checkManager(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*n.cfg.RPCTimeout)
		defer cancel()
	}
	n.sec.rotateMu.Lock()
	defer n.sec.rotateMu.Unlock()
	if err := n.readBarrier(ctx); err != nil {
		return err
	}
	var cur [][]byte
	n.fsm.read(func(s *state) {
		if s.cluster != nil {
			cur = s.cluster.GossipKeys
		}
	})
	if len(cur) == 0 {
		return fmt.Errorf("%w: the swarm's state has not replicated to this manager yet", ErrNoLeader)
	}
	key := randomKey()
	steps := [][][]byte{
		append(append([][]byte{}, cur...), key), // install: the primary stays
		append([][]byte{key}, cur...),           // use
		{key},                                   // remove the old keys
	}
	for i, keys := range steps {
		idx, err := n.apply(ctx, &command{Type: cmdGossipKeys, Sec: &securityCmd{Keys: keys}})
		if err != nil {
			return fmt.Errorf("swarm: gossip key rotation, step %d of 3: %w", i+1, err)
		}
		if err := n.waitKeyAcks(ctx, idx); err != nil {
			return fmt.Errorf("swarm: gossip key rotation, step %d of 3: %w", i+1, err)
		}
	}
	n.log.Info("gossip key rotated")
	return nil
}

// waitKeyAcks waits until every node of the swarm that gossip sees alive
// publishes a security state version of at least version.
func (n *Node) waitKeyAcks(ctx context.Context, version uint64) error {
	for {
		members := map[string]uint64{}
		n.membersMu.Lock()
		for id, m := range n.members {
			members[id] = m.K
		}
		n.membersMu.Unlock()
		var missing []string
		n.fsm.read(func(s *state) {
			for id, k := range members {
				if _, ok := s.nodes[id]; !ok || k >= version {
					continue
				}
				if s.cluster != nil {
					if _, removed := s.cluster.Revoked[id]; removed {
						continue
					}
				}
				missing = append(missing, id)
			}
		})
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			sort.Strings(missing)
			return fmt.Errorf("nodes %v have not confirmed the new keyring: %w", missing, ctx.Err())
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(n.cfg.GossipInterval):
		}
	}
}

// securityApplied runs after every applied entry on a manager (onApply):
// the connections a removed node holds to this one are closed, so its
// certificate stops working at once, not only on its next connection.
func (n *Node) securityApplied(c *command) {
	if c.Type != cmdNodeRemove || c.ID == "" {
		return
	}
	if tr := n.trRef(); tr != nil {
		tr.closePeer(c.ID)
	}
}
