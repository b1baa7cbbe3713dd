package swarm

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Every connection to a node's control port is TLS 1.3 (tls.go); its first
// byte inside TLS says what it carries, so RPC, Raft and log streams share
// one listener.
const (
	connRaft byte = 'R'
	connRPC  byte = 'C'
)

// transport owns the control listener: it accepts connections, runs the
// TLS handshake, hands Raft streams to Raft and serves RPC on the rest, and
// keeps a pool of RPC clients to other nodes. Close closes every connection
// it accepted or dialled, so a shut-down node looks crashed to its peers at
// once.
type transport struct {
	ln        net.Listener
	advertise string
	log       hclog.Logger

	// Set before start: the listener's TLS; the TLS of a connection of a
	// kind this node opens; admit, which decides whether a peer (nil: no
	// certificate) may open a connection of a kind; serveRPC, which serves
	// one RPC connection for a peer; onLogs, which serves a log stream.
	serverTLS *tls.Config
	clientTLS func(kind byte) (*tls.Config, error)
	admit     func(p *peerInfo, kind byte) error
	serveRPC  func(c net.Conn, p *peerInfo)
	onLogs    func(net.Conn)

	raftConns chan net.Conn
	done      chan struct{}
	wg        sync.WaitGroup

	mu     sync.Mutex
	closed bool
	// conns are the raw connections, accepted and dialled; peers names the
	// node at the other end of an accepted one that has a certificate.
	conns   map[net.Conn]struct{}
	peers   map[net.Conn]string
	clients map[string]*rpc.Client
	// gen counts retireClients: a client dialled across one is not pooled.
	gen uint64

	// network is Config.Network (nil: TCP).
	network Network

	// faults injects RPC faults, in tests only (faults.go).
	faults faultHook
}

func newTransport(ln net.Listener, advertise string, log hclog.Logger) *transport {
	t := &transport{
		ln: ln, advertise: advertise, log: log,
		raftConns: make(chan net.Conn),
		done:      make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
		peers:     map[net.Conn]string{},
		clients:   map[string]*rpc.Client{},
	}
	return t
}

// handshakeTimeout bounds an accepted connection's TLS handshake and kind byte.
const handshakeTimeout = 5 * time.Second

// start begins accepting; register RPC receivers before calling it.
func (t *transport) start() {
	t.wg.Add(1)
	go t.acceptLoop()
}

func (t *transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	delete(t.peers, c)
	t.mu.Unlock()
}

func (t *transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			t.log.Warn("accept failed", "error", err)
			return
		}
		if !t.track(c) {
			continue
		}
		t.wg.Add(1)
		go t.handle(c)
	}
}

func (t *transport) handle(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			panicked(t.log, "connection handler", r)
			c.Close()
		}
	}()
	// A client that is not a node of this swarm (no TLS, a certificate of
	// another CA, an expired one) gets nothing: the handshake fails and
	// the connection closes.
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(c, t.serverTLS)
	var b [1]byte
	if err := tc.Handshake(); err != nil {
		t.log.Trace("TLS handshake failed", "remote", c.RemoteAddr(), "error", err)
		t.untrack(c)
		c.Close()
		return
	}
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		t.untrack(c)
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	var p *peerInfo
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		p = peerFromCert(certs[0]) // verified in the handshake
	}
	if err := t.admit(p, b[0]); err != nil {
		t.log.Debug("connection refused", "remote", c.RemoteAddr(), "kind", string(b[:]), "error", err)
		t.untrack(c)
		c.Close()
		return
	}
	stopExpiry := func() bool { return false }
	if p != nil {
		t.mu.Lock()
		if _, ok := t.conns[c]; ok {
			t.peers[c] = p.ID
		}
		t.mu.Unlock()
		// The connection lives no longer than the certificate that opened
		// it: the peer redials with its renewed one.
		stopExpiry = time.AfterFunc(time.Until(p.NotAfter), func() { c.Close() }).Stop
	}
	switch b[0] {
	case connRaft:
		select {
		case t.raftConns <- &dialedConn{Conn: tc, raw: c, t: t, onClose: stopExpiry}:
			// Raft owns it now; Close still closes it through conns.
		case <-t.done:
			stopExpiry()
			t.untrack(c)
			c.Close()
		case <-time.After(5 * time.Second):
			// No Raft here to take it (a worker, or a demoted manager).
			stopExpiry()
			t.untrack(c)
			c.Close()
		}
	case connRPC:
		t.serveRPC(tc, p)
		stopExpiry()
		t.untrack(c)
		c.Close()
	case connLogs:
		if t.onLogs != nil {
			t.onLogs(tc)
		}
		stopExpiry()
		t.untrack(c)
		c.Close()
	default:
		t.untrack(c)
		c.Close()
	}
}

