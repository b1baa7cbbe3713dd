package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Node is one member of a swarm: a manager (a Raft voter that also runs
// tasks unless drained) or a worker. Create it with NewNode, then call Init
// (new swarm) or Join (existing swarm, or resume from DataDir). All methods
// are safe for concurrent use; after Shutdown or Leave they return
// ErrShutdown.
type Node struct {
	cfg Config
	log hclog.Logger

	mu        sync.Mutex
	started   bool
	stopped   bool
	id        string
	clusterID string
	role      Role
	addr      string
	ident     *identity

	tr     *transport
	fsm    *fsm
	raft   *raft.Raft
	stores []io.Closer
	ml     *memberlist.Memberlist
	agent  *agent

	memberEvents chan struct{}
	membersMu    sync.Mutex
	members      map[string]memberMeta // alive gossip members, by node ID
	shutdownCh   chan struct{}
	// baseCtx is cancelled at Shutdown; RPC handlers and loops derive from it.
	baseCtx    context.Context
	baseCancel context.CancelFunc
	wg         sync.WaitGroup
	// reads batches the confirmations of linearizable reads (readindex.go).
	reads readIndexers

	// leader holds the leader-only loops while this node leads.
	leaderMu     sync.Mutex
	leaderCancel context.CancelFunc
	leaderDone   chan struct{}
	orch         *orchestrator
	batcher      *statusBatcher
	hb           *heartbeats
	// clk is the cluster clock while the node leads (clock.go).
	clk nodeClock

	// Role changes at runtime (noderole.go): roleWake wakes roleLoop, the
	// one goroutine that starts or stops Raft after Init/Join; raftStop
	// (under mu) is closed when the running Raft instance is stopped.
	roleWake chan struct{}
	raftStop chan struct{}

	// keys holds the data-encryption key and the autolock state (keys.go).
	keys *keyring

	// sec holds the node's certificates, TLS sessions and gossip keyring
	// (tls.go, security.go).
	sec nodeSecurity
	// gossipTr is gossip's transport, bound before gossip starts (under
	// mu); gossipAdv is the gossip address peers reach (membership.go).
	gossipTr  memberlist.NodeAwareTransport
	gossipAdv string
}

// NewNode returns a node configured by cfg. It does nothing until Init or Join.
func NewNode(cfg Config) *Node {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Node{
		baseCtx:      ctx,
		baseCancel:   cancel,
		cfg:          cfg,
		log:          cfg.Logger,
		memberEvents: make(chan struct{}, 1),
		roleWake:     make(chan struct{}, 1),
		shutdownCh:   make(chan struct{}),
		keys:         &keyring{},
		sec:          nodeSecurity{certWake: make(chan struct{}, 1)},
	}
}

// ID returns the node's ID ("" before Init or Join).
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// Addr returns the control address other nodes Join at ("" before Init or Join).
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Role returns the node's current role.
func (n *Node) Role() Role {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.role
}

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool {
	r := n.raftNode()
	return r != nil && r.State() == raft.Leader
}

func (n *Node) raftNode() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.raft
}

// begin marks the node started, or says why it cannot start.
func (n *Node) begin() error {
	if err := n.cfg.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return ErrShutdown
	}
	if n.started {
		return ErrAlreadyInSwarm
	}
	n.started = true
	return nil
}

// Init creates a new swarm with this node as its first manager and
// leader. If DataDir already holds a swarm, Init resumes it instead. It
// is [Node.InitContext] with context.Background().
func (n *Node) Init() error {
	return n.InitContext(context.Background())
}

