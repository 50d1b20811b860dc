//go:build race

package harness

// RaceEnabled reports whether the test binary was built with -race; pass it
// to BuildShoal to build the daemon the same way.
const RaceEnabled = true
