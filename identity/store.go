package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File names inside a node's certificate directory.
const (
	CertFile = "node.crt"
	KeyFile  = "node.key"
	RootFile = "ca.crt"
)

const (
	certFileMode = 0o644
	keyFileMode  = 0o600
	dirMode      = 0o700
)

// Save writes m into dir (created with mode 0700 when missing) as
// node.crt, node.key (mode 0600) and ca.crt. m must Parse; nothing is
// written otherwise.
//
// Each file is written to a temporary file in dir, synced, and renamed over
// its final name; dir is synced afterwards. All three temporary files are
// complete before the first rename, which keeps the window in which a crash
// leaves a mix of old and new files small. Such a mix is detected by Parse
// (the key no longer matches the certificate), never used silently.
func Save(dir string, m Material) error {
	if _, err := m.Parse(); err != nil {
		return fmt.Errorf("save node material to %s: %w", dir, err)
	}
	created := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("save node material: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RootFile, m.RootPEM, certFileMode},
		{KeyFile, m.KeyPEM, keyFileMode},
		{CertFile, m.CertPEM, certFileMode},
	}
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			if t != "" {
				_ = os.Remove(t)
			}
		}
	}()
	for _, f := range files {
		tmp, err := writeTemp(dir, f.name, f.data, f.mode)
		if err != nil {
			return err
		}
		temps = append(temps, tmp)
	}
	for i, f := range files {
		final := filepath.Join(dir, f.name)
		if err := os.Rename(temps[i], final); err != nil {
			return fmt.Errorf("save %s: %w", final, err)
		}
		temps[i] = ""
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if created {
		return syncDir(filepath.Dir(filepath.Clean(dir)))
	}
	return nil
}

// writeTemp writes data to a new temporary file in dir with the given
// mode, syncs and closes it, and returns its path.
func writeTemp(dir, name string, data []byte, mode os.FileMode) (path string, err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("save %s: %w", filepath.Join(dir, name), err)
	}
	path = f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("save %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save %s: close: %w", path, err)
	}
	return path, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Load reads node.crt, node.key and ca.crt from dir. Each file must exist
// and hold valid PEM of the right kind; errors name the offending file. Load
// does not check that the files belong together; call Material.Parse for
// that.
func Load(dir string) (Material, error) {
	var m Material
	var err error
	if m.CertPEM, err = loadFile(dir, CertFile, "node certificate", checkCertPEM); err != nil {
		return Material{}, err
	}
	if m.KeyPEM, err = loadFile(dir, KeyFile, "node key", checkKeyPEM); err != nil {
		return Material{}, err
	}
	if m.RootPEM, err = loadFile(dir, RootFile, "root CA certificate", checkCertPEM); err != nil {
		return Material{}, err
	}
	return m, nil
}

func loadFile(dir, name, what string, check func([]byte) error) ([]byte, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError already names the file.
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	if err := check(data); err != nil {
		return nil, fmt.Errorf("load %s %s: %w", what, path, err)
	}
	return data, nil
}

func checkCertPEM(data []byte) error {
	_, err := ParseCertificatesPEM(data)
	return err
}

func checkKeyPEM(data []byte) error {
	_, err := ParsePrivateKeyPEM(data)
	return err
}