func (n *Node) init(ctx context.Context) error {
	ident, err := loadIdentity(n.cfg.DataDir)
	if err != nil {
		return err
	}
	if ident != nil {
		return n.resume(ctx, ident, "")
	}
	n.setIdentity(&identity{NodeID: newID(), ClusterID: newID(), Role: RoleManager})
	// The CA, this node's certificate and the gossip key come first: the
	// listener and gossip need them (tls.go).
	cl, err := n.initSecurity(n.ID(), n.clusterIDRef())
	if err != nil {
		return err
	}
	if err := n.listen(nil); err != nil {
		return err
	}
	if err := n.startRaft(true); err != nil {
		return err
	}
	if err := n.startMemberlist(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*n.cfg.ElectionTimeout+5*time.Second)
	defer cancel()
	if err := n.waitLeader(ctx); err != nil {
		return err
	}
	cl.ID = n.clusterIDRef()
	cl.WorkerSecret, cl.ManagerSecret = randBase36(16, 25), randBase36(16, 25)
	if _, err := n.apply(ctx, &command{Type: cmdClusterInit, Cluster: cl}); err != nil {
		return err
	}
	if err := n.initKeys(ctx); err != nil {
		return err
	}
	if err := n.sealInitCAKey(ctx); err != nil {
		return err
	}
	n.mu.Lock()
	n.ident.Digest = cl.Digest
	n.mu.Unlock()
	if _, err := n.apply(ctx, &command{Type: cmdNodeUpsert, Node: n.selfInfo(ctx, RoleManager)}); err != nil {
		return err
	}
	if err := n.saveIdentity(); err != nil {
		return err
	}
	n.startAgent()
	n.startRoleLoop()
	n.startHeartbeat()
	n.startSecurity()
	n.log.Info("swarm initialised", "node", n.id, "cluster", n.clusterID, "addr", n.addr)
	return nil
}

// Join joins the swarm of the manager at addr with Config.JoinToken; the
// token decides the role. If DataDir already holds a swarm, Join resumes
// it (addr is then only a hint where the managers are). A wrong or
// malformed token is refused with ErrInvalidToken and the node is not
// admitted. It is [Node.JoinContext] with context.Background().
func (n *Node) Join(addr string) error {
	return n.JoinContext(context.Background(), addr)
}

func (n *Node) join(ctx context.Context, addr string) error {
	ident, err := loadIdentity(n.cfg.DataDir)
	if err != nil {
		return err
	}
	if ident != nil {
		return n.resume(ctx, ident, addr)
	}
	if addr == "" {
		return invalidf("Join needs the address of a manager")
	}
	if _, _, err := parseToken(n.cfg.JoinToken); err != nil {
		return err
	}
	// The leader assigns the node's ID in its join reply (nodeid.go).
	n.setIdentity(&identity{})
	if err := n.listen(nil); err != nil {
		return err
	}
	// Gossip needs the swarm's keyring and ID, which come with the join
	// reply: bind its port now (the managers learn the address), start it
	// after.
	if err := n.prepareGossip(); err != nil {
		return err
	}
	// A manager token makes a voter: Raft must listen before the leader adds it.
	// The role is only known for sure from the leader's answer, so start
	// Raft lazily below.
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RPCTimeout+10*n.cfg.ElectionTimeout)
	defer cancel()
	resp, err := n.joinRPC(ctx, []string{addr}, false)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.clusterID, n.role = resp.ClusterID, resp.Role
	n.ident.ClusterID, n.ident.Role = resp.ClusterID, resp.Role
	n.ident.Managers = resp.Managers
	n.ident.Digest, _, _ = parseToken(n.cfg.JoinToken)
	n.mu.Unlock()
	if err := n.startMemberlist(); err != nil {
		return err
	}
	if err := n.joinGossip(ctx, resp.Sec.GossipPeers); err != nil {
		return err
	}
	if resp.Role == RoleManager {
		if err := n.waitApplied(ctx, resp.Index); err != nil {
			return fmt.Errorf("swarm: joined as manager but the state did not replicate: %w", err)
		}
		n.joinedKeys(resp)
	}
	if err := n.saveIdentity(); err != nil {
		return err
	}
	n.startAgent()
	n.startRoleLoop()
	n.startHeartbeat()
	n.startSecurity()
	n.log.Info("joined swarm", "node", n.id, "cluster", n.clusterID, "role", n.role, "addr", n.addr)
	return nil
}

