package node

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
)

// frame is a message the proxy relays without decoding it.
type frame struct{ payload []byte }

// proxyCodec passes frames through untouched and encodes everything else
// as protobuf, so one server can both relay and serve its own services.
type proxyCodec struct{}

var _ encoding.Codec = proxyCodec{}

func (proxyCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *frame:
		return m.payload, nil
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("proxy codec: cannot encode %T", v)
}

func (proxyCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *frame:
		m.payload = append(m.payload[:0], data...)
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("proxy codec: cannot decode into %T", v)
}

func (proxyCodec) Name() string { return "proto" }

// relay copies a call between the server stream of the local socket and a
// client stream to the manager, in both directions, until both ends close.
func relay(ss grpc.ServerStream, conn grpc.ClientConnInterface, method string) error {
	ctx := ss.Context()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodec(proxyCodec{}))
	if err != nil {
		return err
	}
	upErr := make(chan error, 1)
	go func() {
		for {
			f := &frame{}
			if err := ss.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					upErr <- cs.CloseSend()
					return
				}
				upErr <- err
				return
			}
			if err := cs.SendMsg(f); err != nil {
				upErr <- err
				return
			}
		}
	}()
	first := true
	for {
		f := &frame{}
		if err := cs.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				ss.SetTrailer(cs.Trailer())
				return nil
			}
			ss.SetTrailer(cs.Trailer())
			return err
		}
		if first {
			if md, err := cs.Header(); err == nil {
				ss.SendHeader(md)
			}
			first = false
		}
		if err := ss.SendMsg(f); err != nil {
			return err
		}
	}
}
