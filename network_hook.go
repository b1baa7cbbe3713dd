package swarm

import (
	"context"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
)

// Network is the network a node's traffic with other nodes travels on:
// its control streams (RPC, Raft, logs, proxied traffic, all TLS) and its
// gossip. Config.Network nil means the host's TCP and UDP. Another
// Network lets a test process run many nodes without sockets (the
// in-memory network of package swarmtest, as memberlist's MockNetwork and
// raft's InmemTransport do) or cut links between them; TLS and every
// protocol above the connections run unchanged on it.
//
// Addresses are "host:port" strings; a Network chooses the port for ":0".
type Network interface {
	// Listen binds the node's control listener at addr. Its Addr must be
	// a *net.TCPAddr (the address the node advertises, unless
	// Config.AdvertiseAddr says otherwise).
	Listen(addr string) (net.Listener, error)
	// Dial opens a stream to addr from the node whose control listener is
	// at from, ending when ctx does.
	Dial(ctx context.Context, from, addr string) (net.Conn, error)
	// GossipTransport binds gossip (memberlist) at addr; the node
	// advertises the address its FinalAdvertiseAddr returns, and shuts it
	// down with the node.
	GossipTransport(addr string) (memberlist.NodeAwareTransport, error)
}

// listenControl binds the control listener on cfg.Network, or TCP.
func (n *Node) listenControl(addr string) (net.Listener, error) {
	if n.cfg.Network != nil {
		return n.cfg.Network.Listen(addr)
	}
	return net.Listen("tcp", addr)
}

// dialRaw opens the raw stream under a control connection to addr.
func (t *transport) dialRaw(ctx context.Context, addr string) (net.Conn, error) {
	if t.network != nil {
		return t.network.Dial(ctx, t.ln.Addr().String(), addr)
	}
	return t.dialer().DialContext(ctx, "tcp", addr)
}

// bindGossipNetwork binds gossip at addr on cfg.Network and returns the
// transport and the address it advertises.
func (n *Node) bindGossipNetwork(addr string) (memberlist.NodeAwareTransport, string, error) {
	tr, err := n.cfg.Network.GossipTransport(addr)
	if err != nil {
		return nil, "", err
	}
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil {
		tr.Shutdown()
		return nil, "", err
	}
	return tr, net.JoinHostPort(ip.String(), strconv.Itoa(port)), nil
}
