package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberMeta is what every node gossips about itself.
type memberMeta struct {
	Role Role   `json:"r"`
	Addr string `json:"a"`
	// K is the version of the security state (gossip keyring) the node
	// has installed: RotateGossipKey waits for it (security.go).
	K uint64 `json:"k,omitempty"`
}

// gossipDelegate publishes the node's metadata.
type gossipDelegate struct{ n *Node }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(memberMeta{Role: d.n.Role(), Addr: d.n.Addr(), K: d.n.secVersion()})
	if len(b) > limit {
		return nil
	}
	return b
}
func (d gossipDelegate) NotifyMsg([]byte)                           {}
func (d gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate keeps the node's own copy of the alive members and their
// metadata (memberlist's Members() hands out nodes it keeps mutating) and
// turns changes into a coalesced signal for the leader's liveness loop.
type eventDelegate struct{ n *Node }

func (d eventDelegate) NotifyJoin(m *memberlist.Node)   { d.n.setMember(m, true) }
func (d eventDelegate) NotifyLeave(m *memberlist.Node)  { d.n.setMember(m, false) }
func (d eventDelegate) NotifyUpdate(m *memberlist.Node) { d.n.setMember(m, true) }

// setMember records a member (called by memberlist under its own lock, so
// reading m here is safe).
func (n *Node) setMember(m *memberlist.Node, alive bool) {
	var meta memberMeta
	if alive {
		json.Unmarshal(m.Meta, &meta)
	}
	n.membersMu.Lock()
	if n.members == nil {
		n.members = map[string]memberMeta{}
	}
	if alive {
		n.members[m.Name] = meta
	} else {
		delete(n.members, m.Name)
	}
	n.membersMu.Unlock()
	n.notifyMembers()
}

func (n *Node) notifyMembers() {
	select {
	case n.memberEvents <- struct{}{}:
	default:
	}
}

// prepareGossip binds gossip's transport on Config.GossipAddr (default:
// the control host, any port; a restarted node takes its previous port
// again), so its address is known before gossip starts.
func (n *Node) prepareGossip() error {
	n.mu.Lock()
	bound := n.gossipTr != nil
	n.mu.Unlock()
	if bound {
		return nil
	}
	addr := n.cfg.GossipAddr
	if addr == "" {
		host, _, _ := net.SplitHostPort(n.Addr())
		addr = net.JoinHostPort(host, "0")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf("Config.GossipAddr %q: %v", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return invalidf("Config.GossipAddr %q: bad port", addr)
	}
	tryPorts := []int{port}
	n.mu.Lock()
	if port == 0 && n.ident != nil && n.ident.GossipAddr != "" {
		if _, pp, err := net.SplitHostPort(n.ident.GossipAddr); err == nil {
			if p, err := strconv.Atoi(pp); err == nil {
				tryPorts = []int{p, 0}
			}
		}
	}
	n.mu.Unlock()
	if n.cfg.Network != nil {
		tr, adv, err := n.bindGossipNetwork(net.JoinHostPort(host, strconv.Itoa(tryPorts[0])))
		if err != nil && len(tryPorts) > 1 {
			tr, adv, err = n.bindGossipNetwork(net.JoinHostPort(host, "0"))
		}
		if err != nil {
			return fmt.Errorf("swarm: start gossip on %s: %w", addr, err)
		}
		n.mu.Lock()
		n.gossipTr, n.gossipAdv = tr, adv
		n.mu.Unlock()
		return nil
	}
	logger := n.gossipLogger()
	for i, p := range tryPorts {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host}, BindPort: p, Logger: logger})
		if err != nil {
			if i < len(tryPorts)-1 {
				continue
			}
			return fmt.Errorf("swarm: start gossip on %s: %w", net.JoinHostPort(host, strconv.Itoa(p)), err)
		}
		// A wildcard bind advertises the control address's host, so the
		// address is known before gossip starts (memberlist would pick one
		// itself only then).
		adv := host
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			adv, _, _ = net.SplitHostPort(n.Addr())
		}
		n.mu.Lock()
		n.gossipTr = &boundTransport{NetTransport: nt, local: net.ParseIP(host)}
		n.gossipAdv = net.JoinHostPort(adv, strconv.Itoa(nt.GetAutoBindPort()))
		n.mu.Unlock()
		return nil
	}
	return nil
}

