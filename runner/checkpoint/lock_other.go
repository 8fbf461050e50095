//go:build !unix

package checkpoint

import "errors"

// Lock is unsupported on this system.
type Lock struct{}

// Acquire fails: job locking needs flock.
func Acquire(path string) (*Lock, error) {
	return nil, errors.New("job locking is not supported on this system")
}

// Release does nothing.
func (l *Lock) Release() error { return nil }