// resume restarts a node from its DataDir.
func (n *Node) resume(ctx context.Context, ident *identity, addr string) error {
	if n.cfg.JoinToken != "" && ident.Digest != "" {
		digest, _, err := parseToken(n.cfg.JoinToken)
		if err != nil {
			return err
		}
		if digest != ident.Digest {
			return fmt.Errorf("%w: DataDir %s belongs to another swarm than the join token's", ErrInvalidToken, n.cfg.DataDir)
		}
	}
	if ident.Role == RoleManager {
		// An autolocked manager's key file is sealed: without
		// Config.UnlockKey it starts nothing until Unlock (keys.go).
		locked, err := n.loadKeys(ident, addr)
		if err != nil {
			return err
		}
		if locked {
			n.setIdentity(ident)
			n.log.Info("manager is locked: waiting for Unlock", "node", ident.NodeID)
			return nil
		}
	}
	n.setIdentity(ident)
	if err := n.loadSecurity(ident); err != nil {
		return err
	}
	if err := n.listen(ident); err != nil {
		return err
	}
	if ident.Role == RoleManager {
		if err := n.startRaft(false); err != nil {
			return err
		}
	}
	if err := n.startMemberlist(); err != nil {
		return err
	}
	peers := append([]string{}, ident.Managers...)
	if addr != "" {
		peers = append([]string{addr}, peers...)
	}
	peers = without(peers, n.addr)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RPCTimeout+10*n.cfg.ElectionTimeout)
	defer cancel()
	if ident.Role == RoleManager {
		// A manager comes back through Raft; announcing its (possibly new)
		// addresses needs a leader, which may need this very node for a
		// quorum: keep trying in the background.
		n.wg.Add(1)
		go n.rejoinLoop(peers)
	} else {
		if len(peers) == 0 {
			return fmt.Errorf("%w: no manager address to rejoin (pass one to Join)", ErrInvalidSpec)
		}
		resp, err := n.joinRPC(ctx, peers, true)
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.ident.Managers = resp.Managers
		n.mu.Unlock()
		// Promoted while it was down: roleLoop starts Raft.
		n.noticeRole(resp.Role)
	}
	if err := n.saveIdentity(); err != nil {
		return err
	}
	n.startAgent()
	n.startRoleLoop()
	n.startHeartbeat()
	n.startSecurity()
	n.log.Info("resumed swarm membership", "node", n.id, "cluster", n.clusterID, "role", n.role, "addr", n.addr)
	return nil
}

// rejoinLoop announces a restarted manager to the leader until it succeeds.
func (n *Node) rejoinLoop(peers []string) {
	defer n.wg.Done()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RPCTimeout)
		var err error
		if leaderPeers := n.managerAddrs(); len(leaderPeers) > 0 {
			peers = append(without(leaderPeers, n.addr), peers...)
		}
		if len(peers) > 0 {
			var resp *joinReply
			if resp, err = n.joinRPC(ctx, peers, true); err == nil {
				// Demoted while it was down: roleLoop stops Raft.
				n.noticeRole(resp.Role)
			}
		} else {
			// Only this manager is known: it leads alone once elected.
			_, err = n.apply(ctx, &command{Type: cmdNodeUpsert, Node: n.selfInfo(ctx, RoleManager)})
		}
		cancel()
		if err == nil {
			return
		}
		n.log.Debug("rejoin failed, retrying", "error", err)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff(attempt)):
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return d
}

