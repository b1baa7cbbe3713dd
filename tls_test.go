package swarm

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/rpc"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers for the security tests of package swarm_test (security_test.go).

// NodeTLSCertificate returns the node's current TLS certificate: its
// certificate, the CA's and its private key.
func NodeTLSCertificate(n *Node) tls.Certificate { return n.sec.get().cert }

// RawCall makes one RPC on conn, a connection to a control port on which
// the connection kind byte was sent, and closes it; args and reply travel
// as JSON.
func RawCall(conn net.Conn, method string, args, reply any) error {
	c := NewRawClient(conn)
	defer c.Close()
	return c.Call(method, args, reply)
}

// RawClient makes RPCs on one connection to a control port.
type RawClient struct{ c *rpc.Client }

// NewRawClient returns a client on conn (the kind byte sent).
func NewRawClient(conn net.Conn) *RawClient { return &RawClient{c: rpc.NewClient(conn)} }

// Close closes the connection.
func (r *RawClient) Close() error { return r.c.Close() }

// Call makes one call.
func (r *RawClient) Call(method string, args, reply any) error {
	body, err := json.Marshal(args)
	if err != nil {
		return err
	}
	var resp []byte
	if err := r.c.Call("Swarm.Call", append([]byte(method+"\n"), body...), &resp); err != nil {
		return err
	}
	var env rpcEnvelope
	if err := json.Unmarshal(resp, &env); err != nil {
		return err
	}
	if err := env.err(); err != nil {
		return err
	}
	if reply != nil && len(env.Body) > 0 {
		return json.Unmarshal(env.Body, reply)
	}
	return nil
}

// GossipAddr returns the node's gossip address.
func GossipAddr(n *Node) string { return n.gossipAddr() }

// GossipJoin makes the node's gossip join the members at addrs.
func GossipJoin(n *Node, addrs ...string) (int, error) { return n.memberlistRef().Join(addrs) }

// GossipMembers returns the names (node IDs) of the members the node's
// gossip knows alive.
func GossipMembers(n *Node) []string {
	var out []string
	for _, m := range n.memberlistRef().Members() {
		out = append(out, m.Name)
	}
	return out
}

// GossipKeys returns the keys of the node's live gossip keyring, the
// primary first.
func GossipKeys(n *Node) [][]byte {
	n.sec.mu.RLock()
	k := n.sec.mlKeyring
	n.sec.mu.RUnlock()
	return k.GetKeys()
}

func testCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	ca, key, err := newRootCA(time.Now())
	require.NoError(t, err)
	return ca, key
}

func issueTestCreds(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, id, cluster string, role Role, expiry time.Duration) *nodeCreds {
	t.Helper()
	key, err := newNodeKey()
	require.NoError(t, err)
	csr, err := newCSR(key, id)
	require.NoError(t, err)
	pub, err := csrPublicKey(csr)
	require.NoError(t, err)
	der, err := issueNodeCert(ca, caKey, pub, id, cluster, role, time.Now(), expiry)
	require.NoError(t, err)
	c, err := newCreds(ca.Raw, der, key)
	require.NoError(t, err)
	return c
}

