package swarm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// The swarm's PKI, as Swarm's: a root CA created at Init (ECDSA P-256,
// self-signed, 20 years) whose certificate and key live in the replicated
// state, the key sealed with the swarm's data-encryption key (keys.go); one
// certificate per node, CN = node ID, OU = role, O = cluster ID, issued by
// the leader from a CSR (at join, at renewal, after a role change). Every
// TCP connection between nodes is TLS 1.3 with certificates of that CA
// (transport.go); the join token pins the CA by its digest.

const (
	certOUManager = "swarm-manager"
	certOUWorker  = "swarm-worker"
	caCommonName  = "swarm-ca"
	caValidity    = 20 * 365 * 24 * time.Hour
	// DefaultCertExpiry is the default lifetime of node certificates (Swarm's).
	DefaultCertExpiry = 90 * 24 * time.Hour
	// minCertExpiry is the shortest Config.CertExpiry accepted (tests).
	minCertExpiry = time.Second
)

func roleOU(r Role) string {
	if r == RoleManager {
		return certOUManager
	}
	return certOUWorker
}

func ouRole(ou []string) Role {
	if len(ou) != 1 {
		return ""
	}
	switch ou[0] {
	case certOUManager:
		return RoleManager
	case certOUWorker:
		return RoleWorker
	}
	return ""
}

// caDigest is the digest of the root CA certificate as join tokens carry
// it: the SHA-256 of its DER bytes in base 36, 50 characters.
func caDigest(der []byte) string {
	sum := sha256.Sum256(der)
	s := new(big.Int).SetBytes(sum[:]).Text(36)
	return strings.Repeat("0", 50-len(s)) + s
}

func randSerial() *big.Int {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("swarm: crypto/rand failed: %v", err))
	}
	return new(big.Int).SetBytes(b)
}

// newRootCA creates the swarm's root CA.
func newRootCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// issueNodeCert signs a node certificate for pub. NotBefore is backdated a
// little (a twentieth of the lifetime, at most a minute) for clock skew.
func issueNodeCert(ca *x509.Certificate, caKey crypto.Signer, pub crypto.PublicKey, nodeID, clusterID string, role Role, now time.Time, expiry time.Duration) ([]byte, error) {
	ou := roleOU(role)
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject: pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{ou},
			Organization: []string{clusterID}},
		// As Swarm: the role and the node ID as names, for tools that
		// verify by name; podswarm itself verifies by CA and subject.
		DNSNames:              []string{ou, nodeID},
		NotBefore:             now.Add(-min(time.Minute, expiry/20)),
		NotAfter:              now.Add(expiry),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
}

func newNodeKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// newCSR makes the certificate signing request a node sends at join and
// renewal. The issuer ignores its subject and sets its own.
func newCSR(key *ecdsa.PrivateKey, nodeID string) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: nodeID}}, key)
}

