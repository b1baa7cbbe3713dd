package swarm_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podswarm/swarm"
	"github.com/podswarm/swarm/swarmtest"
	"github.com/stretchr/testify/require"
)

// Security tests: pinned join tokens, mutual TLS on the control port,
// certificates (renewal, role changes, removal), encrypted and labelled
// gossip. Helpers that reach inside a node are in tls_test.go.

// tlsDial opens a TLS 1.3 connection to a control port as an outsider
// would (cert nil: no client certificate) and sends the kind byte.
func tlsDial(t *testing.T, addr string, kind byte, cert *tls.Certificate) net.Conn {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.Dial("tcp", addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write([]byte{kind})
	require.NoError(t, err)
	return c
}

// gotNothing asserts that the server sends nothing and closes the connection.
func gotNothing(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	require.Empty(t, b, msg)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: the connection stayed open", msg)
}

func joinErr(t *testing.T, addr, token string) error {
	cfg := swarm.DefaultLocalConfig()
	cfg.Hostname = "intruder"
	cfg.JoinToken = token
	n := swarm.NewNode(cfg)
	defer n.Shutdown()
	return n.Join(addr)
}

// The join token names the swarm's CA: its digest is the CA's, and a
// joining node refuses a manager that cannot prove that CA before it
// sends the token's secret (no trust on first use).
func TestJoinTokenPinsTheCA(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	leader := c.Leader()
	tok, err := leader.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	info, err := leader.TLSInfo()
	require.NoError(t, err)
	require.Equal(t, "SWMTKN-1-"+info.CADigest, tok[:59], "the token's digest is the root CA's")
	ca := parsePEMCert(t, info.TrustRoot)
	require.True(t, ca.IsCA)
	require.Equal(t, "swarm-ca", ca.Subject.CommonName)
	require.Equal(t, ecdsaP256, keyKind(ca))
	require.Greater(t, ca.NotAfter.Sub(ca.NotBefore), 19*365*24*time.Hour)

	// A wrong digest with the right secret is refused at once.
	wrongDigest := "SWMTKN-1-" + stringsRepeat("1", 50) + tok[59:]
	require.ErrorIs(t, joinErr(t, leader.Addr(), wrongDigest), swarm.ErrInvalidToken)
	// So is the right digest with a wrong secret.
	require.ErrorIs(t, joinErr(t, leader.Addr(), tok[:len(tok)-1]+otherChar(tok[len(tok)-1])), swarm.ErrInvalidToken)

	// A man in the middle that presents another CA, or the swarm's CA
	// certificate (public) with a certificate it signed itself, never
	// sees the secret.
	other := newTestCA(t)
	for name, chain := range map[string][][]byte{
		"another CA":                  {other.issue(t, "m", "swarm-manager").Raw, other.cert.Raw},
		"the swarm's CA, forged leaf": {other.issue(t, "m", "swarm-manager").Raw, ca.Raw},
	} {
		var got atomic.Int64
		addr := fakeManager(t, other, chain, &got)
		err := joinErr(t, addr, tok)
		require.ErrorIs(t, err, swarm.ErrInvalidToken, name)
		time.Sleep(100 * time.Millisecond)
		require.Zero(t, got.Load(), "%s: the impostor received %d bytes", name, got.Load())
	}
	nodes, err := leader.Nodes(ctxT(t))
	require.NoError(t, err)
	require.Len(t, nodes, 1, "no intruder was admitted")
}

// RotateJoinToken makes the old token useless for new joins; nodes that
// joined with it stay.
func TestRotateJoinToken(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	oldW, err := leader.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	oldM, err := leader.JoinToken(swarm.RoleManager)
	require.NoError(t, err)

	newW, err := leader.RotateJoinToken(ctx, swarm.RoleWorker)
	require.NoError(t, err)
	require.NotEqual(t, oldW, newW)
	require.Equal(t, oldW[:59], newW[:59], "same swarm, same digest")
	got, err := leader.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	require.Equal(t, newW, got)
	mt, err := leader.JoinToken(swarm.RoleManager)
	require.NoError(t, err)
	require.Equal(t, oldM, mt, "the manager token is untouched")

	require.ErrorIs(t, joinErr(t, leader.Addr(), oldW), swarm.ErrInvalidToken)
	i := c.AddNode(swarm.RoleWorker) // joins with the new token
	require.NotEmpty(t, c.Node(i).ID())

	newM, err := leader.RotateJoinToken(ctx, swarm.RoleManager)
	require.NoError(t, err)
	require.NotEqual(t, oldM, newM)
	require.ErrorIs(t, joinErr(t, leader.Addr(), oldM), swarm.ErrInvalidToken)
	_, err = leader.RotateJoinToken(ctx, "boss")
	require.ErrorIs(t, err, swarm.ErrInvalidSpec)
	_, err = c.Node(1).RotateJoinToken(ctx, swarm.RoleWorker)
	require.ErrorIs(t, err, swarm.ErrNotManager)

	// The worker that joined with the old token is still in and runs tasks.
	w := c.Node(1)
	_, err = leader.CreateService(ctx, swarm.ServiceSpec{Name: "g", Image: "nginx", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, leader.WaitConverged(ctx, "g"))
	require.Equal(t, swarm.NodeReady, stateOf(leader, w.ID()))
	require.Equal(t, 1, running(t, leader, "g")[w.ID()])
}

// Nothing but a node of the swarm gets anything from a control port: not
// a plain TCP client, not a TLS client without a certificate of the
// swarm (which may only try to join), not an older TLS version.
func TestControlPortRefusesStrangers(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	leader := c.Leader()
	addr := leader.Addr()

	// Plain TCP, speaking the protocol of old (a kind byte, then RPC).
	for _, garbage := range [][]byte{
		append([]byte("C"), bytes.Repeat([]byte("x"), 100)...),
		[]byte("R\x00\x00\x00\x01"),
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	} {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = conn.Write(garbage)
		require.NoError(t, err)
		gotNothing(t, conn, "plain TCP "+string(garbage[:1]))
		conn.Close()
	}

	// TLS below 1.3.
	_, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	require.Error(t, err)

	// TLS without a certificate: every method but join is refused...
	for _, m := range []string{"apply", "readIndex", "addVoter", "nodeMgmt", "assignments", "status", "leave",
		"renewCert", "secState", "dataKey", "nope"} {
		err := swarm.RawCall(tlsDial(t, addr, 'C', nil), m, map[string]any{"NodeID": c.Node(1).ID()}, nil)
		require.ErrorIs(t, err, swarm.ErrPermissionDenied, m)
	}
	// ... and join wants a valid token.
	err = swarm.RawCall(tlsDial(t, addr, 'C', nil), "join", map[string]any{"Token": "SWMTKN-1-" + stringsRepeat("a", 50) + "-" + stringsRepeat("b", 25), "Node": map[string]any{"ID": "x"}}, nil)
	require.ErrorIs(t, err, swarm.ErrInvalidToken)
	// Raft and log streams: nothing.
	gotNothing(t, tlsDial(t, addr, 'R', nil), "raft without a certificate")
	gotNothing(t, tlsDial(t, addr, 'L', nil), "logs without a certificate")

	// A certificate of another swarm fails the handshake.
	o := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	foreign := swarm.NodeTLSCertificate(o.Node(0))
	fc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{foreign}})
	if err == nil {
		fc.Write([]byte{'C'})
		gotNothing(t, fc, "a certificate of another swarm")
		fc.Close()
	}
	// A self-signed certificate that names the swarm's node: same.
	self := newTestCA(t)
	fake := tls.Certificate{Certificate: [][]byte{self.issue(t, leader.ID(), "swarm-manager").Raw}, PrivateKey: self.lastKey}
	fc, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{fake}})
	if err == nil {
		fc.Write([]byte{'C'})
		gotNothing(t, fc, "a forged certificate")
		fc.Close()
	}
	// The worker's control port is no different.
	gotNothing(t, tlsDial(t, c.Node(1).Addr(), 'L', nil), "worker logs without a certificate")
}

