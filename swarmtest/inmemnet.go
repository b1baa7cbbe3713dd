package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Network chooses the network the nodes of a test cluster talk on.
type Network int

const (
	// LoopbackNetwork is the default: real TCP and UDP sockets on loopback.
	LoopbackNetwork Network = iota
	// InmemNetwork carries the control streams (under the same TLS) and
	// gossip in memory, without sockets, as memberlist's MockNetwork and
	// raft's InmemTransport do: thousands of nodes fit in one process, and
	// Partition, PartitionOneWay and Heal work without root.
	InmemNetwork
)

// pipeBuffer is how many bytes one direction of an in-memory connection
// holds before its writer blocks, as a socket's send buffer does (net.Pipe
// holds none: a writer there waits for its reader, which deadlocks TLS).
const pipeBuffer = 256 << 10

// gossipQueue is how many gossip packets a node's inbox holds; more are
// dropped, as a full UDP receive buffer drops them.
const gossipQueue = 1024

// cutDialWait is how long a dial across a cut link waits for the link to
// heal before it times out (a SYN that is dropped).
const cutDialWait = 2 * time.Second

// inmemNet is an in-memory network: listeners by "host:port", and the
// links (by host) that are cut. It implements swarm.Network.
type inmemNet struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	gossip    map[string]*memGossip
	cuts      map[[2]string]bool // {from host, to host}
	// linkSig is closed and replaced whenever a link is cut or healed,
	// waking readers and dialers that wait on a cut link.
	linkSig  chan struct{}
	nextPort int
	nextHost int
	closed   chan struct{}
}

func newInmemNet() *inmemNet {
	return &inmemNet{
		listeners: map[string]*memListener{},
		gossip:    map[string]*memGossip{},
		cuts:      map[[2]string]bool{},
		linkSig:   make(chan struct{}),
		nextPort:  20000,
		closed:    make(chan struct{}),
	}
}

// nextIP returns a fresh host address for a node. It is a loopback
// address, so that what a node binds for real (DNS, published ports) on
// its control host still binds.
func (n *inmemNet) nextIP() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nextHost++
	v := 200<<16 | n.nextHost
	return net.IPv4(127, byte(v>>16), byte(v>>8), byte(v)).String()
}

func (n *inmemNet) changedLocked() {
	close(n.linkSig)
	n.linkSig = make(chan struct{})
}

func (n *inmemNet) cut(a, b []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.cuts[[2]string{x, y}] = true
			n.cuts[[2]string{y, x}] = true
		}
	}
	n.changedLocked()
	return nil
}

func (n *inmemNet) cutOneWay(from, to string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[[2]string{from, to}] = true
	n.changedLocked()
	return nil
}

func (n *inmemNet) heal() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts = map[[2]string]bool{}
	n.changedLocked()
	return nil
}

func (n *inmemNet) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.closed:
	default:
		close(n.closed)
	}
}

// blocked reports whether traffic from host a to host b is cut, and the
// signal of the next change.
func (n *inmemNet) blocked(a, b string) (bool, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cuts[[2]string{a, b}], n.linkSig
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// bind reserves addr ("host:0" picks a port) and returns its TCP form.
func (n *inmemNet) bindLocked(addr string) (*net.TCPAddr, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("swarmtest: in-memory network needs a specific IP, not %q", addr)
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		for {
			n.nextPort++
			a := net.JoinHostPort(host, strconv.Itoa(n.nextPort))
			if n.listeners[a] == nil && n.gossip[a] == nil {
				port = n.nextPort
				break
			}
		}
	}
	a := net.JoinHostPort(host, strconv.Itoa(port))
	if n.listeners[a] != nil || n.gossip[a] != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: errors.New("address already in use")}
	}
	return &net.TCPAddr{IP: ip, Port: port}, nil
}

// Listen implements swarm.Network.
func (n *inmemNet) Listen(addr string) (net.Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ta, err := n.bindLocked(addr)
	if err != nil {
		return nil, err
	}
	l := &memListener{n: n, addr: ta, ch: make(chan net.Conn, 128), done: make(chan struct{})}
	n.listeners[ta.String()] = l
	return l, nil
}

