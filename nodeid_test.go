package swarm

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// joinWith sends the leader a fresh join with a new key, asking for ID
// want, as a node that picks its own ID would.
func joinWith(t *testing.T, ctx context.Context, l *Node, token, want, addr string) (*joinReply, []byte, error) {
	t.Helper()
	key, err := newNodeKey()
	require.NoError(t, err)
	csr, err := newCSR(key, want)
	require.NoError(t, err)
	args := &joinArgs{Token: token, CSR: csr, Node: NodeInfo{ID: want, Hostname: "h", Addr: addr, Role: RoleWorker}}
	reply, err := l.handleJoin(ctx, args)
	return reply, csr, err
}

// The leader assigns node IDs: the ID a joining node asks for is ignored
// (two nodes asking for the same one, or for the leader's, get distinct
// new IDs and take nothing over), the certificate is issued for the
// assigned ID, and a join retried with the same key gets the same ID.
func TestLeaderAssignsNodeIDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := NewNode(DefaultLocalConfig())
	t.Cleanup(func() { l.Shutdown() })
	require.NoError(t, l.Init())
	token, err := l.JoinToken(RoleWorker)
	require.NoError(t, err)

	r1, _, err := joinWith(t, ctx, l, token, "my-chosen-id", "127.0.0.1:1")
	require.NoError(t, err)
	r2, _, err := joinWith(t, ctx, l, token, "my-chosen-id", "127.0.0.1:2")
	require.NoError(t, err)
	r3, _, err := joinWith(t, ctx, l, token, l.ID(), "127.0.0.1:3")
	require.NoError(t, err)
	ids := map[string]bool{r1.NodeID: true, r2.NodeID: true, r3.NodeID: true}
	require.Len(t, ids, 3, "distinct IDs")
	for _, r := range []*joinReply{r1, r2, r3} {
		require.NotEqual(t, "my-chosen-id", r.NodeID)
		require.NotEqual(t, l.ID(), r.NodeID)
		require.Len(t, r.NodeID, 25)
		cert, err := x509.ParseCertificate(r.Sec.Cert)
		require.NoError(t, err)
		require.Equal(t, r.NodeID, cert.Subject.CommonName, "the certificate names the assigned ID")
	}
	nodes, err := l.Nodes(ctx)
	require.NoError(t, err)
	byID := map[string]NodeInfo{}
	for _, nd := range nodes {
		byID[nd.ID] = nd
	}
	require.NotContains(t, byID, "my-chosen-id")
	require.Equal(t, RoleManager, byID[l.ID()].Role, "the leader's record was not taken over")
	require.Equal(t, l.Addr(), byID[l.ID()].Addr)

	// A retry of one join (same key, same address) after a lost reply
	// gets the same ID and makes no second record; the same key from
	// elsewhere is refused.
	key, err := newNodeKey()
	require.NoError(t, err)
	csr, err := newCSR(key, "")
	require.NoError(t, err)
	args := func(addr string) *joinArgs {
		return &joinArgs{Token: token, CSR: csr, Node: NodeInfo{Hostname: "h", Addr: addr, Role: RoleWorker}}
	}
	a1, err := l.handleJoin(ctx, args("127.0.0.1:4"))
	require.NoError(t, err)
	a2, err := l.handleJoin(ctx, args("127.0.0.1:4"))
	require.NoError(t, err)
	require.Equal(t, a1.NodeID, a2.NodeID)
	_, err = l.handleJoin(ctx, args("127.0.0.1:5"))
	require.ErrorIs(t, err, ErrNameConflict)
	nodes, err = l.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 5, "leader, three joins, one retried join")
}

// A node that joins takes the ID in the leader's reply, and keeps it
// across a restart from its DataDir.
func TestJoinedNodeKeepsAssignedID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := NewNode(DefaultLocalConfig())
	t.Cleanup(func() { l.Shutdown() })
	require.NoError(t, l.Init())
	for _, role := range []Role{RoleWorker, RoleManager} {
		token, err := l.JoinToken(role)
		require.NoError(t, err)
		cfg := DefaultLocalConfig()
		cfg.DataDir, cfg.JoinToken = t.TempDir(), token
		w := NewNode(cfg)
		require.NoError(t, w.Join(l.Addr()))
		id := w.ID()
		require.Len(t, id, 25)
		cert, err := x509.ParseCertificate(w.sec.get().cert.Certificate[0])
		require.NoError(t, err)
		require.Equal(t, id, cert.Subject.CommonName)
		ident, err := loadIdentity(cfg.DataDir)
		require.NoError(t, err)
		require.Equal(t, id, ident.NodeID, "the assigned ID is in DataDir")
		require.NoError(t, w.Shutdown())

		w2 := NewNode(cfg)
		require.NoError(t, w2.Join(l.Addr()))
		require.Equal(t, id, w2.ID(), "restart from DataDir keeps the ID")
		nodes, err := l.Nodes(ctx)
		require.NoError(t, err)
		n := 0
		for _, nd := range nodes {
			if nd.ID == id {
				n++
				require.Equal(t, role, nd.Role)
			}
		}
		require.Equal(t, 1, n)
		require.NoError(t, w2.Shutdown())
	}
}
