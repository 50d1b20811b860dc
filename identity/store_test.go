package identity_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/identity"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	m := ca.material(t, workerID)
	dir := filepath.Join(t.TempDir(), "certs")

	if err := identity.Save(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.CertPEM, m.CertPEM) || !bytes.Equal(got.KeyPEM, m.KeyPEM) || !bytes.Equal(got.RootPEM, m.RootPEM) {
		t.Fatal("loaded material differs from saved material")
	}

	modes := map[string]fs.FileMode{
		identity.CertFile: 0o644,
		identity.KeyFile:  0o600,
		identity.RootFile: 0o644,
	}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", name, got, want)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode = %v (err %v), want 0700", fi.Mode().Perm(), err)
	}

	// Saving renewed material replaces the files and leaves nothing behind.
	renewed := ca.renew(t, m)
	if err := identity.Save(dir, renewed); err != nil {
		t.Fatal(err)
	}
	got, err = identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.CertPEM, renewed.CertPEM) || !bytes.Equal(got.KeyPEM, renewed.KeyPEM) {
		t.Fatal("renewed material not loaded")
	}
	assertOnlyFiles(t, dir)
}

func TestSaveRefusesInvalidMaterial(t *testing.T) {
	ca := newTestCA(t)
	good := ca.material(t, workerID)
	dir := t.TempDir()
	if err := identity.Save(dir, good); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.KeyPEM = ca.material(t, workerID).KeyPEM
	err := identity.Save(dir, bad)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want one naming %s", err, dir)
	}
	got, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.KeyPEM, good.KeyPEM) {
		t.Fatal("refused Save changed the stored key")
	}
	assertOnlyFiles(t, dir)
}

func TestLoadErrors(t *testing.T) {
	ca := newTestCA(t)
	m := ca.material(t, workerID)
	for _, name := range []string{identity.CertFile, identity.KeyFile, identity.RootFile} {
		t.Run("missing "+name, func(t *testing.T) {
			dir := t.TempDir()
			if err := identity.Save(dir, m); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			_, err := identity.Load(dir)
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want not-exist naming %s", err, path)
			}
		})
		t.Run("corrupt "+name, func(t *testing.T) {
			dir := t.TempDir()
			if err := identity.Save(dir, m); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte("not pem at all\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := identity.Load(dir)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no PEM block") {
				t.Fatalf("err = %v, want invalid-PEM error naming %s", err, path)
			}
		})
	}
	t.Run("truncated certificate", func(t *testing.T) {
		dir := t.TempDir()
		if err := identity.Save(dir, m); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, identity.CertFile)
		// Valid PEM armour around bytes that are not a certificate.
		bogus := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		if err := os.WriteFile(path, []byte(bogus), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := identity.Load(dir)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("err = %v, want one naming %s", err, path)
		}
	})
}

// assertOnlyFiles fails if dir holds anything but the three material files.
func assertOnlyFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "ca.crt,node.crt,node.key" {
		t.Fatalf("directory holds %v", names)
	}
}