// closePeer closes every connection the node id opened to this one (it
// was removed from the swarm).
func (t *transport) closePeer(id string) {
	t.mu.Lock()
	var cs []net.Conn
	for c, pid := range t.peers {
		if pid == id {
			cs = append(cs, c)
		}
	}
	t.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// dialer returns a dialer whose connections leave from the node's own
// control IP when it listens on a specific one, so that peers (and packet
// filters) see each node at its own address even with several on one host.
func (t *transport) dialer() *net.Dialer {
	return &net.Dialer{LocalAddr: localTCPAddr(t.ln.Addr())}
}

// localTCPAddr is addr's IP with any port, or nil for a wildcard address.
func localTCPAddr(addr net.Addr) *net.TCPAddr {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		return nil
	}
	return &net.TCPAddr{IP: ta.IP}
}

// dial opens a connection of the given kind to addr: TCP, then TLS with
// this node's certificate, then the kind byte.
func (t *transport) dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	cfg, err := t.clientTLS(kind)
	if err != nil {
		return nil, err
	}
	return t.dialTLS(ctx, addr, kind, cfg)
}

func (t *transport) dialTLS(ctx context.Context, addr string, kind byte, cfg *tls.Config) (net.Conn, error) {
	raw, err := t.dialRaw(ctx, addr)
	if err != nil {
		return nil, err
	}
	if !t.track(raw) {
		return nil, ErrShutdown
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		t.untrack(raw)
		raw.Close()
		return nil, err
	}
	if _, err := tc.Write([]byte{kind}); err != nil {
		t.untrack(raw)
		raw.Close()
		return nil, err
	}
	return &dialedConn{Conn: tc, raw: raw, t: t}, nil
}

// dialedConn untracks its raw connection when closed (dialled
// connections, and accepted ones handed to Raft).
type dialedConn struct {
	net.Conn // *tls.Conn
	raw      net.Conn
	t        *transport
	onClose  func() bool // if set, called once at Close
	once     sync.Once
}

func (c *dialedConn) Close() error {
	c.once.Do(func() {
		c.t.untrack(c.raw)
		if c.onClose != nil {
			c.onClose()
		}
	})
	err := c.Conn.Close()
	c.raw.Close()
	return err
}

// client returns a pooled RPC client for addr.
func (t *transport) client(ctx context.Context, addr string) (*rpc.Client, error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, ErrShutdown
		}
		if c, ok := t.clients[addr]; ok {
			t.mu.Unlock()
			return c, nil
		}
		gen := t.gen
		t.mu.Unlock()
		conn, err := t.dial(ctx, addr, connRPC)
		if err != nil {
			return nil, err
		}
		c := rpc.NewClient(conn)
		t.mu.Lock()
		closed, stale := t.closed, t.gen != gen
		old, ok := t.clients[addr]
		if !closed && !stale && !ok {
			t.clients[addr] = c
		}
		t.mu.Unlock()
		// Closing untracks the connection, which takes mu: not under it.
		switch {
		case closed:
			c.Close()
			return nil, ErrShutdown
		case stale:
			// Dialled with the certificate that was just replaced: the
			// peer would judge this node by its old role. Dial again.
			c.Close()
			continue
		case ok:
			c.Close()
			return old, nil
		}
		return c, nil
	}
}

// dropClient forgets a broken client so the next call redials.
func (t *transport) dropClient(addr string, c *rpc.Client) {
	t.mu.Lock()
	if t.clients[addr] == c {
		delete(t.clients, addr)
	}
	t.mu.Unlock()
	c.Close()
}

