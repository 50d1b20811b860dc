package raftstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotMagic starts every snapshot written by this package; the trailing
// digit is the header format version.
const snapshotMagic = "SHOALRS1"

const snapshotHeaderLen = len(snapshotMagic) + 8

// fsmSnapshot is a captured state machine snapshot waiting to be persisted.
type fsmSnapshot struct {
	index uint64 // last entry applied when the snapshot was captured
	write func(w io.Writer) error
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Persist writes the header and the state machine's data to sink. It may
// run concurrently with new applies.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	var hdr [snapshotHeaderLen]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint64(hdr[len(snapshotMagic):], s.index)
	if _, err := sink.Write(hdr[:]); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: write snapshot header: %w", err)
	}
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raftstore: finish snapshot: %w", err)
	}
	return nil
}

// Release is a no-op: the state machine's writer holds no resources that
// outlive it.
func (s *fsmSnapshot) Release() {}

// readSnapshotHeader consumes and checks the header written by Persist and
// returns the applied index it records.
func readSnapshotHeader(r io.Reader) (uint64, error) {
	var hdr [snapshotHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("raftstore: read snapshot header: %w", err)
	}
	if !bytes.Equal(hdr[:len(snapshotMagic)], []byte(snapshotMagic)) {
		return 0, fmt.Errorf("raftstore: snapshot has unknown format (header %q)", hdr[:len(snapshotMagic)])
	}
	return binary.BigEndian.Uint64(hdr[len(snapshotMagic):]), nil
}
