//go:build !linux

package dns

import "errors"

// switchAndRun: network namespaces exist on Linux only.
func (ns NetNS) switchAndRun(func() error) (restored bool, err error) {
	return true, errors.New("network namespaces need Linux")
}
