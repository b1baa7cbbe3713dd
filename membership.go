package swarm

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberMeta is what every node gossips about itself.
type memberMeta struct {
	Role Role   `json:"r"`
	Addr string `json:"a"`
}

// gossipDelegate publishes the node's metadata.
type gossipDelegate struct{ n *Node }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(memberMeta{Role: d.n.Role(), Addr: d.n.Addr()})
	if len(b) > limit {
		return nil
	}
	return b
}
func (d gossipDelegate) NotifyMsg([]byte)                           {}
func (d gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate turns membership changes into a coalesced signal; the
// leader's liveness loop reads the member list itself.
type eventDelegate struct{ n *Node }

func (d eventDelegate) NotifyJoin(*memberlist.Node)   { d.n.notifyMembers() }
func (d eventDelegate) NotifyLeave(*memberlist.Node)  { d.n.notifyMembers() }
func (d eventDelegate) NotifyUpdate(*memberlist.Node) { d.n.notifyMembers() }

func (n *Node) notifyMembers() {
	select {
	case n.memberEvents <- struct{}{}:
	default:
	}
}

// startMemberlist starts gossip on Config.GossipAddr (default: the control
// host, any port; a restarted node takes its previous port again).
func (n *Node) startMemberlist() error {
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
	for i, p := range tryPorts {
		mc := n.memberlistConfig(host, p)
		ml, err := memberlist.Create(mc)
		if err != nil {
			if i < len(tryPorts)-1 {
				continue
			}
			return fmt.Errorf("swarm: start gossip on %s: %w", net.JoinHostPort(host, strconv.Itoa(p)), err)
		}
		n.mu.Lock()
		n.ml = ml
		n.mu.Unlock()
		return nil
	}
	return nil
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
	if n.log.IsDebug() {
		mc.Logger = n.log.Named("gossip").StandardLogger(nil)
	} else {
		mc.Logger = log.New(io.Discard, "", 0)
	}
	return mc
}

// aliveMembers returns the IDs of the nodes gossip currently sees alive
// (or suspect: not yet declared dead).
func (n *Node) aliveMembers() map[string]bool {
	ml := n.memberlistRef()
	alive := map[string]bool{}
	if ml == nil {
		return alive
	}
	for _, m := range ml.Members() {
		alive[m.Name] = true
	}
	return alive
}

// managerAddrs returns the control addresses of the managers this node
// knows: the Raft configuration (managers), gossip metadata, and the
// addresses it joined with.
func (n *Node) managerAddrs() []string {
	var out []string
	if r := n.raftNode(); r != nil {
		if addr, _ := r.LeaderWithID(); addr != "" {
			out = append(out, string(addr))
		}
		if f := r.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				out = append(out, string(s.Address))
			}
		}
	}
	if ml := n.memberlistRef(); ml != nil {
		for _, m := range ml.Members() {
			var meta memberMeta
			if json.Unmarshal(m.Meta, &meta) == nil && meta.Role == RoleManager && meta.Addr != "" {
				out = append(out, meta.Addr)
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
