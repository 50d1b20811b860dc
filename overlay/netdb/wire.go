package netdb

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Every message is [wireVersion][msgType][protobuf body]. A node drops
// messages of another format version; within a version, fields are added
// with new numbers and unknown fields are skipped, as protobuf does. The
// bodies, in .proto terms:
//
//	message Endpoint {
//	  string network_id = 1;  string endpoint_id = 2;  string node_id = 3;
//	  bytes ip = 4;  bytes mac = 5;  bytes vtep = 6;   // addresses: 4 or 16 bytes
//	  string service_id = 7;  string service_name = 8;  string task_name = 9;
//	  repeated string aliases = 10;  bytes vip = 11;
//	  repeated Port ports = 12;   // added within format version 1: older
//	}                             // nodes skip it, as every unknown field
//	message Port { uint32 protocol = 1;  uint32 published = 2;  uint32 target = 3; }
//	message Entry {            // msgEntry
//	  Endpoint endpoint = 1;  uint64 version = 2;  bool deleted = 3;
//	  uint64 ttl_ms = 4;       // tombstones: milliseconds left before it is dropped
//	}
//	message Interest {         // msgInterest: the networks node_id has joined
//	  string node_id = 1;  uint64 version = 2;  repeated string networks = 3;
//	}
//	message NetworkState {     // msgSyncRequest, msgSyncReply: one network's entries
//	  string node_id = 1;  uint64 clock = 2;  string network_id = 3;
//	  repeated Entry entries = 4;
//	  bool not_member = 5;     // reply from a node that has not joined network_id
//	}
//	message State {            // msgState: memberlist push/pull
//	  string node_id = 1;  uint64 clock = 2;  repeated string networks = 3;
//	  repeated Interest interests = 4;  repeated Entry entries = 5;
//	}
const wireVersion = 1

type msgType byte

const (
	msgEntry       msgType = 1
	msgInterest    msgType = 2
	msgSyncRequest msgType = 3
	msgSyncReply   msgType = 4
	msgState       msgType = 5
)

// maxBroadcast bounds a gossiped entry so it fits in one memberlist UDP
// packet with room for encryption and framing.
const maxBroadcast = 1024

// record is one replicated write: an endpoint value or a tombstone.
type record struct {
	ep      Endpoint
	version uint64
	deleted bool
	// ttl is what is left of a tombstone's life.
	ttl time.Duration
}

// interestRec lists the networks a node has joined, versioned by that node.
type interestRec struct {
	node     string
	version  uint64
	networks []string
}

// netState is one node's copy of one network.
type netState struct {
	node      string
	clock     uint64
	network   string
	records   []record
	notMember bool
}

// fullState is one node's copy of every network it has joined.
type fullState struct {
	node      string
	clock     uint64
	networks  []string
	interests []interestRec
	records   []record
}

var errWireVersion = errors.New("unsupported netdb message version")

func header(t msgType) []byte { return []byte{wireVersion, byte(t)} }

// splitMessage checks the header and returns the type and the body.
func splitMessage(buf []byte) (msgType, []byte, error) {
	if len(buf) < 2 {
		return 0, nil, errors.New("short netdb message")
	}
	if buf[0] != wireVersion {
		return 0, nil, fmt.Errorf("%w %d", errWireVersion, buf[0])
	}
	return msgType(buf[1]), buf[2:], nil
}

func encodeEntry(r record) []byte { return appendRecord(header(msgEntry), r) }

func encodeInterest(in interestRec) []byte { return appendInterest(header(msgInterest), in) }

func encodeNetState(t msgType, s netState) []byte {
	b := header(t)
	b = appendString(b, 1, s.node)
	b = appendUint(b, 2, s.clock)
	b = appendString(b, 3, s.network)
	for _, r := range s.records {
		b = appendMessage(b, 4, appendRecord(nil, r))
	}
	return appendBool(b, 5, s.notMember)
}

func encodeState(s fullState) []byte {
	b := header(msgState)
	b = appendString(b, 1, s.node)
	b = appendUint(b, 2, s.clock)
	for _, n := range s.networks {
		b = appendString(b, 3, n)
	}
	for _, in := range s.interests {
		b = appendMessage(b, 4, appendInterest(nil, in))
	}
	for _, r := range s.records {
		b = appendMessage(b, 5, appendRecord(nil, r))
	}
	return b
}

// encodeEndpoint is also the tie-breaker between equal versions, so it
// must be deterministic.
func encodeEndpoint(e Endpoint) []byte { return appendEndpoint(nil, e) }

func appendEndpoint(b []byte, e Endpoint) []byte {
	b = appendString(b, 1, e.NetworkID)
	b = appendString(b, 2, e.EndpointID)
	b = appendString(b, 3, e.NodeID)
	b = appendAddr(b, 4, e.IP)
	b = appendBytes(b, 5, e.MAC)
	b = appendAddr(b, 6, e.VTEP)
	b = appendString(b, 7, e.ServiceID)
	b = appendString(b, 8, e.ServiceName)
	b = appendString(b, 9, e.TaskName)
	for _, a := range e.Aliases {
		b = protowire.AppendTag(b, 10, protowire.BytesType)
		b = protowire.AppendString(b, a)
	}
	b = appendAddr(b, 11, e.VIP)
	for _, p := range e.Ports {
		pb := appendUint(nil, 1, uint64(p.Protocol))
		pb = appendUint(pb, 2, uint64(p.Published))
		pb = appendUint(pb, 3, uint64(p.Target))
		b = appendMessage(b, 12, pb)
	}
	return b
}