// csrPublicKey checks a CSR's signature and returns its P-256 public key.
func csrPublicKey(der []byte) (*ecdsa.PublicKey, error) {
	if len(der) == 0 {
		return nil, invalidf("the request carries no certificate signing request")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, invalidf("certificate signing request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalidf("certificate signing request: %v", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, invalidf("certificate signing request: want an ECDSA P-256 key")
	}
	return pub, nil
}

func caKeyAAD(clusterID string) string { return "podswarm root CA key " + clusterID }

// sealCAKey seals the CA's private key (PKCS#8) with the swarm's
// data-encryption key (keys.go), so the Raft log and snapshots never hold
// it in the clear and autolock covers it with the rest.
func sealCAKey(dek []byte, key *ecdsa.PrivateKey, clusterID string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return seal(dek, der, caKeyAAD(clusterID))
}

func openCAKey(dek, sealed []byte, clusterID string) (*ecdsa.PrivateKey, error) {
	der, err := unseal(dek, sealed, caKeyAAD(clusterID))
	if err != nil {
		return nil, fmt.Errorf("swarm: cannot open the root CA key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("swarm: root CA key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("swarm: root CA key is not ECDSA")
	}
	return ek, nil
}

// nodeCreds are a node's TLS credentials: the swarm's CA, the node's
// certificate and key, and on managers the sealed CA key.
type nodeCreds struct {
	ca     *x509.Certificate
	pool   *x509.CertPool
	digest string
	leaf   *x509.Certificate
	key    *ecdsa.PrivateKey
	cert   tls.Certificate // the leaf and the CA, so joiners can pin it
	// caKeySealed (managers only) is the CA key sealed with the data key,
	// as the state holds it: kept so that a manager can reissue its own
	// expired certificate at startup.
	caKeySealed []byte
}

// newCreds checks that leafDER is a node certificate of the CA caDER for
// key, and returns the credentials.
func newCreds(caDER, leafDER []byte, key *ecdsa.PrivateKey) (*nodeCreds, error) {
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("swarm: root CA certificate: %w", err)
	}
	if !ca.IsCA || ca.CheckSignatureFrom(ca) != nil {
		return nil, errors.New("swarm: the root CA certificate is not a self-signed CA")
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, fmt.Errorf("swarm: node certificate: %w", err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("swarm: the node certificate is not signed by the swarm's CA: %w", err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("swarm: the node certificate is not for the node's key")
	}
	if ouRole(leaf.Subject.OrganizationalUnit) == "" || len(leaf.Subject.Organization) != 1 {
		return nil, errors.New("swarm: the node certificate names no role or swarm")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &nodeCreds{
		ca: ca, pool: pool, digest: caDigest(ca.Raw), leaf: leaf, key: key,
		cert: tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: key, Leaf: leaf},
	}, nil
}

func (c *nodeCreds) role() Role        { return ouRole(c.leaf.Subject.OrganizationalUnit) }
func (c *nodeCreds) clusterID() string { return c.leaf.Subject.Organization[0] }

// nodeSecurity is a node's security state: its credentials, TLS session
// cache, gossip keyring and (on workers) the removed nodes as the
// managers last told it. Its own lock; never held across I/O.
type nodeSecurity struct {
	mu       sync.RWMutex
	creds    *nodeCreds
	sessions tls.ClientSessionCache
	// caKey is the opened CA key (on the leader), cached with the sealed
	// bytes it came from.
	caKey       *ecdsa.PrivateKey
	caKeySealed []byte
	// keyring is the gossip keyring installed on this node.
	keyring *gossipKeyring
	// revoked and secVersion: the swarm's removed nodes as of secVersion
	// (workers learn them from the managers; managers read their state).
	revoked    map[string]bool
	secVersion uint64

	// mlKeyring is gossip's live keyring (nil before gossip starts).
	mlKeyring *memberlist.Keyring
	// adoptMu serialises adoptSecState; renewMu serialises renewals, so
	// certificates are installed in the order they were asked for (the
	// later request sees the newer role).
	adoptMu sync.Mutex
	renewMu sync.Mutex

	// certWake asks certLoop to renew now (after a role change).
	certWake chan struct{}
	// rotateMu serialises RotateGossipKey on this node.
	rotateMu sync.Mutex
}

func (s *nodeSecurity) get() *nodeCreds {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.creds
}

// setCreds installs new credentials with a fresh session cache (a resumed
// session would present the old certificate).
func (s *nodeSecurity) setCreds(c *nodeCreds) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds = c
	s.sessions = tls.NewLRUClientSessionCache(64)
	if c.role() != RoleManager {
		s.caKey, s.caKeySealed = nil, nil
	}
}

// peerInfo is who is at the other end of a connection, from its verified
// certificate. nil means the peer presented none (a node joining).
type peerInfo struct {
	ID, ClusterID string
	Role          Role
	NotAfter      time.Time
}

func peerFromCert(c *x509.Certificate) *peerInfo {
	p := &peerInfo{ID: c.Subject.CommonName, Role: ouRole(c.Subject.OrganizationalUnit), NotAfter: c.NotAfter}
	if len(c.Subject.Organization) == 1 {
		p.ClusterID = c.Subject.Organization[0]
	}
	return p
}

var (
	errNoCredentials = errors.New("swarm: this node has no certificate yet")
	// errPinMismatch: the manager's CA is not the one the token names.
	errPinMismatch = errors.New("the manager does not present the certificate authority the join token names")
	// errPeerNotManager: the server's certificate is not a manager's.
	errPeerNotManager = errors.New("the peer's certificate is not a manager's")
)

// verifyPeer checks a peer's certificate chain against the swarm's CA for
// the given use and returns the peer. Removal and role are checked by the
// caller: they depend on what the peer asks.
func verifyPeer(c *nodeCreds, certs []*x509.Certificate, usage x509.ExtKeyUsage) (*peerInfo, error) {
	if c == nil {
		return nil, errNoCredentials
	}
	if len(certs) == 0 {
		return nil, errors.New("swarm: the peer presented no certificate")
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("swarm: the peer's certificate is not valid for this swarm: %w", err)
	}
	p := peerFromCert(leaf)
	if p.ID == "" || p.Role == "" || p.ClusterID != c.clusterID() {
		return nil, fmt.Errorf("swarm: the peer's certificate is for swarm %q, not %q", p.ClusterID, c.clusterID())
	}
	return p, nil
}

// serverTLSConfig is the control listener's TLS: TLS 1.3, the node's
// current certificate, and a client certificate verified against the CA
// when one is given. A client without one may only join (authorizeRPC).
func (n *Node) serverTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := n.sec.get()
			if c == nil {
				return nil, errNoCredentials
			}
			return &c.cert, nil
		},
		// VerifyConnection runs on resumed sessions too, so a resumed
		// session is held to the same rules (expiry included).
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			_, err := verifyPeer(n.sec.get(), cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
			return err
		},
	}
}