// call makes one RPC to addr, bounded by ctx: args is sent as JSON, the
// peer's handler result decoded into reply (which may be nil). An error the
// peer's handler returned comes back with its sentinel; a connection-level
// failure drops the pooled client and wraps errUnreachable.
func (t *transport) call(ctx context.Context, addr, method string, args, reply any) error {
	if err := t.faults.beforeCall(ctx, addr, method); err != nil {
		return err
	}
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	c, err := t.client(ctx, addr)
	if err != nil {
		if errors.Is(err, ErrShutdown) {
			return err
		}
		return fmt.Errorf("%w: %s: %v", errUnreachable, addr, err)
	}
	return t.roundTrip(ctx, addr, c, method, body, reply, func() { t.dropClient(addr, c) })
}

// roundTrip makes one call on c; drop (if not nil) discards a client that
// failed or did not answer in time.
func (t *transport) roundTrip(ctx context.Context, addr string, c *rpc.Client, method string, body []byte, reply any, drop func()) error {
	req := append([]byte(method+"\n"), body...)
	var resp []byte
	call := c.Go("Swarm.Call", req, &resp, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && drop != nil {
			// No answer in time: the connection may be dead without an
			// error (a partition drops packets). Redial next time.
			drop()
		}
		return ctx.Err()
	case <-t.done:
		return ErrShutdown
	}
	if call.Error != nil {
		if drop != nil {
			drop()
		}
		return fmt.Errorf("%w: %s: %v", errUnreachable, addr, call.Error)
	}
	var env rpcEnvelope
	if err := json.Unmarshal(resp, &env); err != nil {
		return fmt.Errorf("swarm: bad reply from %s: %w", addr, err)
	}
	if err := env.err(); err != nil {
		return err
	}
	if reply != nil && len(env.Body) > 0 {
		return json.Unmarshal(env.Body, reply)
	}
	return nil
}

// callPinned makes one RPC on a connection of its own with the given TLS
// (a join, pinned to the token's CA). A CA that is not the pinned one
// fails with ErrInvalidToken, a server that is not a manager with
// ErrNotManager.
func (t *transport) callPinned(ctx context.Context, addr string, cfg *tls.Config, method string, args, reply any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	conn, err := t.dialTLS(ctx, addr, connRPC, cfg)
	if err != nil {
		if errors.Is(err, ErrShutdown) {
			return err
		}
		return joinDialError(addr, err)
	}
	c := rpc.NewClient(conn)
	defer c.Close()
	return t.roundTrip(ctx, addr, c, method, body, reply, nil)
}

// retireClients drops the pooled clients (the node's certificate changed):
// new calls dial afresh with the new one; calls in flight finish on the
// old connections, which the peers close when the old certificate
// expires, and Close closes in any case.
func (t *transport) retireClients() {
	t.mu.Lock()
	t.clients = map[string]*rpc.Client{}
	t.gen++
	t.mu.Unlock()
}

// errUnreachable marks a failure to reach a peer (as opposed to an error
// the peer returned).
var errUnreachable = errors.New("peer unreachable")

func (t *transport) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	close(t.done)
	t.ln.Close()
	for c := range t.conns {
		c.Close()
	}
	clients := t.clients
	t.clients = map[string]*rpc.Client{}
	t.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	t.wg.Wait()
}

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// remoteError carries a sentinel across RPC: the message as the peer
// wrote it, and the sentinel it wrapped (nil when it wrapped none, or one
// this node does not know; see [errorCodes]).
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// rpcEnvelope is every RPC reply: the handler's result, or its error with
// the sentinel it wrapped so that errors.Is works across the trip.
type rpcEnvelope struct {
	ErrMsg  string          `json:"e,omitempty"`
	ErrKind int             `json:"k,omitempty"` // the sentinel's code in errorCodes; -1 = none of them
	Body    json.RawMessage `json:"b,omitempty"`
}

func (r *rpcEnvelope) setErr(err error) {
	r.ErrMsg = err.Error()
	r.ErrKind = errorCode(err)
}

func (r *rpcEnvelope) err() error { return errorFromCode(r.ErrKind, r.ErrMsg) }
