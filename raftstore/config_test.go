package raftstore

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	addr, trans := raft.NewInmemTransport("")
	defer trans.Close()

	cfg, err := Config{NodeID: "a", Transport: trans, Dir: t.TempDir()}.normalized()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != string(addr) || cfg.RetainSnapshots != DefaultRetainSnapshots || cfg.Logger == nil {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	rc, err := cfg.raftConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.HeartbeatTimeout != time.Second || rc.ElectionTimeout != time.Second ||
		rc.LeaderLeaseTimeout != 500*time.Millisecond || rc.CommitTimeout != 50*time.Millisecond {
		t.Fatalf("timing defaults = %v %v %v %v", rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, rc.CommitTimeout)
	}
	if rc.LocalID != "a" {
		t.Fatalf("LocalID = %q", rc.LocalID)
	}

	// A short heartbeat pulls the default lease down with it.
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	if rc, err = cfg.raftConfig(); err != nil {
		t.Fatal(err)
	}
	if rc.LeaderLeaseTimeout != 200*time.Millisecond || rc.ElectionTimeout != time.Second {
		t.Fatalf("derived lease/election = %v/%v", rc.LeaderLeaseTimeout, rc.ElectionTimeout)
	}
	// A long heartbeat pushes the default election timeout up.
	cfg.HeartbeatTimeout = 3 * time.Second
	if rc, err = cfg.raftConfig(); err != nil {
		t.Fatal(err)
	}
	if rc.ElectionTimeout != 3*time.Second {
		t.Fatalf("derived election = %v", rc.ElectionTimeout)
	}
	// Explicit values are validated as given.
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = time.Second
	if _, err := cfg.raftConfig(); err == nil {
		t.Fatal("lease longer than heartbeat accepted")
	}

	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no id", Config{Transport: trans, Dir: "x"}, "NodeID"},
		{"no transport", Config{NodeID: "a", Dir: "x"}, "Transport"},
		{"no dir", Config{NodeID: "a", Transport: trans}, "Dir"},
		{"negative retain", Config{NodeID: "a", Transport: trans, Dir: "x", RetainSnapshots: -1}, "RetainSnapshots"},
	}
	for _, tc := range bad {
		if _, err := Open(tc.cfg, &listSM{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open error = %v, want mention of %s", tc.name, err, tc.want)
		}
	}
	if _, err := Open(Config{NodeID: "a", Transport: trans, InMemory: true}, nil); err == nil {
		t.Error("Open accepted a nil state machine")
	}
}