func TestCADigestIsTheTokenDigest(t *testing.T) {
	ca, _ := testCA(t)
	d := caDigest(ca.Raw)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-z]{50}$`), d)
	require.Equal(t, d, caDigest(ca.Raw), "deterministic")
	other, _ := testCA(t)
	require.NotEqual(t, d, caDigest(other.Raw))
	require.True(t, ca.IsCA)
	require.Equal(t, caCommonName, ca.Subject.CommonName)
	require.InDelta(t, float64(caValidity), float64(ca.NotAfter.Sub(ca.NotBefore)), float64(2*time.Hour))
	// A token built from it parses.
	_, _, err := parseToken(formatToken(d, randBase36(16, 25)))
	require.NoError(t, err)
}

func TestNodeCertificateFields(t *testing.T) {
	ca, x := testCA(t)
	c := issueTestCreds(t, ca, x, "node1", "cluster1", RoleWorker, time.Hour)
	require.Equal(t, "node1", c.leaf.Subject.CommonName)
	require.Equal(t, []string{certOUWorker}, c.leaf.Subject.OrganizationalUnit)
	require.Equal(t, []string{"cluster1"}, c.leaf.Subject.Organization)
	require.Equal(t, RoleWorker, c.role())
	require.Equal(t, "cluster1", c.clusterID())
	require.WithinDuration(t, time.Now().Add(time.Hour), c.leaf.NotAfter, time.Minute)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := c.leaf.Verify(x509.VerifyOptions{Roots: c.pool, KeyUsages: []x509.ExtKeyUsage{u}})
		require.NoError(t, err)
	}
	m := issueTestCreds(t, ca, x, "node2", "cluster1", RoleManager, time.Hour)
	require.Equal(t, RoleManager, m.role())

	// A certificate of another CA, or for another key, is refused.
	other, ox := testCA(t)
	o := issueTestCreds(t, other, ox, "node1", "cluster1", RoleWorker, time.Hour)
	_, err := newCreds(ca.Raw, o.leaf.Raw, o.key)
	require.Error(t, err)
	_, err = newCreds(ca.Raw, c.leaf.Raw, m.key)
	require.Error(t, err)
	_, err = verifyPeer(c, []*x509.Certificate{o.leaf}, x509.ExtKeyUsageClientAuth)
	require.Error(t, err)
	p, err := verifyPeer(c, []*x509.Certificate{m.leaf}, x509.ExtKeyUsageClientAuth)
	require.NoError(t, err)
	require.Equal(t, &peerInfo{ID: "node2", ClusterID: "cluster1", Role: RoleManager, NotAfter: m.leaf.NotAfter}, p)
	// Same CA, another swarm's name: refused.
	x2 := issueTestCreds(t, ca, x, "node3", "cluster2", RoleManager, time.Hour)
	_, err = verifyPeer(c, []*x509.Certificate{x2.leaf}, x509.ExtKeyUsageClientAuth)
	require.Error(t, err)
	// Expired: refused.
	old := issueTestCreds(t, ca, x, "node4", "cluster1", RoleManager, time.Second)
	time.Sleep(1100 * time.Millisecond)
	_, err = verifyPeer(c, []*x509.Certificate{old.leaf}, x509.ExtKeyUsageClientAuth)
	require.Error(t, err)
}

func TestCSRChecked(t *testing.T) {
	key, err := newNodeKey()
	require.NoError(t, err)
	csr, err := newCSR(key, "n")
	require.NoError(t, err)
	pub, err := csrPublicKey(csr)
	require.NoError(t, err)
	require.True(t, pub.Equal(&key.PublicKey))
	bad := append([]byte{}, csr...)
	bad[len(bad)-5] ^= 0xff // break the signature
	_, err = csrPublicKey(bad)
	require.ErrorIs(t, err, ErrInvalidSpec)
	_, err = csrPublicKey(nil)
	require.ErrorIs(t, err, ErrInvalidSpec)
}

func TestRenewalBetween50And80Percent(t *testing.T) {
	ca, x := testCA(t)
	c := issueTestCreds(t, ca, x, "n", "c", RoleWorker, 100*time.Hour)
	life := c.leaf.NotAfter.Sub(c.leaf.NotBefore)
	lo, hi := c.leaf.NotBefore.Add(life/2), c.leaf.NotBefore.Add(life*8/10)
	seen := map[bool]int{}
	for i := 0; i < 1000; i++ {
		at := renewAt(c.leaf)
		require.False(t, at.Before(lo) || at.After(hi), "renewal at %v outside [%v, %v]", at, lo, hi)
		seen[at.Before(c.leaf.NotBefore.Add(life*65/100))]++
	}
	require.Len(t, seen, 2, "the renewal point is random")
}

func TestCAKeySealedWithDataKey(t *testing.T) {
	_, key, err := newRootCA(time.Now())
	require.NoError(t, err)
	dek := randomKey()
	sealed, err := sealCAKey(dek, key, "c1")
	require.NoError(t, err)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	require.NotContains(t, string(sealed), string(der[len(der)-32:]), "no plaintext key bytes")
	back, err := openCAKey(dek, sealed, "c1")
	require.NoError(t, err)
	require.True(t, back.Equal(key))
	_, err = openCAKey(randomKey(), sealed, "c1")
	require.Error(t, err, "another data key")
	_, err = openCAKey(dek, sealed, "c2")
	require.Error(t, err, "another swarm")
}

func TestPinnedTLSConfig(t *testing.T) {
	ca, x := testCA(t)
	mgr := issueTestCreds(t, ca, x, "m", "c", RoleManager, time.Hour)
	wrk := issueTestCreds(t, ca, x, "w", "c", RoleWorker, time.Hour)
	other, ox := testCA(t)
	// A server that presents the real CA in its chain, but a leaf of another CA.
	forged := issueTestCreds(t, other, ox, "m", "c", RoleManager, time.Hour)
	forged.cert.Certificate = [][]byte{forged.leaf.Raw, ca.Raw}

	serve := func(cert tls.Certificate) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					io.Copy(io.Discard, c)
				}()
			}
		}()
		return ln.Addr().String()
	}
	dial := func(addr, pin string) error {
		c, err := tls.Dial("tcp", addr, pinnedTLSConfig(pin))
		if err == nil {
			c.Close()
		}
		return err
	}
	good := serve(mgr.cert)
	require.NoError(t, dial(good, caDigest(ca.Raw)))
	require.True(t, errors.Is(dial(good, caDigest(other.Raw)), errPinMismatch), "another CA's digest")
	require.True(t, errors.Is(dial(serve(forged.cert), caDigest(ca.Raw)), errPinMismatch), "a leaf not signed by the pinned CA")
	require.True(t, errors.Is(dial(serve(wrk.cert), caDigest(ca.Raw)), errPeerNotManager), "a worker")
	_, err := tls.Dial("tcp", good, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	require.Error(t, err, "TLS 1.2 is refused")
}

// authNode is a node with a state but nothing running, for authorizeRPC.
func authNode(t *testing.T) *Node {
	n := NewNode(DefaultLocalConfig())
	n.fsm = newFSM()
	n.fsm.st.cluster = &clusterRecord{ID: "c", Revoked: map[string]time.Time{"gone": time.Now()}}
	for _, nd := range []*NodeInfo{
		{ID: "m1", Role: RoleManager}, {ID: "w1", Role: RoleWorker}, {ID: "demoted", Role: RoleWorker},
	} {
		n.fsm.st.nodes[nd.ID] = nd
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

func TestAuthorizeRPC(t *testing.T) {
	n := authNode(t)
	mgr := &peerInfo{ID: "m1", Role: RoleManager}
	wrk := &peerInfo{ID: "w1", Role: RoleWorker}
	demoted := &peerInfo{ID: "demoted", Role: RoleManager} // an old manager certificate
	gone := &peerInfo{ID: "gone", Role: RoleManager}
	fresh := &peerInfo{ID: "new", Role: RoleManager} // not in this manager's state yet
	body := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	type tc struct {
		peer   *peerInfo
		method string
		args   map[string]any
		want   error
	}
	for i, c := range []tc{
		// Without a certificate: only a join.
		{nil, "join", map[string]any{"Token": "x"}, nil},
		{nil, "join", map[string]any{"Rejoin": true, "Node": map[string]any{"ID": "w1"}}, ErrPermissionDenied},
		{nil, "join", map[string]any{"Forwarded": true}, ErrPermissionDenied},
		{nil, "assignments", map[string]any{"NodeID": "w1"}, ErrPermissionDenied},
		{nil, "apply", nil, ErrPermissionDenied},
		{nil, "nodeMgmt", map[string]any{"Op": "record", "Ref": "w1"}, ErrPermissionDenied},
		{nil, "renewCert", map[string]any{"NodeID": "w1"}, ErrPermissionDenied},
		// A worker: about itself only; never manager-only endpoints.
		{wrk, "join", map[string]any{"Rejoin": true, "Node": map[string]any{"ID": "w1"}}, nil},
		{wrk, "join", map[string]any{"Rejoin": true, "Node": map[string]any{"ID": "m1"}}, ErrPermissionDenied},
		{wrk, "join", map[string]any{"Forwarded": true}, ErrPermissionDenied},
		{wrk, "assignments", map[string]any{"NodeID": "w1"}, nil},
		{wrk, "assignments", map[string]any{"NodeID": "m1"}, ErrPermissionDenied},
		{wrk, "status", map[string]any{"NodeID": "w1"}, nil},
		{wrk, "status", map[string]any{"NodeID": "w1", "Forwarded": true}, ErrPermissionDenied},
		{wrk, "leave", map[string]any{"NodeID": "m1"}, ErrPermissionDenied},
		{wrk, "renewCert", map[string]any{"NodeID": "w1"}, nil},
		{wrk, "secState", map[string]any{"NodeID": "w1"}, nil},
		{wrk, "nodeMgmt", map[string]any{"Op": "record", "Ref": "w1"}, nil},
		{wrk, "nodeMgmt", map[string]any{"Op": "record", "Ref": "m1"}, ErrPermissionDenied},
		{wrk, "nodeMgmt", map[string]any{"Op": "update", "Ref": "w1"}, ErrPermissionDenied},
		{wrk, "apply", nil, ErrPermissionDenied},
		{wrk, "readIndex", nil, ErrPermissionDenied},
		{wrk, "addVoter", map[string]any{"NodeID": "w1"}, ErrPermissionDenied},
		{wrk, "dataKey", map[string]any{"NodeID": "w1"}, ErrPermissionDenied},
		{wrk, "someFutureMethod", nil, ErrPermissionDenied},
		// A manager: everything, forwarded requests included.
		{mgr, "apply", nil, nil},
		{mgr, "readIndex", nil, nil},
		{mgr, "addVoter", map[string]any{"NodeID": "m1"}, nil},
		{mgr, "join", map[string]any{"Forwarded": true}, nil},
		{mgr, "status", map[string]any{"NodeID": "w1", "Forwarded": true}, nil},
		{mgr, "nodeMgmt", map[string]any{"Op": "update", "Ref": "w1"}, nil},
		{mgr, "dataKey", map[string]any{"NodeID": "m1"}, nil},
		{mgr, "dataKey", map[string]any{"NodeID": "w1"}, ErrPermissionDenied},
		{fresh, "apply", nil, nil},
		// A demoted manager's old certificate is no longer a manager's.
		{demoted, "apply", nil, ErrPermissionDenied},
		{demoted, "assignments", map[string]any{"NodeID": "demoted"}, nil},
		// A removed node: refused.
		{gone, "apply", nil, ErrNotFound},
		{gone, "join", map[string]any{"Rejoin": true, "Node": map[string]any{"ID": "gone"}}, ErrNotFound},
		{gone, "renewCert", map[string]any{"NodeID": "gone"}, ErrNotFound},
	} {
		_, err := n.authorizeRPC(c.peer, c.method, body(c.args))
		if c.want == nil {
			require.NoError(t, err, "case %d: %s", i, c.method)
		} else {
			require.ErrorIs(t, err, c.want, "case %d: %s", i, c.method)
		}
	}
	// A removed node's agent is told it has no tasks, and nothing else.
	out, err := n.authorizeRPC(gone, "assignments", body(map[string]any{"NodeID": "gone", "First": true}))
	require.NoError(t, err)
	require.Equal(t, &assignReply{Index: removedIndex}, out)

	// Streams: managers only.
	require.NoError(t, n.admitStream(mgr, connRaft))
	require.NoError(t, n.admitStream(mgr, connLogs))
	require.NoError(t, n.admitStream(nil, connRPC))
	for _, p := range []*peerInfo{nil, wrk, demoted, gone} {
		require.Error(t, n.admitStream(p, connRaft))
		require.Error(t, n.admitStream(p, connLogs))
	}
	require.Error(t, n.admitStream(mgr, 'X'))
}

func TestFSMSecurityCommands(t *testing.T) {
	f := newFSM()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	k1, k2 := randomKey(), randomKey()
	cmds := []*command{
		{Type: cmdClusterInit, Time: t0, Cluster: &clusterRecord{ID: "c", Digest: "d", WorkerSecret: "w", ManagerSecret: "m",
			CertExpiry: time.Hour, GossipKeys: [][]byte{k1}}},
		{Type: cmdNodeUpsert, Time: t0, Node: &NodeInfo{ID: "a"}},
		{Type: cmdNodeUpsert, Time: t0, Node: &NodeInfo{ID: "b"}},
		{Type: cmdRotateToken, Time: t0, Sec: &securityCmd{Role: RoleWorker, Secret: randBase36(16, 25)}},
		{Type: cmdGossipKeys, Time: t0, Sec: &securityCmd{Keys: [][]byte{k1, k2}}},
		{Type: cmdNodeRemove, Time: t0, ID: "a"},
		{Type: cmdCAKey, Time: t0, Sec: &securityCmd{CAKey: []byte("sealed")}},
		// Two hours later: a's revocation has outlived its certificates.
		{Type: cmdNodeRemove, Time: t0.Add(2 * time.Hour), ID: "b"},
	}
	for i, c := range cmds {
		require.NoError(t, applyCmd(t, f, uint64(i+1), c), "command %d", i)
	}
	cl := f.st.cluster
	require.Equal(t, cmds[3].Sec.Secret, cl.WorkerSecret)
	require.Equal(t, "m", cl.ManagerSecret)
	require.Equal(t, [][]byte{k1, k2}, cl.GossipKeys)
	require.Equal(t, []byte("sealed"), cl.CAKey)
	require.Equal(t, map[string]time.Time{"b": t0.Add(2 * time.Hour)}, cl.Revoked)
	require.Equal(t, uint64(8), cl.SecVersion)

	// Bad commands change nothing.
	for _, c := range []*command{
		{Type: cmdRotateToken, Sec: &securityCmd{Role: "boss", Secret: randBase36(16, 25)}},
		{Type: cmdRotateToken, Sec: &securityCmd{Role: RoleWorker, Secret: "short"}},
		{Type: cmdGossipKeys, Sec: &securityCmd{Keys: [][]byte{[]byte("16 bytes of key!")}}},
		{Type: cmdGossipKeys, Sec: &securityCmd{}},
		{Type: cmdGossipKeys},
	} {
		require.Error(t, applyCmd(t, f, 100, c))
	}
	require.Same(t, cl, f.st.cluster)

	// The security state survives a snapshot.
	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	g := newFSM()
	require.NoError(t, g.Restore(sink))
	require.Equal(t, cl.GossipKeys, g.st.cluster.GossipKeys)
	require.Equal(t, cl.SecVersion, g.st.cluster.SecVersion)
	require.Len(t, g.st.cluster.Revoked, 1)
	require.True(t, g.st.cluster.Revoked["b"].Equal(cl.Revoked["b"]))
}