// Dial implements swarm.Network.
func (n *inmemNet) Dial(ctx context.Context, from, addr string) (net.Conn, error) {
	return n.dial(ctx, hostOf(from), addr)
}

func (n *inmemNet) dial(ctx context.Context, fromHost, addr string) (net.Conn, error) {
	toHost := hostOf(addr)
	var wait <-chan time.Time
	for {
		cut, sig := n.blocked(fromHost, toHost)
		if !cut {
			// The answer must come back too: a one-way cut also stops the
			// handshake.
			cut, sig = n.blocked(toHost, fromHost)
		}
		if !cut {
			break
		}
		if wait == nil {
			t := time.NewTimer(cutDialWait)
			defer t.Stop()
			wait = t.C
		}
		select {
		case <-sig:
		case <-wait:
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
		case <-ctx.Done():
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
		case <-n.closed:
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: net.ErrClosed}
		}
	}
	n.mu.Lock()
	l := n.listeners[addr]
	n.nextPort++
	local := &net.TCPAddr{IP: net.ParseIP(fromHost), Port: n.nextPort}
	n.mu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	c, s := newMemPipe(n, local, l.addr)
	select {
	case l.ch <- s:
		return c, nil
	case <-l.done:
	case <-ctx.Done():
	}
	c.Close()
	s.Close()
	if ctx.Err() != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
}