func appendRecord(b []byte, r record) []byte {
	b = appendMessage(b, 1, appendEndpoint(nil, r.ep))
	b = appendUint(b, 2, r.version)
	b = appendBool(b, 3, r.deleted)
	if r.deleted {
		b = appendUint(b, 4, uint64(max(r.ttl.Milliseconds(), 1)))
	}
	return b
}

func appendInterest(b []byte, in interestRec) []byte {
	b = appendString(b, 1, in.node)
	b = appendUint(b, 2, in.version)
	for _, n := range in.networks {
		b = appendString(b, 3, n)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendAddr(b []byte, num protowire.Number, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	return appendBytes(b, num, a.AsSlice())
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return appendUint(b, num, 1)
}

func appendMessage(b []byte, num protowire.Number, body []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, body)
}

// field is one decoded protobuf field: its number and either a varint or
// a length-delimited value.
type field struct {
	num   protowire.Number
	u     uint64
	bytes []byte
}

// walk calls fn for every varint and length-delimited field of b and
// skips fields of other wire types.
func walk(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				b = b[n:]
				continue
			}
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func decodeAddr(f field) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(f.bytes)
	if !ok {
		return netip.Addr{}, fmt.Errorf("field %d: address of %d bytes", f.num, len(f.bytes))
	}
	return a.Unmap(), nil
}

func decodeEndpoint(b []byte) (Endpoint, error) {
	var e Endpoint
	err := walk(b, func(f field) (err error) {
		switch f.num {
		case 1:
			e.NetworkID = string(f.bytes)
		case 2:
			e.EndpointID = string(f.bytes)
		case 3:
			e.NodeID = string(f.bytes)
		case 4:
			e.IP, err = decodeAddr(f)
		case 5:
			e.MAC = append([]byte(nil), f.bytes...)
		case 6:
			e.VTEP, err = decodeAddr(f)
		case 7:
			e.ServiceID = string(f.bytes)
		case 8:
			e.ServiceName = string(f.bytes)
		case 9:
			e.TaskName = string(f.bytes)
		case 10:
			e.Aliases = append(e.Aliases, string(f.bytes))
		case 11:
			e.VIP, err = decodeAddr(f)
		case 12:
			var p Port
			p, err = decodePort(f.bytes)
			e.Ports = append(e.Ports, p)
		}
		return err
	})
	return e, err
}

func decodePort(b []byte) (Port, error) {
	var p Port
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			if f.u > 255 {
				return fmt.Errorf("port protocol %d out of range", f.u)
			}
			p.Protocol = uint8(f.u)
		case 2, 3:
			if f.u > 65535 {
				return fmt.Errorf("port %d out of range", f.u)
			}
			if f.num == 2 {
				p.Published = uint16(f.u)
			} else {
				p.Target = uint16(f.u)
			}
		}
		return nil
	})
	return p, err
}

func decodeRecord(b []byte) (record, error) {
	var r record
	err := walk(b, func(f field) (err error) {
		switch f.num {
		case 1:
			r.ep, err = decodeEndpoint(f.bytes)
		case 2:
			r.version = f.u
		case 3:
			r.deleted = f.u != 0
		case 4:
			r.ttl = time.Duration(min(f.u, uint64(1<<40))) * time.Millisecond
		}
		return err
	})
	if err != nil {
		return r, err
	}
	if r.ep.NetworkID == "" || r.ep.EndpointID == "" || r.ep.NodeID == "" || r.version == 0 {
		return r, errors.New("entry without network, endpoint, owner or version")
	}
	return r, nil
}

func decodeInterest(b []byte) (interestRec, error) {
	var in interestRec
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			in.node = string(f.bytes)
		case 2:
			in.version = f.u
		case 3:
			in.networks = append(in.networks, string(f.bytes))
		}
		return nil
	})
	if err == nil && in.node == "" {
		err = errors.New("interest without a node")
	}
	return in, err
}

func decodeNetState(b []byte) (netState, error) {
	var s netState
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			s.node = string(f.bytes)
		case 2:
			s.clock = f.u
		case 3:
			s.network = string(f.bytes)
		case 4:
			r, err := decodeRecord(f.bytes)
			if err != nil {
				return err
			}
			s.records = append(s.records, r)
		case 5:
			s.notMember = f.u != 0
		}
		return nil
	})
	if err == nil && (s.node == "" || s.network == "") {
		err = errors.New("network state without a node or network")
	}
	return s, err
}

func decodeState(b []byte) (fullState, error) {
	var s fullState
	err := walk(b, func(f field) error {
		switch f.num {
		case 1:
			s.node = string(f.bytes)
		case 2:
			s.clock = f.u
		case 3:
			s.networks = append(s.networks, string(f.bytes))
		case 4:
			in, err := decodeInterest(f.bytes)
			if err != nil {
				return err
			}
			s.interests = append(s.interests, in)
		case 5:
			r, err := decodeRecord(f.bytes)
			if err != nil {
				return err
			}
			s.records = append(s.records, r)
		}
		return nil
	})
	if err == nil && s.node == "" {
		err = errors.New("state without a node")
	}
	return s, err
}