// A worker's certificate opens worker endpoints, about itself, and no
// manager-only ones.
func TestWorkerCertificateRefusedOnManagerEndpoints(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 2})
	leader := c.Leader()
	w, other := c.Node(1), c.Node(2)
	info, err := w.TLSInfo()
	require.NoError(t, err)
	require.Equal(t, swarm.RoleWorker, info.Role)
	require.Equal(t, w.ID(), info.NodeID)
	cert := swarm.NodeTLSCertificate(w)
	addr := leader.Addr()

	for _, m := range []string{"apply", "readIndex", "addVoter", "dataKey"} {
		err := swarm.RawCall(tlsDial(t, addr, 'C', &cert), m, map[string]any{"NodeID": w.ID()}, nil)
		require.ErrorIs(t, err, swarm.ErrPermissionDenied, m)
	}
	err = swarm.RawCall(tlsDial(t, addr, 'C', &cert), "nodeMgmt", map[string]any{"Op": "update", "Ref": w.ID(), "Update": map[string]any{"Role": "manager"}}, nil)
	require.ErrorIs(t, err, swarm.ErrPermissionDenied, "a worker cannot promote itself")
	err = swarm.RawCall(tlsDial(t, addr, 'C', &cert), "join", map[string]any{"Forwarded": true}, nil)
	require.ErrorIs(t, err, swarm.ErrPermissionDenied, "a worker cannot forward joins")
	err = swarm.RawCall(tlsDial(t, addr, 'C', &cert), "assignments", map[string]any{"NodeID": other.ID(), "First": true}, nil)
	require.ErrorIs(t, err, swarm.ErrPermissionDenied, "another node's tasks")
	err = swarm.RawCall(tlsDial(t, addr, 'C', &cert), "status", map[string]any{"NodeID": other.ID()}, nil)
	require.ErrorIs(t, err, swarm.ErrPermissionDenied, "another node's task status")
	// Its own business is fine.
	var rec map[string]any
	require.NoError(t, swarm.RawCall(tlsDial(t, addr, 'C', &cert), "nodeMgmt", map[string]any{"Op": "record", "Ref": w.ID()}, &rec))
	require.Equal(t, "worker", rec["Role"])
	require.NoError(t, swarm.RawCall(tlsDial(t, addr, 'C', &cert), "assignments", map[string]any{"NodeID": w.ID(), "First": true}, nil))
	// Raft and log streams are for managers.
	gotNothing(t, tlsDial(t, addr, 'R', &cert), "raft with a worker certificate")
	gotNothing(t, tlsDial(t, addr, 'L', &cert), "logs with a worker certificate")
	gotNothing(t, tlsDial(t, other.Addr(), 'L', &cert), "a worker reading another worker's logs")
}

