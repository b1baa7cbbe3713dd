package swarm

import (
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

// Join tokens have Swarm's shape: SWMTKN-1-<digest>-<secret>, the digest
// (50 base-36 characters) identifying the swarm and the secret (25
// characters) deciding the role.
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
