package swarm

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"
	"strings"
)

// Node IDs are assigned by the leader, as SwarmKit's CA does: a joining
// node asks with a certificate signing request only, and whatever ID it
// puts in its request is ignored. The ID is derived from the swarm's ID
// and the public key of the request, which the leader checked the node
// holds (the CSR is signed by it): no node can pick an ID, nor take one
// over, without the private key of the node that has it, and a join that
// is retried after its reply was lost (same key) gets the same ID instead
// of a second record. Every join makes a new key, so a node that joins
// again after it was removed gets a new ID. The node keeps the ID in its
// DataDir (node.json, and as the CommonName of its certificate) and
// presents it, proven by its certificate, when it resumes.

// assignedNodeID returns the ID of a node joining swarm clusterID with
// key pub: 25 base-36 digits of a hash, the shape of newID's IDs.
func assignedNodeID(clusterID string, pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("swarm: node key: %w", err)
	}
	h := sha256.New()
	h.Write([]byte("podswarm node ID\x00"))
	h.Write([]byte(clusterID))
	h.Write([]byte{0})
	h.Write(der)
	s := new(big.Int).SetBytes(h.Sum(nil)[:16]).Text(36)
	if len(s) < 25 {
		s = strings.Repeat("0", 25-len(s)) + s
	}
	return s, nil
}

// takeAssignedID makes id, which the leader assigned in its join reply,
// this node's ID before anything (the certificate check, Raft, gossip)
// uses it.
func (n *Node) takeAssignedID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: the manager's join reply assigned no node ID", ErrInvalidSpec)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.id = id
	if n.ident != nil {
		n.ident.NodeID = id
	}
	return nil
}