// A removed node's certificate is refused: it cannot rejoin from its
// DataDir nor use its old certificate, and its open connections close.
func TestRemovedNodeCannotReconnect(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1})
	ctx := ctxT(t)
	leader := c.Leader()
	cfg := swarm.DefaultLocalConfig()
	cfg.Hostname = "doomed"
	cfg.DataDir = t.TempDir()
	tok, err := leader.JoinToken(swarm.RoleWorker)
	require.NoError(t, err)
	cfg.JoinToken = tok
	w := swarm.NewNode(cfg)
	require.NoError(t, w.Join(leader.Addr()))
	id := w.ID()
	cert := swarm.NodeTLSCertificate(w)
	w.Shutdown()
	require.Eventually(t, func() bool { return stateOf(leader, id) == swarm.NodeDown }, waitFor, 10*time.Millisecond)
	require.NoError(t, leader.RemoveNode(ctx, id, false))

	// Restarting from its DataDir fails.
	again := swarm.NewNode(cfg)
	err = again.Join(leader.Addr())
	require.ErrorIs(t, err, swarm.ErrNotFound)
	require.Contains(t, err.Error(), "removed")

	// Its old certificate opens nothing.
	for _, m := range []string{"renewCert", "secState", "status", "leave"} {
		err := swarm.RawCall(tlsDial(t, leader.Addr(), 'C', &cert), m, map[string]any{"NodeID": id}, nil)
		require.ErrorIs(t, err, swarm.ErrNotFound, m)
	}
	var reply struct {
		Tasks []any
		IDs   []string
	}
	require.NoError(t, swarm.RawCall(tlsDial(t, leader.Addr(), 'C', &cert), "assignments", map[string]any{"NodeID": id, "First": true}, &reply))
	require.Empty(t, reply.IDs, "a removed node is only told it has no tasks")

	// A running node removed with force loses its connections at once and
	// cannot open new ones.
	i := c.AddNode(swarm.RoleWorker)
	w2 := c.Node(i)
	cert2 := swarm.NodeTLSCertificate(w2)
	open := tlsDial(t, leader.Addr(), 'C', &cert2)
	var rec map[string]any
	rc := swarm.NewRawClient(open)
	require.NoError(t, rc.Call("nodeMgmt", map[string]any{"Op": "record", "Ref": w2.ID()}, &rec))
	require.NoError(t, leader.RemoveNode(ctx, w2.ID(), true))
	err = rc.Call("nodeMgmt", map[string]any{"Op": "record", "Ref": w2.ID()}, &rec)
	require.Error(t, err, "the removed node's open connection is closed")
	require.NotErrorIs(t, err, swarm.ErrNotFound, "closed, not answered")
	err = swarm.RawCall(tlsDial(t, leader.Addr(), 'C', &cert2), "nodeMgmt", map[string]any{"Op": "record", "Ref": w2.ID()}, nil)
	require.ErrorIs(t, err, swarm.ErrNotFound)
}