// clientTLSConfig is the TLS of a connection this node opens to another
// node of its swarm: its certificate, and the server's checked against the
// CA; RPC and Raft must reach a manager that was not removed.
func (n *Node) clientTLSConfig(kind byte) (*tls.Config, error) {
	n.sec.mu.RLock()
	c, sessions := n.sec.creds, n.sec.sessions
	n.sec.mu.RUnlock()
	if c == nil {
		return nil, errNoCredentials
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Verified below: certificates name nodes, not addresses.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &c.cert, nil
		},
		ClientSessionCache: sessions,
		VerifyConnection: func(cs tls.ConnectionState) error {
			p, err := verifyPeer(c, cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if kind != connLogs && p.Role != RoleManager {
				return fmt.Errorf("%w (node %s)", errPeerNotManager, p.ID)
			}
			if n.isRevoked(p.ID) {
				return fmt.Errorf("swarm: node %s was removed from the swarm", p.ID)
			}
			return nil
		},
	}, nil
}

// pinnedTLSConfig is the TLS of a join: the server must present a chain
// to a CA whose digest is pin (from the join token) and a manager
// certificate of that CA, checked before a byte of the request (the
// token's secret) is sent. No trust on first use.
func pinnedTLSConfig(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, against the pinned CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			certs := cs.PeerCertificates
			if len(certs) < 2 {
				return errPinMismatch
			}
			var ca *x509.Certificate
			for _, c := range certs[1:] {
				if caDigest(c.Raw) == pin && c.IsCA && c.CheckSignatureFrom(c) == nil {
					ca = c
					break
				}
			}
			if ca == nil {
				return errPinMismatch
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("%w: %v", errPinMismatch, err)
			}
			if peerFromCert(certs[0]).Role != RoleManager {
				return errPeerNotManager
			}
			return nil
		},
	}
}

// joinDialError turns a failed pinned handshake into the error Join reports.
func joinDialError(addr string, err error) error {
	switch {
	case errors.Is(err, errPinMismatch):
		return fmt.Errorf("%w: %s: %v", ErrInvalidToken, addr, err)
	case errors.Is(err, errPeerNotManager):
		return fmt.Errorf("%w: %s: the node there is not a manager", ErrNotManager, addr)
	}
	return fmt.Errorf("%w: %s: %v", errUnreachable, addr, err)
}

