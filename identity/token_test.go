package identity_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/shoal-project/shoal/identity"
)

const (
	// Known answers computed independently.
	digestOfEmpty  = "5oaq0bjhj6un82wg98mgigso5q7qlhc63je4gw7ivixqqhkd3p"
	secret0to15    = "000avh9he7dy896m08s18udxr"                          // bytes 0x00..0x0f
	secretAllOnes  = "f5lxx1zz5pnorynqglhzmsp33"                          // 16 bytes of 0xff
	digestTooLarge = "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtog" // 2^256
	secretTooLarge = "f5lxx1zz5pnorynqglhzmsp34"                          // 2^128
)

func TestCADigest(t *testing.T) {
	if got := identity.CADigest(nil); got != digestOfEmpty {
		t.Fatalf("CADigest(nil) = %q, want %q", got, digestOfEmpty)
	}
	d := identity.CADigest([]byte("shoal"))
	if len(d) != identity.DigestLen {
		t.Fatalf("digest length %d, want %d", len(d), identity.DigestLen)
	}
	if d != "3ehz0vy1rgir1h8uo2q69suaxdq9642xlts8ii6awu7y8a9e0c" {
		t.Fatalf("CADigest(shoal) = %q", d)
	}
}

func TestJoinTokenRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		random []byte
		secret string
	}{
		{"counting", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, secret0to15},
		{"zero", make([]byte, 16), strings.Repeat("0", 25)},
		{"max", bytes.Repeat([]byte{0xff}, 16), secretAllOnes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := identity.GenerateJoinToken(digestOfEmpty, bytes.NewReader(tt.random))
			if err != nil {
				t.Fatal(err)
			}
			want := "SHLTKN-1-" + digestOfEmpty + "-" + tt.secret
			if tok != want {
				t.Fatalf("token = %q, want %q", tok, want)
			}
			parsed, err := identity.ParseJoinToken(tok)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Digest != digestOfEmpty || parsed.Secret != tt.secret {
				t.Fatalf("parsed = %+v", parsed)
			}
		})
	}
}

func TestGenerateJoinTokenRandom(t *testing.T) {
	a, err := identity.GenerateJoinToken(digestOfEmpty, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.GenerateJoinToken(digestOfEmpty, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two generated tokens are equal")
	}
	if len(a) != len(identity.TokenPrefix)+identity.DigestLen+1+identity.SecretLen {
		t.Fatalf("token %q has length %d", a, len(a))
	}
}

func TestGenerateJoinTokenErrors(t *testing.T) {
	if _, err := identity.GenerateJoinToken("abc", nil); err == nil || !strings.Contains(err.Error(), `"abc"`) {
		t.Fatalf("bad digest: err = %v, want one naming the digest", err)
	}
	_, err := identity.GenerateJoinToken(digestOfEmpty, iotest.ErrReader(errors.New("entropy gone")))
	if err == nil || !strings.Contains(err.Error(), "entropy gone") {
		t.Fatalf("failing reader: err = %v", err)
	}
	if _, err := identity.GenerateJoinToken(digestOfEmpty, bytes.NewReader(make([]byte, 15))); err == nil {
		t.Fatal("short reader: want error")
	}
}

func TestParseJoinTokenMalformed(t *testing.T) {
	secret := "0s3cr3tpart000000000000zz"
	good := "SHLTKN-1-" + digestOfEmpty + "-" + secret
	if _, err := identity.ParseJoinToken(good); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}
	tests := []struct {
		name, token, want string
	}{
		{"empty", "", `invalid join token "": must start with SHLTKN-1-`},
		{"garbage", "abc", `invalid join token "abc": must start with SHLTKN-1-`},
		{"wrong prefix", "ABCTKN-1-" + digestOfEmpty + "-" + secret, "must start with SHLTKN-1-"},
		{"wrong version", "SHLTKN-2-" + digestOfEmpty + "-" + secret, "must start with SHLTKN-1-"},
		{"lowercase prefix", strings.ToLower(good), "must start with SHLTKN-1-"},
		{"three parts", "SHLTKN-1-" + digestOfEmpty, "must have 4 dash-separated parts, has 3"},
		{"five parts", good + "-extra", "must have 4 dash-separated parts, has 5"},
		{"trailing dash", good + "-", "must have 4 dash-separated parts, has 5"},
		{"short digest", "SHLTKN-1-abc-" + secret, "digest must be 50 lowercase base36 characters (has 3 characters)"},
		{"long digest", "SHLTKN-1-0" + digestOfEmpty + "-" + secret, "digest must be 50 lowercase base36 characters (has 51 characters)"},
		{"empty digest", "SHLTKN-1--" + secret, "digest must be 50 lowercase base36 characters (has 0 characters)"},
		{"uppercase digest", "SHLTKN-1-" + strings.ToUpper(digestOfEmpty) + "-" + secret, "digest must be 50 lowercase base36 characters (character 2 is not in 0-9a-z)"},
		{"digest overflow", "SHLTKN-1-" + digestTooLarge + "-" + secret, "digest must be 50 lowercase base36 characters (value exceeds 256 bits)"},
		{"short secret", "SHLTKN-1-" + digestOfEmpty + "-" + secret[:24], "secret must be 25 lowercase base36 characters (has 24 characters)"},
		{"long secret", good + "0", "secret must be 25 lowercase base36 characters (has 26 characters)"},
		{"bad secret char", "SHLTKN-1-" + digestOfEmpty + "-" + secret[:24] + "_", "secret must be 25 lowercase base36 characters (character 25 is not in 0-9a-z)"},
		{"secret overflow", "SHLTKN-1-" + digestOfEmpty + "-" + secretTooLarge, "secret must be 25 lowercase base36 characters (value exceeds 128 bits)"},
		{"whitespace", good + "\n", "secret must be 25 lowercase base36 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identity.ParseJoinToken(tt.token)
			if err == nil {
				t.Fatalf("ParseJoinToken(%q) succeeded", tt.token)
			}
			if !errors.Is(err, identity.ErrInvalidJoinToken) {
				t.Errorf("error %v does not wrap ErrInvalidJoinToken", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret[:20]) || strings.Contains(err.Error(), secretTooLarge) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestParseJoinTokenMasksSecretWithoutDashes(t *testing.T) {
	secret := "0s3cr3tpart000000000000zz"
	token := "SHLTKN_1_" + digestOfEmpty + "_" + secret
	_, err := identity.ParseJoinToken(token)
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), secret[:8]) {
		t.Fatalf("error %q reveals the secret", err)
	}
}

func TestTokensEqual(t *testing.T) {
	a, _ := identity.GenerateJoinToken(digestOfEmpty, bytes.NewReader(make([]byte, 16)))
	b, _ := identity.GenerateJoinToken(digestOfEmpty, bytes.NewReader(bytes.Repeat([]byte{1}, 16)))
	if !identity.TokensEqual(a, a) {
		t.Error("token not equal to itself")
	}
	if identity.TokensEqual(a, b) {
		t.Error("different tokens reported equal")
	}
	if identity.TokensEqual(a, a[:len(a)-1]) {
		t.Error("prefix reported equal")
	}
	if identity.TokensEqual(a, "") {
		t.Error("empty reported equal")
	}
}
