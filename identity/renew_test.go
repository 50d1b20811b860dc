package identity_test

import (
	"crypto/x509"
	"math"
	"testing"
	"time"

	"github.com/shoal-project/shoal/identity"
)

func TestRenewAt(t *testing.T) {
	nb := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(100 * time.Hour)
	tests := []struct {
		jitter float64
		want   time.Time
	}{
		{0, nb.Add(50 * time.Hour)},
		{0.5, nb.Add(65 * time.Hour)},
		{-3, nb.Add(50 * time.Hour)},
		{math.NaN(), nb.Add(50 * time.Hour)},
	}
	for _, tt := range tests {
		if got := identity.RenewAt(nb, na, tt.jitter); !got.Equal(tt.want) {
			t.Errorf("RenewAt(jitter %v) = %v, want %v", tt.jitter, got, tt.want)
		}
	}
	lo, hi := nb.Add(50*time.Hour), nb.Add(80*time.Hour)
	for _, j := range []float64{0, 0.1, 0.25, 0.5, 0.75, 0.999999, math.Nextafter(1, 0), 1, 5, math.Inf(1)} {
		got := identity.RenewAt(nb, na, j)
		if got.Before(lo) || got.After(hi) {
			t.Errorf("RenewAt(jitter %v) = %v, outside [%v, %v]", j, got, lo, hi)
		}
	}
	// Monotonic in jitter.
	prev := identity.RenewAt(nb, na, 0)
	for j := 0.05; j < 1; j += 0.05 {
		cur := identity.RenewAt(nb, na, j)
		if cur.Before(prev) {
			t.Fatalf("RenewAt not monotonic at jitter %v", j)
		}
		prev = cur
	}
	if got := identity.RenewAt(na, nb, 0.5); !got.Equal(na) {
		t.Errorf("inverted lifetime: RenewAt = %v, want notBefore %v", got, na)
	}
	// A 90-day certificate: no overflow, right magnitude.
	long := identity.RenewAt(nb, nb.Add(90*24*time.Hour), 0)
	if want := nb.Add(45 * 24 * time.Hour); !long.Equal(want) {
		t.Errorf("90-day RenewAt = %v, want %v", long, want)
	}
}

func TestNeedsRenewal(t *testing.T) {
	nb := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(10 * time.Hour)}
	tests := []struct {
		now  time.Time
		want bool
	}{
		{nb, false},
		{nb.Add(5*time.Hour - time.Nanosecond), false},
		{nb.Add(5 * time.Hour), true},
		{nb.Add(11 * time.Hour), true},
	}
	for _, tt := range tests {
		if got := identity.NeedsRenewal(leaf, tt.now, 0); got != tt.want {
			t.Errorf("NeedsRenewal(at %v) = %v, want %v", tt.now.Sub(nb), got, tt.want)
		}
	}
	if identity.NeedsRenewal(leaf, nb.Add(6*time.Hour), 0.5) {
		t.Error("jitter 0.5 renews at 6.5h, not at 6h")
	}
	if !identity.NeedsRenewal(nil, nb, 0) {
		t.Error("nil certificate must need renewal")
	}
}