// securityBundle is what a node receives when a certificate is issued to
// it (join, rejoin, renewal): its certificate, the CA, the gossip keyring,
// the removed nodes, and for a manager the sealed CA key (it opens with the
// data key managers get from keys.go). It only travels over TLS.
type securityBundle struct {
	Cert []byte // DER
	CA   []byte // DER
	// CAKey is the CA key sealed with the data key, as the state holds it
	// (managers only).
	CAKey []byte `json:",omitempty"`
	// Keyring and Revoked as of Version (securityState).
	State secState
	// GossipPeers are gossip addresses a joining node joins gossip at.
	GossipPeers []string `json:",omitempty"`
}

// certArgs asks for a certificate for the calling node (renewCert).
type certArgs struct {
	NodeID    string
	CSR       []byte
	Forwarded bool
}

// dispatchSecurity serves the security RPCs (called by dispatch for
// methods it does not know).
func (n *Node) dispatchSecurity(ctx context.Context, method string, body []byte) (any, error) {
	switch method {
	case "renewCert":
		a, err := decodeArgs[certArgs](body)
		if err != nil {
			return nil, err
		}
		return n.handleRenewCert(ctx, a)
	case "secState":
		a, err := decodeArgs[secStateArgs](body)
		if err != nil {
			return nil, err
		}
		return n.handleSecState(ctx, a)
	}
	return nil, invalidf("unknown method %q", method)
}

// handleRenewCert issues a node a new certificate for its current role (on
// the leader; other managers forward).
func (n *Node) handleRenewCert(ctx context.Context, a *certArgs) (*securityBundle, error) {
	fwd := *a // the caller's args stay as they were
	var reply securityBundle
	if handled, err := n.forwardUnlessLeader(ctx, "renewCert", &fwd.Forwarded, &fwd, &reply); handled {
		if err != nil {
			return nil, err
		}
		return &reply, nil
	}
	pub, err := csrPublicKey(a.CSR)
	if err != nil {
		return nil, err
	}
	role, _ := n.recordRole(a.NodeID)
	if role == "" {
		if n.isRevoked(a.NodeID) {
			return nil, removedErr(a.NodeID)
		}
		return nil, notFoundf("node", a.NodeID)
	}
	return n.issueBundle(ctx, a.NodeID, role, pub)
}

// leaderCAKey opens the CA key from the state with the data key.
func (n *Node) leaderCAKey(ctx context.Context, cl *clusterRecord) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca, err := x509.ParseCertificate(cl.CACert)
	if err != nil {
		return nil, nil, fmt.Errorf("swarm: root CA certificate in the state: %w", err)
	}
	n.sec.mu.RLock()
	key, sealed := n.sec.caKey, n.sec.caKeySealed
	n.sec.mu.RUnlock()
	if key != nil && string(sealed) == string(cl.CAKey) {
		// (Right after Init both are empty: the key is only in memory
		// until the data key exists to seal it.)
		return ca, key, nil
	}
	if len(cl.CAKey) == 0 {
		return nil, nil, fmt.Errorf("%w: the swarm's CA key is not in this manager's state yet", ErrNoLeader)
	}
	dek, err := n.dataKey(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("swarm: cannot open the CA key: %w", err)
	}
	key, err = openCAKey(dek, cl.CAKey, cl.ID)
	if err != nil {
		return nil, nil, err
	}
	n.sec.mu.Lock()
	n.sec.caKey, n.sec.caKeySealed = key, cl.CAKey
	n.sec.mu.Unlock()
	return ca, key, nil
}

