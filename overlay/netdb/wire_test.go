package netdb

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestEntryRoundTrip(t *testing.T) {
	v6 := ep("n", "e6", "node", 1)
	v6.IP = netip.MustParseAddr("fd00::5")
	noVIP := ep("n", "rr", "node", 2)
	noVIP.VIP = netip.Addr{}
	noVIP.Aliases = nil
	for _, r := range []record{
		{ep: ep("n", "e1", "node", 1), version: 1},
		{ep: v6, version: 1 << 60},
		{ep: noVIP, version: 3},
		{ep: ep("n", "e2", "node", 2), version: 9, deleted: true, ttl: 90 * time.Second},
	} {
		typ, body, err := splitMessage(encodeEntry(r))
		if err != nil || typ != msgEntry {
			t.Fatalf("header: %v %v", typ, err)
		}
		got, err := decodeRecord(body)
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := fullState{
		node: "a", clock: 42, networks: []string{"m", "n"},
		interests: []interestRec{{node: "a", version: 40, networks: []string{"m", "n"}}, {node: "b", version: 7}},
		records: []record{
			{ep: ep("n", "e1", "a", 1), version: 41},
			{ep: ep("m", "e2", "b", 2), version: 30, deleted: true, ttl: time.Minute},
		},
	}
	typ, body, err := splitMessage(encodeState(s))
	if err != nil || typ != msgState {
		t.Fatalf("header: %v %v", typ, err)
	}
	got, err := decodeState(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, s)
	}

	ns := netState{node: "b", clock: 9, network: "n", records: s.records[:1]}
	for _, typ := range []msgType{msgSyncRequest, msgSyncReply} {
		gotTyp, body, err := splitMessage(encodeNetState(typ, ns))
		if err != nil || gotTyp != typ {
			t.Fatalf("header: %v %v", gotTyp, err)
		}
		got, err := decodeNetState(body)
		if err != nil || !reflect.DeepEqual(got, ns) {
			t.Errorf("net state round trip: %+v, %v", got, err)
		}
	}
	ns = netState{node: "b", network: "n", notMember: true}
	_, body, _ = splitMessage(encodeNetState(msgSyncReply, ns))
	if got, err := decodeNetState(body); err != nil || !got.notMember {
		t.Errorf("not-member reply decoded as %+v, %v", got, err)
	}
}

func TestDecodeSkipsUnknownFields(t *testing.T) {
	// A newer node may add fields; this one must read the rest.
	r := record{ep: ep("n", "e1", "a", 1), version: 5}
	msg := encodeEntry(r)
	msg = protowire.AppendTag(msg, 99, protowire.BytesType)
	msg = protowire.AppendString(msg, "future")
	msg = protowire.AppendTag(msg, 100, protowire.Fixed64Type)
	msg = protowire.AppendFixed64(msg, 1)
	_, body, _ := splitMessage(msg)
	got, err := decodeRecord(body)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("decode with unknown fields: %+v, %v", got, err)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	good := encodeEntry(record{ep: ep("n", "e1", "a", 1), version: 5})
	if _, _, err := splitMessage(append([]byte{2}, good[1:]...)); !errors.Is(err, errWireVersion) {
		t.Errorf("another format version: %v, want errWireVersion", err)
	}
	if _, _, err := splitMessage(good[:1]); err == nil {
		t.Error("a one-byte message was accepted")
	}
	for i := 3; i < len(good); i++ {
		if _, err := decodeRecord(good[2:i]); err == nil {
			t.Errorf("entry truncated to %d bytes decoded without error", i)
		}
	}
	noOwner := ep("n", "e1", "", 1)
	_, body, _ := splitMessage(encodeEntry(record{ep: noOwner, version: 1}))
	if _, err := decodeRecord(body); err == nil {
		t.Error("an entry without an owner was accepted")
	}
	bad := appendMessage(nil, 1, appendBytes(nil, 4, []byte{1, 2, 3}))
	if _, err := decodeRecord(bad); err == nil {
		t.Error("a 3-byte IP was accepted")
	}
}

func TestBroadcastSizeLimit(t *testing.T) {
	e := ep("n", "e1", "a", 1)
	if n := len(encodeEntry(record{ep: e, version: 1 << 62})); n > maxBroadcast/2 {
		t.Errorf("a typical entry takes %d bytes; the limit of %d leaves too little room", n, maxBroadcast)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeEntry(record{ep: ep("n", "e1", "a", 1), version: 5}))
	f.Add(encodeInterest(interestRec{node: "a", version: 1, networks: []string{"n"}}))
	f.Add(encodeState(fullState{node: "a", networks: []string{"n"}, records: []record{{ep: ep("n", "e", "a", 1), version: 2}}}))
	f.Add(encodeNetState(msgSyncReply, netState{node: "a", network: "n"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := splitMessage(b)
		if err != nil {
			return
		}
		// None of these may panic, whatever the bytes.
		switch typ {
		case msgEntry:
			_, _ = decodeRecord(body)
		case msgInterest:
			_, _ = decodeInterest(body)
		case msgSyncRequest, msgSyncReply:
			_, _ = decodeNetState(body)
		case msgState:
			_, _ = decodeState(body)
		}
	})
}

func TestPortsRoundTrip(t *testing.T) {
	e := ep("ingress", "e1", "a", 1)
	e.Ports = []Port{{Protocol: 6, Published: 8080, Target: 80}, {Protocol: 17, Published: 5353, Target: 53}}
	r := record{ep: e, version: 7}
	_, body, err := splitMessage(encodeEntry(r))
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord(body)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip with ports: %+v, %v", got, err)
	}

	// The ports are appended as field 12 after everything a node of the
	// first release of format 1 reads, so such a node (which skips
	// unknown fields) sees the same endpoint without them.
	plain := e
	plain.Ports = nil
	withPorts, without := encodeEndpoint(e), encodeEndpoint(plain)
	if !bytes.HasPrefix(withPorts, without) {
		t.Fatalf("ports are not a suffix of the endpoint's encoding")
	}
	rest := withPorts[len(without):]
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != 12 || typ != protowire.BytesType {
			t.Fatalf("suffix holds field %d type %d, want only ports (12)", num, typ)
		}
		rest = rest[n:]
		_, n = protowire.ConsumeBytes(rest)
		rest = rest[n:]
	}

	bad := appendMessage(nil, 12, appendUint(nil, 2, 70000))
	if _, err := decodeEndpoint(bad); err == nil {
		t.Error("a published port of 70000 was accepted")
	}
}

func TestPublishRejectsZeroPorts(t *testing.T) {
	db, err := New(Config{NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.JoinNetwork("n"); err != nil {
		t.Fatal(err)
	}
	e := ep("n", "e1", "a", 1)
	e.Ports = []Port{{Protocol: 6, Published: 0, Target: 80}}
	if err := db.Publish(e); err == nil {
		t.Error("an endpoint with published port 0 was accepted")
	}
	e.Ports = []Port{{Protocol: 6, Published: 8080, Target: 80}}
	if err := db.Publish(e); err != nil {
		t.Fatal(err)
	}
	got, ok := db.Get("n", "e1")
	if !ok || !got.Equal(e) {
		t.Errorf("published endpoint reads back as %+v (%v)", got, ok)
	}
	// Equal and Clone cover the ports.
	c := got.Clone()
	c.Ports[0].Target = 81
	if got.Ports[0].Target != 80 || c.Equal(got) {
		t.Error("Clone shares the ports, or Equal ignores them")
	}
}
