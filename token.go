package swarm

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"strings"
)

// newID returns a random 128-bit ID in base 36, 25 characters, as SwarmKit
// spells its object IDs.
func newID() string { return randBase36(16, 25) }

// randBase36 returns nbytes of randomness in base 36, left-padded to width.
func randBase36(nbytes, width int) string {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("swarm: crypto/rand failed: %v", err))
	}
	s := new(big.Int).SetBytes(b).Text(36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// Join tokens have Swarm's shape: SWMTKN-1-<digest>-<secret>. The digest
// (50 base-36 characters) is the SHA-256 of the swarm's root CA
// certificate (caDigest): a joining node accepts only a manager that
// presents that CA, before it sends the secret. The secret (25 base-36
// characters, 128 random bits) decides the role; RotateJoinToken replaces it.
const tokenPrefix = "SWMTKN-1-"

func formatToken(digest, secret string) string { return tokenPrefix + digest + "-" + secret }

// parseToken splits a token into digest and secret, or explains what is
// malformed.
func parseToken(tok string) (digest, secret string, err error) {
	if !strings.HasPrefix(tok, tokenPrefix) {
		return "", "", fmt.Errorf("%w: malformed token (want %s<digest>-<secret>)", ErrInvalidToken, tokenPrefix)
	}
	parts := strings.Split(strings.TrimPrefix(tok, tokenPrefix), "-")
	if len(parts) != 2 || len(parts[0]) != 50 || len(parts[1]) != 25 || !isBase36(parts[0]) || !isBase36(parts[1]) {
		return "", "", fmt.Errorf("%w: malformed token (want %s<50 base-36 digest>-<25 base-36 secret>)", ErrInvalidToken, tokenPrefix)
	}
	return parts[0], parts[1], nil
}

func isBase36(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

// roleForToken checks a token against the swarm's secrets.
func (c *clusterRecord) roleForToken(tok string) (Role, error) {
	digest, secret, err := parseToken(tok)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(digest), []byte(c.Digest)) != 1 {
		return "", fmt.Errorf("%w: the token is for a different swarm", ErrInvalidToken)
	}
	switch {
	case subtle.ConstantTimeCompare([]byte(secret), []byte(c.WorkerSecret)) == 1:
		return RoleWorker, nil
	case subtle.ConstantTimeCompare([]byte(secret), []byte(c.ManagerSecret)) == 1:
		return RoleManager, nil
	}
	return "", fmt.Errorf("%w: the token's secret is not valid for this swarm", ErrInvalidToken)
}

// RotateJoinToken replaces the secret of the join token for role and
// returns the new token (Swarm's `docker swarm join-token --rotate`): the
// old token no longer admits new nodes; nodes already in the swarm stay.
// It runs on any manager.
func (n *Node) RotateJoinToken(ctx context.Context, role Role) (string, error) {
	if err := role.valid(); err != nil {
		return "", err
	}
	if err := n.checkManager(); err != nil {
		return "", err
	}
	secret := randBase36(16, 25)
	if _, err := n.apply(ctx, &command{Type: cmdRotateToken, Sec: &securityCmd{Role: role, Secret: secret}}); err != nil {
		return "", err
	}
	var cl *clusterRecord
	n.fsm.read(func(s *state) { cl = s.cluster })
	if cl == nil {
		return "", fmt.Errorf("%w: the swarm's state has not replicated to this manager yet", ErrNoLeader)
	}
	n.log.Info("join token rotated", "role", role)
	return formatToken(cl.Digest, secret), nil
}
