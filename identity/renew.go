package identity

import (
	"crypto/x509"
	"math"
	"time"
)

// Renewal happens between these fractions of a certificate's lifetime.
const (
	renewEarliest = 0.5
	renewLatest   = 0.8
)

// RenewAt returns when a certificate valid from notBefore to notAfter
// should be renewed: a point from 50 % to 80 % of its lifetime, both
// inclusive. jitter in [0, 1) picks the point linearly (0 gives 50 %);
// values below 0 or NaN act as 0 and values of 1 or more as 1. A
// certificate with no positive lifetime is due at notBefore.
func RenewAt(notBefore, notAfter time.Time, jitter float64) time.Time {
	lifetime := notAfter.Sub(notBefore)
	if lifetime <= 0 {
		return notBefore
	}
	switch {
	case math.IsNaN(jitter) || jitter < 0:
		jitter = 0
	case jitter > 1:
		jitter = 1
	}
	frac := renewEarliest + (renewLatest-renewEarliest)*jitter
	return notBefore.Add(time.Duration(float64(lifetime) * frac))
}

// NeedsRenewal reports whether leaf is due for renewal at now, using
// RenewAt with the given jitter. A nil certificate always needs renewal.
func NeedsRenewal(leaf *x509.Certificate, now time.Time, jitter float64) bool {
	if leaf == nil {
		return true
	}
	return !now.Before(RenewAt(leaf.NotBefore, leaf.NotAfter, jitter))
}