// memListener is a control listener (or a gossip node's stream listener).
type memListener struct {
	n    *inmemNet
	addr *net.TCPAddr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

// Accept implements net.Listener.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener; connections not yet accepted are reset.
func (l *memListener) Close() error {
	l.once.Do(func() {
		l.n.mu.Lock()
		if l.n.listeners[l.addr.String()] == l {
			delete(l.n.listeners, l.addr.String())
		}
		l.n.mu.Unlock()
		close(l.done)
		for {
			select {
			case c := <-l.ch:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr implements net.Listener.
func (l *memListener) Addr() net.Addr { return l.addr }

// memGossip is a node's gossip transport on the in-memory network:
// packets go straight to the receiver's inbox (dropped when it is full or
// the link is cut); streams are in-memory connections.
type memGossip struct {
	n       *inmemNet
	addr    *net.TCPAddr
	packets chan *memberlist.Packet
	streams *memListener
	done    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*memGossip)(nil)

// GossipTransport implements swarm.Network.
func (n *inmemNet) GossipTransport(addr string) (memberlist.NodeAwareTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ta, err := n.bindLocked(addr)
	if err != nil {
		return nil, err
	}
	g := &memGossip{n: n, addr: ta, packets: make(chan *memberlist.Packet, gossipQueue), done: make(chan struct{})}
	g.streams = &memListener{n: n, addr: ta, ch: make(chan net.Conn, 128), done: make(chan struct{})}
	n.gossip[ta.String()] = g
	n.listeners[ta.String()] = g.streams
	return g, nil
}

// FinalAdvertiseAddr implements memberlist.Transport: the bound address.
func (g *memGossip) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return g.addr.IP, g.addr.Port, nil
}

// WriteTo implements memberlist.Transport.
func (g *memGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (g *memGossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	select {
	case <-g.done:
		return now, net.ErrClosed
	default:
	}
	g.n.mu.Lock()
	dst := g.n.gossip[a.Addr]
	cut := g.n.cuts[[2]string{g.addr.IP.String(), hostOf(a.Addr)}]
	g.n.mu.Unlock()
	if dst == nil || cut {
		return now, nil // a datagram to nowhere is not an error
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: g.addr, Timestamp: now}
	select {
	case dst.packets <- p:
	case <-dst.done:
	default:
	}
	return now, nil
}

// PacketCh implements memberlist.Transport.
func (g *memGossip) PacketCh() <-chan *memberlist.Packet { return g.packets }

// DialTimeout implements memberlist.Transport.
func (g *memGossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return g.n.dial(ctx, g.addr.IP.String(), addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (g *memGossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return g.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (g *memGossip) StreamCh() <-chan net.Conn { return g.streams.ch }

// Shutdown implements memberlist.Transport.
func (g *memGossip) Shutdown() error {
	g.once.Do(func() {
		g.n.mu.Lock()
		if g.n.gossip[g.addr.String()] == g {
			delete(g.n.gossip, g.addr.String())
		}
		g.n.mu.Unlock()
		close(g.done)
		g.streams.Close()
	})
	return nil
}

// memPipe is one direction of an in-memory connection: a bounded byte
// buffer between a writer and a reader.
type memPipe struct {
	mu      sync.Mutex
	buf     []byte
	wclosed bool // the writer closed: EOF once drained
	rclosed bool // the reader closed: writes fail
	sig     chan struct{}
}

func (p *memPipe) wakeLocked() {
	close(p.sig)
	p.sig = make(chan struct{})
}

// memConn is one end of an in-memory connection. Data from a host whose
// link to this one is cut waits (as TCP retransmits) until Heal.
type memConn struct {
	n             *inmemNet
	local, remote *net.TCPAddr
	in, out       *memPipe
	rd, wd        *deadline
	closeOnce     sync.Once
	closed        chan struct{}
}

func newMemPipe(n *inmemNet, a, b *net.TCPAddr) (*memConn, *memConn) {
	ab := &memPipe{sig: make(chan struct{})}
	ba := &memPipe{sig: make(chan struct{})}
	ca := &memConn{n: n, local: a, remote: b, in: ba, out: ab, rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	cb := &memConn{n: n, local: b, remote: a, in: ab, out: ba, rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
	return ca, cb
}

// Read implements net.Conn.
func (c *memConn) Read(b []byte) (int, error) {
	for {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		default:
		}
		cut, linkSig := c.n.blocked(c.remote.IP.String(), c.local.IP.String())
		c.in.mu.Lock()
		sig := c.in.sig
		if !cut {
			if len(c.in.buf) > 0 {
				k := copy(b, c.in.buf)
				c.in.buf = c.in.buf[k:]
				if len(c.in.buf) == 0 {
					c.in.buf = nil
				}
				c.in.wakeLocked()
				c.in.mu.Unlock()
				return k, nil
			}
			if c.in.wclosed {
				c.in.mu.Unlock()
				return 0, io.EOF
			}
		}
		c.in.mu.Unlock()
		select {
		case <-sig:
		case <-linkSig:
		case <-c.closed:
		case <-c.rd.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write implements net.Conn.
func (c *memConn) Write(b []byte) (int, error) {
	written := 0
	for {
		select {
		case <-c.closed:
			return written, net.ErrClosed
		case <-c.wd.wait():
			return written, os.ErrDeadlineExceeded
		default:
		}
		c.out.mu.Lock()
		if c.out.rclosed {
			c.out.mu.Unlock()
			return written, &net.OpError{Op: "write", Net: "tcp", Err: errors.New("connection reset by peer")}
		}
		if room := pipeBuffer - len(c.out.buf); room > 0 {
			k := min(room, len(b)-written)
			c.out.buf = append(c.out.buf, b[written:written+k]...)
			written += k
			c.out.wakeLocked()
		}
		sig := c.out.sig
		c.out.mu.Unlock()
		if written == len(b) {
			return written, nil
		}
		select {
		case <-sig:
		case <-c.closed:
		case <-c.wd.wait():
		}
	}
}

// Close implements net.Conn.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.out.mu.Lock()
		c.out.wclosed = true
		c.out.wakeLocked()
		c.out.mu.Unlock()
		c.in.mu.Lock()
		c.in.rclosed = true
		c.in.buf = nil
		c.in.wakeLocked()
		c.in.mu.Unlock()
	})
	return nil
}

// LocalAddr implements net.Conn.
func (c *memConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn.
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *memConn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *memConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a settable deadline whose channel closes when it passes
// (net.Pipe's pipeDeadline).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func newDeadline() *deadline { return &deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