// startMemberlist starts gossip on the transport prepareGossip bound,
// encrypted with the swarm's keyring and labelled with its cluster ID, so
// two swarms on one network never mix.
func (n *Node) startMemberlist() error {
	if err := n.prepareGossip(); err != nil {
		return err
	}
	kr, err := n.memberlistKeyring()
	if err != nil {
		return err
	}
	n.mu.Lock()
	tr, adv := n.gossipTr, n.gossipAdv
	n.mu.Unlock()
	advHost, advPort, _ := net.SplitHostPort(adv)
	port, _ := strconv.Atoi(advPort)
	mc := n.memberlistConfig(advHost, port)
	mc.AdvertiseAddr = advHost
	mc.Transport = tr
	mc.Keyring = kr
	mc.Label = n.clusterIDRef()
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("swarm: start gossip on %s: %w", adv, err)
	}
	n.mu.Lock()
	n.ml = ml
	n.mu.Unlock()
	return nil
}

// gossipAddr is the node's gossip address ("" before gossip is bound).
func (n *Node) gossipAddr() string {
	n.mu.Lock()
	ml, adv := n.ml, n.gossipAdv
	n.mu.Unlock()
	if adv == "" && ml != nil {
		// Only read memberlist's own record when no address was bound
		// here: its fields change under UpdateNode without a lock
		// readers can take (a data race under -race).
		return ml.LocalNode().Address()
	}
	return adv
}

// joinGossip joins gossip at the given members (a node that just joined
// the swarm), retrying until ctx ends.
func (n *Node) joinGossip(ctx context.Context, peers []string) error {
	if len(peers) == 0 {
		return nil
	}
	ml := n.memberlistRef()
	for attempt := 0; ; attempt++ {
		_, err := ml.Join(peers)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("swarm: cannot reach the swarm's gossip at %v: %w", peers, err)
		case <-n.shutdownCh:
			return ErrShutdown
		case <-time.After(backoff(attempt)):
		}
	}
}

func (n *Node) gossipLogger() *log.Logger {
	if n.log.IsDebug() {
		return n.log.Named("gossip").StandardLogger(nil)
	}
	return log.New(io.Discard, "", 0)
}

func (n *Node) memberlistConfig(host string, port int) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.ID()
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		mc.AdvertiseAddr = ""
	}
	mc.ProbeInterval = n.cfg.GossipProbeInterval
	mc.ProbeTimeout = n.cfg.GossipProbeTimeout
	mc.GossipInterval = n.cfg.GossipInterval
	mc.SuspicionMult = n.cfg.GossipSuspicionMult
	mc.SuspicionMaxTimeoutMult = 2
	mc.TCPTimeout = 2 * time.Second
	mc.DeadNodeReclaimTime = time.Second
	// Compression costs more CPU than it saves on a LAN or loopback.
	mc.EnableCompression = false
	mc.Delegate = gossipDelegate{n: n}
	mc.Events = eventDelegate{n: n}
	mc.Logger = n.gossipLogger()
	return mc
}

// boundTransport is memberlist's network transport with its TCP streams
// leaving from the gossip bind IP (memberlist's own dials use any source
// address), so each node of several on one host keeps its own address.
type boundTransport struct {
	*memberlist.NetTransport
	local net.IP
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// DialTimeout implements memberlist.Transport.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.local != nil && !t.local.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: t.local}
	}
	return d.Dial("tcp", addr)
}

// aliveMembers returns the IDs of the nodes gossip currently sees alive
// (or suspect: not yet declared dead).
func (n *Node) aliveMembers() map[string]bool {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	alive := make(map[string]bool, len(n.members))
	for id := range n.members {
		alive[id] = true
	}
	return alive
}

// managerAddrs returns the control addresses of the managers this node
// knows, best first: the Raft leader (on managers), then the managers
// gossip sees alive (rotated by this node's ID, so workers spread their
// sessions), then the rest of the Raft configuration and the addresses it
// joined with (possibly dead: tried last).
func (n *Node) managerAddrs() []string {
	var out []string
	r := n.raftNode()
	if r != nil {
		if addr, _ := r.LeaderWithID(); addr != "" {
			out = append(out, string(addr))
		}
	}
	alive := n.aliveManagerAddrs()
	if len(alive) > 0 {
		sort.Strings(alive)
		off := int(crc32.ChecksumIEEE([]byte(n.ID())) % uint32(len(alive)))
		out = append(out, alive[off:]...)
		out = append(out, alive[:off]...)
	}
	if r != nil {
		if f := r.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				out = append(out, string(s.Address))
			}
		}
	}
	n.mu.Lock()
	if n.ident != nil {
		out = append(out, n.ident.Managers...)
	}
	n.mu.Unlock()
	return without(out, "")
}

// aliveManagerAddrs returns the control addresses of the managers gossip
// sees alive.
func (n *Node) aliveManagerAddrs() []string {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	var out []string
	for _, meta := range n.members {
		if meta.Role == RoleManager && meta.Addr != "" {
			out = append(out, meta.Addr)
		}
	}
	return out
}