func without(list []string, drop string) []string {
	out := list[:0:0]
	seen := map[string]bool{}
	for _, s := range list {
		if s != drop && s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (n *Node) setIdentity(id *identity) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ident = id
	n.id, n.clusterID, n.role = id.NodeID, id.ClusterID, id.Role
}

func (n *Node) saveIdentity() error {
	n.mu.Lock()
	id := *n.ident
	id.Addr = n.addr
	n.mu.Unlock()
	id.GossipAddr = n.gossipAddr()
	return id.save(n.cfg.DataDir)
}

// listen binds the control port. A restarted node whose ListenAddr asks for
// any free port takes its previous port again, so its peers' Raft
// configuration stays valid.
func (n *Node) listen(prev *identity) error {
	addr := n.cfg.ListenAddr
	if prev != nil && prev.Addr != "" {
		if h, p, err := net.SplitHostPort(addr); err == nil && p == "0" {
			if ph, pp, err := net.SplitHostPort(prev.Addr); err == nil && (ph == h || h == "0.0.0.0") {
				if ln, err := n.listenControl(net.JoinHostPort(h, pp)); err == nil {
					return n.serve(ln)
				}
			}
		}
	}
	ln, err := n.listenControl(addr)
	if err != nil {
		return fmt.Errorf("swarm: listen on %s: %w", addr, err)
	}
	return n.serve(ln)
}

func (n *Node) serve(ln net.Listener) error {
	adv := n.cfg.AdvertiseAddr
	if adv == "" {
		adv = advertiseFor(ln.Addr().(*net.TCPAddr))
	}
	n.mu.Lock()
	n.addr = adv
	n.fsm = newFSM()
	n.fsm.onApply = n.onApply
	n.fsm.now = n.now
	n.tr = newTransport(ln, adv, n.log.Named("transport"))
	n.tr.network = n.cfg.Network
	n.mu.Unlock()
	// Every connection is TLS 1.3 with the swarm's certificates (tls.go).
	n.tr.serverTLS = n.serverTLSConfig()
	n.tr.clientTLS = n.clientTLSConfig
	n.tr.admit = n.admitStream
	n.tr.serveRPC = n.serveRPCConn
	n.tr.onLogs = n.serveLogs
	n.tr.start()
	return nil
}

// advertiseFor turns a bound address into one peers can dial.
func advertiseFor(a *net.TCPAddr) string {
	ip := a.IP
	if ip.IsUnspecified() {
		ip = firstNonLoopbackIP()
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

func firstNonLoopbackIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return ipn.IP
			}
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

func (n *Node) startRaft(bootstrap bool) error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.Logger = n.log.Named("raft")
	if n.cfg.Logger == nil || n.log.IsTrace() == false {
		rc.LogLevel = "WARN"
	}
	rc.ShutdownOnRemove = false

	var (
		logs    raft.LogStore
		stable  raft.StableStore
		snaps   raft.SnapshotStore
		closers []io.Closer
		err     error
	)
	if n.cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("swarm: create DataDir: %w", err)
		}
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(n.cfg.DataDir, "raft.db")})
		if err != nil {
			return fmt.Errorf("swarm: open raft store: %w", err)
		}
		closers = append(closers, bolt)
		logs, stable = bolt, bolt
		snaps, err = raft.NewFileSnapshotStoreWithLogger(n.cfg.DataDir, 2, n.log.Named("snapshots"))
		if err != nil {
			bolt.Close()
			return fmt.Errorf("swarm: open snapshot store: %w", err)
		}
	}
	// Raft gets a stream of its own over the shared listener, so a demoted
	// manager can stop it without touching the node's RPC.
	stream := newRaftStream(n.tr)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  n.log.Named("raft-net"),
	})
	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, unpipelinedTransport{trans})
	if err != nil {
		trans.Close()
		closeAll(closers)
		return fmt.Errorf("swarm: start raft: %w", err)
	}
	stop := make(chan struct{})
	n.mu.Lock()
	if n.stopped {
		// Shutdown ran while a promotion was starting Raft.
		n.mu.Unlock()
		r.Shutdown().Error()
		closeAll(closers)
		return ErrShutdown
	}
	n.raft, n.raftStop = r, stop
	n.stores = append(n.stores, closers...)
	n.mu.Unlock()
	if bootstrap {
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			ID: raft.ServerID(n.id), Address: raft.ServerAddress(n.addr), Suffrage: raft.Voter}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("swarm: bootstrap raft: %w", err)
		}
	}
	n.wg.Add(1)
	go n.monitorLeadership(r, stop)
	return nil
}

// ensureRaft starts Raft on a node that joins as a manager.
func (n *Node) ensureRaft() error {
	if n.raftNode() != nil {
		return nil
	}
	return n.startRaft(false)
}

// waitLeader waits until this node's Raft knows a leader.
func (n *Node) waitLeader(ctx context.Context) error {
	r := n.raftNode()
	if r == nil {
		return ErrNotManager
	}
	for {
		if addr, _ := r.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitApplied waits until the local state reflects index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		ch, applied := n.fsm.waitCh()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.shutdownCh:
			return ErrShutdown
		}
	}
}

