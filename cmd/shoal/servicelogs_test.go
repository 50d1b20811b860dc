package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

const (
	idTask1 = "t1t1t1t1t1t1t1t1t1t1t1t1t"
	idTask2 = "t2t2t2t2t2t2t2t2t2t2t2t2t"
)

var logTime = time.Date(2026, time.March, 14, 9, 30, 0, 123456789, time.UTC)

// logsFake answers GetService for "web", ListTasks with two tasks of it
// and SubscribeLogs with a fixed stream.
func logsFake(t *testing.T) *fakeDaemon {
	f := startFake(t)
	f.on("GetService", func(req proto.Message) (proto.Message, error) {
		if req.(*shoalpb.GetServiceRequest).ServiceRef != "web" {
			return nil, status.Error(codes.NotFound, "service not found")
		}
		return &shoalpb.GetServiceResponse{Service: &shoalpb.Service{Id: idWeb, Spec: &shoalpb.ServiceSpec{Name: "web"}}}, nil
	})
	f.reply("ListTasks", &shoalpb.ListTasksResponse{
		Tasks: []*shoalpb.Task{
			{Id: idTask1, ServiceId: idWeb, ServiceName: "web", Slot: 1, NodeId: idAlpha},
			{Id: idTask2, ServiceId: idWeb, ServiceName: "web", Slot: 2, NodeId: idBravo},
		},
		NodeNames: map[string]string{idAlpha: "alpha", idBravo: "bravo"},
	})
	line := func(task, node string, stream shoalpb.LogStream, data string) *shoalpb.LogMessage {
		return &shoalpb.LogMessage{TaskId: task, ServiceId: idWeb, NodeId: node, Stream: stream, TimestampNs: logTime.UnixNano(), Data: []byte(data)}
	}
	f.logs = func(req *shoalpb.SubscribeLogsRequest, stream grpc.ServerStreamingServer[shoalpb.SubscribeLogsMessage]) error {
		if err := stream.Send(&shoalpb.SubscribeLogsMessage{Messages: []*shoalpb.LogMessage{
			line(idTask1, idAlpha, shoalpb.LogStream_LOG_STREAM_STDOUT, "hello"),
			line(idTask2, idBravo, shoalpb.LogStream_LOG_STREAM_STDERR, "oops"),
		}}); err != nil {
			return err
		}
		return stream.Send(&shoalpb.SubscribeLogsMessage{
			Messages: []*shoalpb.LogMessage{line(idTask2, idBravo, shoalpb.LogStream_LOG_STREAM_STDOUT, "bye")},
			Warnings: []string{"node delta did not answer within 10s: its logs are incomplete"},
		})
	}
	return f
}

func TestServiceLogsRendering(t *testing.T) {
	f := logsFake(t)
	stdout, stderr, code := f.cli(t, "service", "logs", "web")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if want := "web.1.t1t1t1t1t1t1@alpha    | hello\nweb.2.t2t2t2t2t2t2@bravo    | bye\n"; stdout != want {
		t.Errorf("stdout\n got %q\nwant %q", stdout, want)
	}
	if want := "web.2.t2t2t2t2t2t2@bravo    | oops\nwarning: node delta did not answer within 10s: its logs are incomplete\n"; stderr != want {
		t.Errorf("stderr\n got %q\nwant %q", stderr, want)
	}
	wantRequests(t, f, "SubscribeLogs", &shoalpb.SubscribeLogsRequest{
		Selector: &shoalpb.LogSelector{ServiceIds: []string{idWeb}},
		Options:  &shoalpb.LogSubscriptionOptions{Tail: -1},
	})
	if n := len(f.requests("ListTasks")); n != 1 {
		t.Errorf("%d task lookups, want one for both tasks", n)
	}

	ts := "2026-03-14T09:30:00.123456789Z "
	stdout, _, _ = f.cli(t, "service", "logs", "-t", "--no-trunc", "web")
	if want := ts + "web.1." + idTask1 + "@alpha    | hello\n" + ts + "web.2." + idTask2 + "@bravo    | bye\n"; stdout != want {
		t.Errorf("-t --no-trunc:\n got %q\nwant %q", stdout, want)
	}
	stdout, _, _ = f.cli(t, "service", "logs", "--no-task-ids", "web")
	if want := "web.1@alpha    | hello\nweb.2@bravo    | bye\n"; stdout != want {
		t.Errorf("--no-task-ids:\n got %q\nwant %q", stdout, want)
	}
	stdout, stderr, _ = f.cli(t, "service", "logs", "--raw", "web")
	if stdout != "hello\nbye\n" || !strings.HasPrefix(stderr, "oops\n") {
		t.Errorf("--raw: stdout %q stderr %q", stdout, stderr)
	}
}

func TestServiceLogsRequest(t *testing.T) {
	f := logsFake(t)
	f.cli(t, "service", "logs", "-f", "--tail", "5", "--since", "1700000000.5", "t1t1")
	wantRequests(t, f, "SubscribeLogs", &shoalpb.SubscribeLogsRequest{
		Selector: &shoalpb.LogSelector{TaskIds: []string{"t1t1"}},
		Options:  &shoalpb.LogSubscriptionOptions{Follow: true, Tail: 5, SinceNs: 1700000000500000000},
	})
}

func TestServiceLogsErrors(t *testing.T) {
	f := logsFake(t)
	_, stderr, code := f.cli(t, "service", "logs", "--tail", "-3", "web")
	if code != 1 || !strings.Contains(stderr, `"-3"`) {
		t.Errorf("bad --tail: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = f.cli(t, "service", "logs", "--since", "yesterday", "web")
	if code != 1 || !strings.Contains(stderr, `"yesterday"`) {
		t.Errorf("bad --since: exit %d, stderr %q", code, stderr)
	}
	f.logs = func(*shoalpb.SubscribeLogsRequest, grpc.ServerStreamingServer[shoalpb.SubscribeLogsMessage]) error {
		return status.Error(codes.NotFound, "no such task: nope")
	}
	_, stderr, code = f.cli(t, "service", "logs", "nope")
	if code != 1 || stderr != "Error: No such service or task: nope\n" {
		t.Errorf("unknown: exit %d, stderr %q", code, stderr)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, time.March, 14, 9, 30, 0, 0, time.UTC)
	for in, want := range map[string]int64{
		"":                     0,
		"42m":                  now.Add(-42 * time.Minute).UnixNano(),
		"2013-01-02T13:23:37Z": time.Date(2013, 1, 2, 13, 23, 37, 0, time.UTC).UnixNano(),
		"2013-01-02":           time.Date(2013, 1, 2, 0, 0, 0, 0, time.UTC).UnixNano(),
		"1700000000":           1700000000e9,
		"1700000000.000000001": 1700000000e9 + 1,
	} {
		got, err := parseSince(in, now)
		if err != nil || got != want {
			t.Errorf("parseSince(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-5m", "soon", "12.", "1.1234567890"} {
		if _, err := parseSince(bad, now); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("parseSince(%q): %v", bad, err)
		}
	}
}
