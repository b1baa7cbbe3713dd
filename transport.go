package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Every connection to a node's control port starts with one byte that
// says what it carries, so RPC and Raft share one listener.
const (
	connRaft byte = 'R'
	connRPC  byte = 'C'
)

// transport owns the control listener: it accepts connections, hands Raft
// streams to Raft and serves RPC on the rest, and keeps a pool of RPC
// clients to other nodes. Close closes every connection it accepted or
// dialled, so a shut-down node looks crashed to its peers at once.
type transport struct {
	ln        net.Listener
	advertise string
	log       hclog.Logger
	server    *rpc.Server

	// onLogs serves a log stream connection (set before start).
	onLogs func(net.Conn)

	raftConns chan net.Conn
	done      chan struct{}
	wg        sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	conns   map[net.Conn]struct{}
	clients map[string]*rpc.Client
}

func newTransport(ln net.Listener, advertise string, log hclog.Logger) *transport {
	t := &transport{
		ln: ln, advertise: advertise, log: log,
		server:    rpc.NewServer(),
		raftConns: make(chan net.Conn),
		done:      make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
		clients:   map[string]*rpc.Client{},
	}
	return t
}

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
	var b [1]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.untrack(c)
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch b[0] {
	case connRaft:
		select {
		case t.raftConns <- c:
			// Raft owns it now; Close still closes it through conns.
		case <-t.done:
			t.untrack(c)
			c.Close()
		case <-time.After(5 * time.Second):
			// No Raft here to take it (a worker, or a demoted manager).
			t.untrack(c)
			c.Close()
		}
	case connRPC:
		t.server.ServeConn(c)
		t.untrack(c)
	case connLogs:
		if t.onLogs != nil {
			t.onLogs(c)
		}
		t.untrack(c)
		c.Close()
	default:
		t.untrack(c)
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

// dial opens a connection of the given kind to addr.
func (t *transport) dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	c, err := t.dialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	if !t.track(c) {
		return nil, ErrShutdown
	}
	return c, nil
}

// client returns a pooled RPC client for addr.
func (t *transport) client(ctx context.Context, addr string) (*rpc.Client, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrShutdown
	}
	if c, ok := t.clients[addr]; ok {
		t.mu.Unlock()
		return c, nil
	}
	t.mu.Unlock()
	conn, err := t.dial(ctx, addr, connRPC)
	if err != nil {
		return nil, err
	}
	c := rpc.NewClient(conn)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return nil, ErrShutdown
	}
	if old, ok := t.clients[addr]; ok {
		c.Close()
		return old, nil
	}
	t.clients[addr] = c
	return c, nil
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
	req := append([]byte(method+"\n"), body...)
	var resp []byte
	call := c.Go("Swarm.Call", req, &resp, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// No answer in time: the connection may be dead without an
			// error (a partition drops packets). Redial next time.
			t.dropClient(addr, c)
		}
		return ctx.Err()
	case <-t.done:
		return ErrShutdown
	}
	if call.Error != nil {
		t.dropClient(addr, c)
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

// streamLayer gives Raft its connections over the shared listener.
type streamLayer struct{ t *transport }

var _ raft.StreamLayer = streamLayer{}

func (s streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.t.raftConns:
		return c, nil
	case <-s.t.done:
		return nil, net.ErrClosed
	}
}

func (s streamLayer) Close() error { return nil }

func (s streamLayer) Addr() net.Addr { return advertisedAddr(s.t.advertise) }

func (s streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.t.dial(ctx, string(address), connRaft)
}

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// remoteError carries a sentinel across RPC: the message as the peer
// wrote it, and the sentinel it wrapped.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

var sentinels = []error{ErrNotFound, ErrNameConflict, ErrAmbiguous, ErrNotManager, ErrNoLeader,
	ErrInvalidSpec, ErrShutdown, ErrInvalidToken, ErrNotInSwarm, ErrAlreadyInSwarm,
	ErrLastManager, ErrVersionConflict}

// rpcEnvelope is every RPC reply: the handler's result, or its error with
// the sentinel it wrapped so that errors.Is works across the trip.
type rpcEnvelope struct {
	ErrMsg  string          `json:"e,omitempty"`
	ErrKind int             `json:"k,omitempty"` // index+1 into sentinels; -1 = none of them
	Body    json.RawMessage `json:"b,omitempty"`
}

func (r *rpcEnvelope) setErr(err error) {
	r.ErrMsg = err.Error()
	r.ErrKind = -1
	for i, s := range sentinels {
		if errors.Is(err, s) {
			r.ErrKind = i + 1
			break
		}
	}
}

func (r *rpcEnvelope) err() error {
	switch {
	case r.ErrKind == 0:
		return nil
	case r.ErrKind > 0 && r.ErrKind <= len(sentinels):
		return &remoteError{msg: r.ErrMsg, sentinel: sentinels[r.ErrKind-1]}
	}
	return errors.New(r.ErrMsg)
}