// issueBundle signs a certificate for a node (on the leader) and bundles
// what the node needs with it.
func (n *Node) issueBundle(ctx context.Context, nodeID string, role Role, pub *ecdsa.PublicKey) (*securityBundle, error) {
	var cl *clusterRecord
	n.fsm.read(func(s *state) { cl = s.cluster })
	if cl == nil || len(cl.CACert) == 0 {
		return nil, fmt.Errorf("%w: the swarm's CA is not in this manager's state yet", ErrNoLeader)
	}
	ca, key, err := n.leaderCAKey(ctx, cl)
	if err != nil {
		return nil, err
	}
	expiry := cl.CertExpiry
	if expiry <= 0 {
		expiry = DefaultCertExpiry
	}
	der, err := issueNodeCert(ca, key, pub, nodeID, cl.ID, role, time.Now(), expiry)
	if err != nil {
		return nil, fmt.Errorf("swarm: issue certificate: %w", err)
	}
	b := &securityBundle{Cert: der, CA: cl.CACert, State: *secStateOf(cl), GossipPeers: n.gossipPeers()}
	if role == RoleManager {
		b.CAKey = cl.CAKey
	}
	n.log.Debug("issued node certificate", "node", nodeID, "role", role, "expires", time.Now().Add(expiry))
	return b, nil
}

// adoptBundle installs the credentials of a bundle issued for key: the
// certificate (which must be for this node and, when pin is set, of the CA
// the join token names), the sealed CA key on a manager, the gossip
// keyring and the removed nodes. It saves them in DataDir.
func (n *Node) adoptBundle(b *securityBundle, key *ecdsa.PrivateKey, pin string) error {
	if b == nil || len(b.Cert) == 0 {
		return errors.New("swarm: the manager sent no certificate")
	}
	c, err := newCreds(b.CA, b.Cert, key)
	if err != nil {
		return err
	}
	if pin != "" && c.digest != pin {
		return fmt.Errorf("%w: the swarm's CA is not the one the token names", ErrInvalidToken)
	}
	if old := n.sec.get(); old != nil && old.digest != c.digest {
		return errors.New("swarm: the manager presented a certificate of another CA")
	}
	if c.leaf.Subject.CommonName != n.ID() {
		return fmt.Errorf("swarm: the manager issued a certificate for node %s, not %s", c.leaf.Subject.CommonName, n.ID())
	}
	if cid := n.clusterIDRef(); cid != "" && c.clusterID() != cid {
		return fmt.Errorf("swarm: the manager issued a certificate for swarm %s, not %s", c.clusterID(), cid)
	}
	if c.role() == RoleManager {
		c.caKeySealed = b.CAKey
	}
	n.installCreds(c)
	if err := saveCreds(n.cfg.DataDir, c); err != nil {
		return err
	}
	n.adoptSecState(&b.State)
	return nil
}

// installCreds makes c the node's credentials. Pooled connections made
// with the old certificate are retired (new calls dial afresh; calls in
// flight finish); peers close them when the old certificate expires.
func (n *Node) installCreds(c *nodeCreds) {
	n.sec.setCreds(c)
	if tr := n.trRef(); tr != nil {
		tr.retireClients()
	}
}

func (n *Node) trRef() *transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tr
}

// renewCert gets a new certificate (new key) for the node's current role
// from the leader.
func (n *Node) renewCert(ctx context.Context) error {
	n.sec.renewMu.Lock()
	defer n.sec.renewMu.Unlock()
	key, err := newNodeKey()
	if err != nil {
		return err
	}
	csr, err := newCSR(key, n.ID())
	if err != nil {
		return err
	}
	args := &certArgs{NodeID: n.ID(), CSR: csr}
	var b *securityBundle
	if n.IsLeader() {
		b, err = n.handleRenewCert(ctx, args)
	} else {
		b = &securityBundle{}
		err = n.callManagers(ctx, "renewCert", args, b)
	}
	if err != nil {
		return fmt.Errorf("swarm: renew the node certificate: %w", err)
	}
	if err := n.adoptBundle(b, key, ""); err != nil {
		return err
	}
	c := n.sec.get()
	n.log.Debug("node certificate renewed", "role", c.role(), "expires", c.leaf.NotAfter)
	return nil
}

// wakeCert asks certLoop to renew the certificate now.
func (n *Node) wakeCert() {
	select {
	case n.sec.certWake <- struct{}{}:
	default:
	}
}

// renewAt picks the renewal time of a certificate: a random point between
// 50% and 80% of its lifetime, as Swarm does, so the nodes of a swarm
// do not all renew at once.
func renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	f := 0.5 + 0.3*mrand.Float64()
	return leaf.NotBefore.Add(time.Duration(f * float64(life)))
}