// Certificates renew at 50-80% of their lifetime, on every node, and the
// swarm keeps working across many lifetimes.
func TestCertificateRenewal(t *testing.T) {
	const life = 3 * time.Second
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 1, Config: func(_ string, cfg *swarm.Config) {
		cfg.CertExpiry = life
	}})
	ctx := ctxT(t)
	first := map[int]swarm.TLSInfo{}
	for i := range c.Nodes() {
		info, err := c.Node(i).TLSInfo()
		require.NoError(t, err)
		// Certificate times have whole seconds.
		require.InDelta(t, float64(life), float64(info.NotAfter.Sub(info.NotBefore)), float64(1200*time.Millisecond))
		first[i] = info
	}
	// Each node renews again and again, long before expiry.
	renewals := map[int]map[string]bool{}
	deadline := time.Now().Add(4 * life)
	for time.Now().Before(deadline) {
		for i := range c.Nodes() {
			info, err := c.Node(i).TLSInfo()
			require.NoError(t, err)
			require.True(t, time.Now().Before(info.NotAfter), "node %d runs on an expired certificate", i)
			if renewals[i] == nil {
				renewals[i] = map[string]bool{}
			}
			renewals[i][info.SerialNumber] = true
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range c.Nodes() {
		require.GreaterOrEqual(t, len(renewals[i]), 4, "node %d renewed %d times", i, len(renewals[i])-1)
		info, _ := c.Node(i).TLSInfo()
		require.Equal(t, first[i].Role, info.Role)
		require.Equal(t, first[i].TrustRoot, info.TrustRoot, "same CA")
	}
	// The swarm still works: writes from a follower, tasks on the worker.
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if !m.IsLeader() {
			follower = m
		}
	}
	_, err := follower.CreateService(ctx, swarm.ServiceSpec{Name: "g", Image: "nginx", Mode: swarm.Global()})
	require.NoError(t, err)
	require.NoError(t, follower.WaitConverged(ctx, "g"))
	nodes, err := c.Leader().Nodes(ctx)
	require.NoError(t, err)
	for _, nd := range nodes {
		require.Equal(t, swarm.NodeReady, nd.State, nd.Hostname)
	}
}

// A role change reissues the node's certificate with the new role.
func TestRoleChangeReissuesCertificate(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx := ctxT(t)
	leader, w := c.Leader(), c.Node(1)
	before, err := w.TLSInfo()
	require.NoError(t, err)
	require.Equal(t, swarm.RoleWorker, before.Role)
	require.NoError(t, leader.PromoteNode(ctx, w.ID()))
	require.Eventually(t, func() bool {
		info, err := w.TLSInfo()
		return err == nil && info.Role == swarm.RoleManager && w.Role() == swarm.RoleManager
	}, waitFor, 10*time.Millisecond)
	require.Eventually(t, hasVoters(leader, 2), waitFor, 10*time.Millisecond)
	require.NoError(t, leader.DemoteNode(ctx, w.ID()))
	require.Eventually(t, func() bool {
		info, err := w.TLSInfo()
		return err == nil && info.Role == swarm.RoleWorker && w.Role() == swarm.RoleWorker
	}, waitFor, 10*time.Millisecond)
	after, _ := w.TLSInfo()
	require.NotEqual(t, before.SerialNumber, after.SerialNumber)
}

