// Package archtest checks the repository's architecture: which packages
// may depend on which, and that every package documents what it owns. It
// has no code of its own and nothing imports it.
package archtest
