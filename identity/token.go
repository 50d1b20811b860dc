package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Join token layout: TokenPrefix, then the CA digest, a dash, and the
// secret. Both digest and secret are lowercase base36, zero-padded to a
// fixed width, so every valid token has the same length.
const (
	// TokenPrefix starts every join token; the "1" is the format version.
	TokenPrefix = "SHLTKN-1-"
	// DigestLen is the width of the base36 CA digest (SHA-256, 256 bits).
	DigestLen = 50
	// SecretLen is the width of the base36 secret (16 random bytes).
	SecretLen = 25

	digestBits  = 256
	secretBytes = 16
	secretBits  = secretBytes * 8
	tokenParts  = 4 // "SHLTKN", "1", digest, secret
)

// ErrInvalidJoinToken is wrapped by every error about a join token that is
// malformed or not accepted.
var ErrInvalidJoinToken = errors.New("invalid join token")

// JoinToken is a parsed join token. Secret is sensitive: do not log it.
type JoinToken struct {
	// Digest is CADigest of the root CA certificate the token belongs to.
	Digest string
	// Secret is the random part proving the holder may join.
	Secret string
}

// CADigest returns the SHA-256 of a DER certificate as lowercase base36,
// left-padded with '0' to DigestLen characters. It is the value pinned by
// join tokens.
func CADigest(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return encodeBase36(sum[:], DigestLen)
}

// GenerateJoinToken creates a new join token for the CA with the given
// digest, drawing 16 secret bytes from random (crypto/rand when nil).
func GenerateJoinToken(caDigest string, random io.Reader) (string, error) {
	if reason := checkBase36(caDigest, DigestLen, digestBits); reason != "" {
		return "", fmt.Errorf("CA digest %q must be %d lowercase base36 characters (%s)", caDigest, DigestLen, reason)
	}
	if random == nil {
		random = rand.Reader
	}
	var buf [secretBytes]byte
	if _, err := io.ReadFull(random, buf[:]); err != nil {
		return "", fmt.Errorf("read join token secret: %w", err)
	}
	return TokenPrefix + caDigest + "-" + encodeBase36(buf[:], SecretLen), nil
}

// ParseJoinToken splits a join token into digest and secret and checks the
// format. It does not trim whitespace. Errors wrap ErrInvalidJoinToken and
// never quote the secret.
func ParseJoinToken(s string) (JoinToken, error) {
	if !strings.HasPrefix(s, TokenPrefix) {
		return JoinToken{}, tokenError(s, "must start with "+TokenPrefix)
	}
	parts := strings.Split(s, "-")
	if len(parts) != tokenParts {
		return JoinToken{}, tokenError(s, fmt.Sprintf("must have %d dash-separated parts, has %d", tokenParts, len(parts)))
	}
	digest, secret := parts[2], parts[3]
	if reason := checkBase36(digest, DigestLen, digestBits); reason != "" {
		return JoinToken{}, tokenError(s, fmt.Sprintf("digest must be %d lowercase base36 characters (%s)", DigestLen, reason))
	}
	if reason := checkBase36(secret, SecretLen, secretBits); reason != "" {
		return JoinToken{}, tokenError(s, fmt.Sprintf("secret must be %d lowercase base36 characters (%s)", SecretLen, reason))
	}
	return JoinToken{Digest: digest, Secret: secret}, nil
}

// TokensEqual reports whether two tokens are identical, in time that does
// not depend on where they differ.
func TokensEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func tokenError(s, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidJoinToken, maskToken(s), reason)
}

// maxEcho bounds how much of a bad token an error message repeats.
const maxEcho = 80

// maskToken returns s in a form safe for error messages. Anything after
// the third dash-separated field, and always the last field, is replaced by
// asterisks, because that is where a secret sits. A string with no dash at
// all is cut short, in case it is a secret pasted with other separators.
func maskToken(s string) string {
	parts := strings.Split(s, "-")
	var out string
	if len(parts) == 1 {
		out = s
		if len(out) > 16 {
			out = out[:16] + "..."
		}
	} else {
		keep := min(len(parts)-1, tokenParts-1)
		out = strings.Join(parts[:keep], "-") + "-*****"
	}
	if len(out) > maxEcho {
		out = out[:maxEcho] + "..."
	}
	return out
}

// encodeBase36 renders b as a big-endian unsigned integer in lowercase
// base36, left-padded with '0' to width characters.
func encodeBase36(b []byte, width int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// checkBase36 returns "" when s is exactly width lowercase base36
// characters whose value fits in maxBits bits, and otherwise a short reason
// that does not quote s.
func checkBase36(s string, width, maxBits int) string {
	if len(s) != width {
		return fmt.Sprintf("has %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return fmt.Sprintf("character %d is not in 0-9a-z", i+1)
		}
	}
	v, ok := new(big.Int).SetString(s, 36)
	if !ok || v.BitLen() > maxBits {
		return fmt.Sprintf("value exceeds %d bits", maxBits)
	}
	return ""
}