// Gossip is encrypted and labelled with the cluster ID: two swarms on one
// host never see each other's members, even when told to join.
func TestTwoSwarmsDoNotMixGossip(t *testing.T) {
	a := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	b := swarmtest.NewCluster(t, swarmtest.Options{Managers: 1, Workers: 1})
	for _, n := range []*swarm.Node{a.Node(0), b.Node(0)} {
		keys := swarm.GossipKeys(n)
		require.Len(t, keys, 1)
		require.Len(t, keys[0], 32, "AES-256")
	}
	require.NotEqual(t, swarm.GossipKeys(a.Node(0)), swarm.GossipKeys(b.Node(0)))
	_, err := swarm.GossipJoin(b.Node(0), swarm.GossipAddr(a.Node(0)))
	require.Error(t, err)
	_, err = swarm.GossipJoin(a.Node(1), swarm.GossipAddr(b.Node(1)))
	require.Error(t, err)
	time.Sleep(500 * time.Millisecond)
	for _, cl := range []*swarmtest.Cluster{a, b} {
		ids := map[string]bool{cl.Node(0).ID(): true, cl.Node(1).ID(): true}
		for _, n := range cl.Nodes() {
			members := swarm.GossipMembers(n)
			require.Len(t, members, 2)
			for _, m := range members {
				require.True(t, ids[m], "member %s of another swarm", m)
			}
		}
	}
}

// RotateGossipKey replaces the key on every node without losing a member,
// and a node restarted afterwards comes back with the new key.
func TestRotateGossipKey(t *testing.T) {
	c := swarmtest.NewCluster(t, swarmtest.Options{Managers: 3, Workers: 2, Persistent: true})
	ctx := ctxT(t)
	old := swarm.GossipKeys(c.Node(0))[0]
	var follower *swarm.Node
	for _, m := range c.Managers() {
		if !m.IsLeader() {
			follower = m
		}
	}
	require.NoError(t, follower.RotateGossipKey(ctx))
	var key []byte
	for i, n := range c.Nodes() {
		keys := swarm.GossipKeys(n)
		require.Len(t, keys, 1, "node %d", i)
		require.NotEqual(t, old, keys[0])
		if key == nil {
			key = keys[0]
		}
		require.Equal(t, key, keys[0], "node %d", i)
	}
	time.Sleep(time.Second)
	for i, n := range c.Nodes() {
		require.Len(t, swarm.GossipMembers(n), 5, "node %d lost members", i)
	}
	nodes, err := c.Leader().Nodes(ctx)
	require.NoError(t, err)
	for _, nd := range nodes {
		require.Equal(t, swarm.NodeReady, nd.State, nd.Hostname)
	}
	// Restarts come back with the new key: a worker and a manager.
	for _, i := range []int{4, 1} {
		c.Crash(i)
		n := c.Restart(i)
		require.Equal(t, [][]byte{key}, swarm.GossipKeys(n))
	}
	c.WaitReady()
	require.NoError(t, c.Leader().RotateGossipKey(ctx), "again")
	require.ErrorIs(t, c.Node(4).RotateGossipKey(ctx), swarm.ErrNotManager)
}

// ---- helpers

type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	lastKey *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarm-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, cn, ou string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca.lastKey = key
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{ou}, Organization: []string{"x"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// fakeManager serves TLS with the given chain (its leaf's key is the CA's
// last issued) and counts the application bytes it receives.
func fakeManager(t *testing.T, ca *testCA, chain [][]byte, got *atomic.Int64) string {
	t.Helper()
	cert := tls.Certificate{Certificate: chain, PrivateKey: ca.lastKey}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
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
				n, _ := io.Copy(io.Discard, c)
				got.Add(n)
			}()
		}
	}()
	return ln.Addr().String()
}

func parsePEMCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c
}

const ecdsaP256 = "ECDSA P-256"

func keyKind(c *x509.Certificate) string {
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
		return ecdsaP256
	}
	return "other"
}