// selfInfo describes this node for the node table.
func (n *Node) selfInfo(ctx context.Context, role Role) *NodeInfo {
	info := &NodeInfo{
		ID: n.id, Hostname: n.cfg.Hostname, Addr: n.Addr(), Role: role,
		State: NodeReady, EngineLabels: copyMap(n.cfg.Labels),
		Platform: Platform{OS: runtime.GOOS, Arch: runtime.GOARCH},
	}
	info.GossipAddr = n.gossipAddr()
	info.NoRuntime = n.cfg.Runtime == nil
	if n.cfg.Runtime != nil {
		if ri, err := n.cfg.Runtime.Info(ctx); err == nil {
			info.Resources = ri.Resources
			if ri.OS != "" {
				info.Platform = Platform{OS: ri.OS, Arch: ri.Arch}
			}
		} else {
			n.log.Warn("runtime info failed", "error", err)
		}
	}
	return info
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// JoinToken returns the token that joins a node with the given role. Only
// managers know the tokens. It is [Node.JoinTokenContext] bounded by
// Config.RPCTimeout.
func (n *Node) JoinToken(role Role) (string, error) {
	ctx, cancel := context.WithTimeout(n.baseCtx, n.cfg.RPCTimeout)
	defer cancel()
	return n.JoinTokenContext(ctx, role)
}

// checkManager fails unless the node runs and is a manager.
func (n *Node) checkManager() error {
	locked := n.Locked()
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.stopped:
		return ErrShutdown
	case locked:
		return ErrLocked
	case !n.started || n.fsm == nil:
		return ErrNotInSwarm
	case n.raft == nil:
		return ErrNotManager
	}
	return nil
}

// Leave leaves the swarm gracefully: the managers mark the node down and
// reschedule its tasks at once, a manager first leaves the Raft
// configuration, the node's containers are stopped and removed, and its
// DataDir state is deleted. The last manager of a swarm with other nodes
// cannot leave (ErrLastManager). It is [Node.LeaveContext] with
// context.Background().
func (n *Node) Leave() error {
	return n.LeaveContext(context.Background())
}

func (n *Node) leave(ctx context.Context) error {
	req := &leaveArgs{NodeID: n.ID()}
	if n.raftNode() != nil {
		var others, managers int
		n.fsm.read(func(s *state) {
			others = len(s.nodes) - 1
			managers = s.managers()
		})
		if managers <= 1 && others > 0 {
			return fmt.Errorf("%w: leaving would leave the swarm without a manager; demote or remove the other nodes first", ErrLastManager)
		}
		if managers <= 1 {
			return nil
		}
		return n.handleLeave(ctx, req)
	}
	return n.callManagers(ctx, "leave", req, nil)
}

func (n *Node) agentRef() *agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent
}

func (n *Node) memberlistRef() *memberlist.Memberlist {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ml
}

// Shutdown stops the node at once, without telling anyone: to its peers it
// looks like a crash. Its containers keep running (as after a daemon
// crash); a restarted node re-adopts or removes them. Shutdown is
// idempotent and safe to call on a node that never started.
func (n *Node) Shutdown() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	close(n.shutdownCh)
	n.baseCancel()
	agent, ml, r, tr, stores := n.agent, n.ml, n.raft, n.tr, n.stores
	gtr := n.gossipTr
	n.mu.Unlock()

	if agent != nil {
		agent.shutdown()
	}
	n.stopLeading()
	if ml != nil {
		ml.Shutdown()
	} else if gtr != nil {
		gtr.Shutdown() // bound, but gossip never started (a failed join)
	}
	if r != nil {
		if err := r.Shutdown().Error(); err != nil {
			n.log.Warn("raft shutdown", "error", err)
		}
	}
	if tr != nil {
		tr.close()
	}
	n.wg.Wait()
	for _, s := range stores {
		s.Close()
	}
	return nil
}

// onApply runs after every applied log entry (outside the FSM lock).
func (n *Node) onApply(c *command) {
	n.leaderMu.Lock()
	o := n.orch
	n.leaderMu.Unlock()
	if o != nil {
		o.notify(c)
	}
	n.noticeOwnRecord(c)
	n.keysApplied(c)
	n.securityApplied(c)
}

func (n *Node) isStopped() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}