// certLoop renews the node's certificate until Shutdown: on schedule, and
// at once when asked (wakeCert, after a demotion; a promotion renews
// before it starts Raft).
func (n *Node) certLoop() {
	defer n.wg.Done()
	retry := time.Duration(0)
	for {
		c := n.sec.get()
		var wait time.Duration
		switch {
		case c == nil:
			wait = roleCheckInterval
		case retry > 0:
			wait = retry
		default:
			wait = time.Until(renewAt(c.leaf))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-n.shutdownCh:
			t.Stop()
			return
		case <-n.sec.certWake:
		case <-t.C:
		}
		t.Stop()
		if c == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(n.baseCtx, n.cfg.RPCTimeout)
		err := n.renewCert(ctx)
		cancel()
		if err == nil {
			retry = 0
			continue
		}
		if n.isStopped() {
			return
		}
		// Retry soon, but well within what is left of the lifetime.
		life := c.leaf.NotAfter.Sub(c.leaf.NotBefore)
		retry = min(max(retry*2, 50*time.Millisecond), max(life/20, 50*time.Millisecond), 30*time.Second)
		n.log.Warn("certificate renewal failed, retrying", "in", retry, "error", err)
	}
}

// startSecurity starts the loops that renew the certificate and follow
// the gossip keyring and removals.
func (n *Node) startSecurity() {
	n.wg.Add(2)
	go n.certLoop()
	go n.secLoop()
}

// initSecurity creates the swarm's CA and gossip key and this first
// manager's certificate (Init). It returns the cluster record's security
// fields. The CA key stays in memory until sealInitCAKey.
func (n *Node) initSecurity(nodeID, clusterID string) (*clusterRecord, error) {
	now := time.Now()
	ca, caKey, err := newRootCA(now)
	if err != nil {
		return nil, fmt.Errorf("swarm: create root CA: %w", err)
	}
	key, err := newNodeKey()
	if err != nil {
		return nil, err
	}
	expiry := n.cfg.CertExpiry
	if expiry <= 0 {
		expiry = DefaultCertExpiry
	}
	der, err := issueNodeCert(ca, caKey, &key.PublicKey, nodeID, clusterID, RoleManager, now, expiry)
	if err != nil {
		return nil, err
	}
	c, err := newCreds(ca.Raw, der, key)
	if err != nil {
		return nil, err
	}
	n.installCreds(c)
	n.sec.mu.Lock()
	n.sec.caKey, n.sec.caKeySealed = caKey, nil
	n.sec.mu.Unlock()
	if err := saveCreds(n.cfg.DataDir, c); err != nil {
		return nil, err
	}
	kr := &gossipKeyring{Keys: [][]byte{randomKey()}}
	if err := n.setKeyring(kr); err != nil {
		return nil, err
	}
	return &clusterRecord{
		Digest: c.digest, CACert: ca.Raw, CertExpiry: expiry,
		GossipKeys: kr.Keys,
	}, nil
}

// sealInitCAKey seals the new swarm's CA key with the data key once that
// exists (Init, after initKeys) and replicates it.
func (n *Node) sealInitCAKey(ctx context.Context) error {
	n.sec.mu.RLock()
	caKey := n.sec.caKey
	n.sec.mu.RUnlock()
	if caKey == nil {
		return errors.New("swarm: the new CA key is gone")
	}
	dek, err := n.dataKey(ctx)
	if err != nil {
		return err
	}
	sealed, err := sealCAKey(dek, caKey, n.clusterIDRef())
	if err != nil {
		return err
	}
	if _, err := n.apply(ctx, &command{Type: cmdCAKey, Sec: &securityCmd{CAKey: sealed}}); err != nil {
		return err
	}
	n.sec.mu.Lock()
	n.sec.caKeySealed = sealed
	c := *n.sec.creds
	c.caKeySealed = sealed
	n.sec.creds = &c
	n.sec.mu.Unlock()
	return saveCreds(n.cfg.DataDir, &c)
}

// loadSecurity reads the credentials and keyring from DataDir (resume).
// A manager whose certificate has expired (the swarm was down longer than
// a certificate's lifetime) issues itself a new one with the CA key it
// keeps (sealed with the data key, loaded before); a worker's must be valid.
func (n *Node) loadSecurity(ident *identity) error {
	c, err := loadCreds(n.cfg.DataDir)
	if err != nil {
		return err
	}
	if c.leaf.Subject.CommonName != ident.NodeID || c.clusterID() != ident.ClusterID {
		return fmt.Errorf("swarm: the certificate in %s is not this node's", n.cfg.DataDir)
	}
	now := time.Now()
	if now.After(c.leaf.NotAfter) || now.Before(c.leaf.NotBefore) {
		dek := n.localDataKey()
		if ident.Role != RoleManager || dek == nil || len(c.caKeySealed) == 0 {
			return fmt.Errorf("%w: the node's certificate expired at %s; clear DataDir %s and join again",
				ErrInvalidToken, c.leaf.NotAfter.Format(time.RFC3339), n.cfg.DataDir)
		}
		caKey, err := openCAKey(dek, c.caKeySealed, ident.ClusterID)
		if err != nil {
			return err
		}
		key, err := newNodeKey()
		if err != nil {
			return err
		}
		life := c.leaf.NotAfter.Sub(c.leaf.NotBefore)
		der, err := issueNodeCert(c.ca, caKey, &key.PublicKey, ident.NodeID, ident.ClusterID, RoleManager, now, life)
		if err != nil {
			return err
		}
		old := c
		if c, err = newCreds(old.ca.Raw, der, key); err != nil {
			return err
		}
		c.caKeySealed = old.caKeySealed
		if err := saveCreds(n.cfg.DataDir, c); err != nil {
			return err
		}
		n.log.Info("node certificate had expired; reissued with the swarm's CA", "expires", c.leaf.NotAfter)
	}
	n.installCreds(c)
	st, err := loadSecState(n.cfg.DataDir)
	if err != nil {
		return err
	}
	n.sec.mu.Lock()
	n.sec.keyring = &gossipKeyring{Keys: st.Keyring.Keys, Version: st.Version}
	n.sec.secVersion = st.Version
	n.sec.revoked = map[string]bool{}
	for _, id := range st.Revoked {
		n.sec.revoked[id] = true
	}
	n.sec.mu.Unlock()
	return nil
}

// localDataKey is the data key this manager holds (nil if none).
func (n *Node) localDataKey() []byte {
	n.keys.mu.Lock()
	defer n.keys.mu.Unlock()
	return n.keys.dek
}

// TLSInfo describes a node's place in the swarm's PKI (Swarm's `docker
// info` shows the same).
type TLSInfo struct {
	// TrustRoot is the swarm's root CA certificate, PEM-encoded.
	TrustRoot []byte
	// CADigest is the CA's digest as join tokens carry it.
	CADigest string
	// Certificate is the node's certificate, PEM-encoded.
	Certificate []byte
	// NodeID, ClusterID and Role are what the certificate says.
	NodeID, ClusterID string
	Role              Role
	// SerialNumber is the certificate's serial number (hexadecimal).
	SerialNumber string
	// NotBefore and NotAfter bound the certificate's validity.
	NotBefore, NotAfter time.Time
}

// TLSInfo returns the node's certificate and the swarm's CA. It fails with
// ErrNotInSwarm before Init or Join.
func (n *Node) TLSInfo() (TLSInfo, error) {
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	if stopped {
		return TLSInfo{}, ErrShutdown
	}
	c := n.sec.get()
	if c == nil {
		return TLSInfo{}, ErrNotInSwarm
	}
	return TLSInfo{
		TrustRoot:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.ca.Raw}),
		CADigest:     c.digest,
		Certificate:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.leaf.Raw}),
		NodeID:       c.leaf.Subject.CommonName,
		ClusterID:    c.clusterID(),
		Role:         c.role(),
		SerialNumber: c.leaf.SerialNumber.Text(16),
		NotBefore:    c.leaf.NotBefore,
		NotAfter:     c.leaf.NotAfter,
	}, nil
}
