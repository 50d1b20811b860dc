package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/shoal-project/shoal/worker/exec"
)

// Logs sends the container's output, line by line, to fn.
func (c *Controller) Logs(ctx context.Context, opts exec.LogOptions, fn func(exec.LogLine) error) error {
	if opts.Tail < -1 {
		return fmt.Errorf("log tail %d is neither -1 (all) nor a line count", opts.Tail)
	}
	tail := "all"
	if opts.Tail >= 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	dopts := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     opts.Follow,
		Tail:       tail,
		Timestamps: opts.Timestamps,
	}
	if !opts.Since.IsZero() {
		dopts.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := c.e.api.ContainerLogs(ctx, c.cfg.name, dopts)
	if err != nil {
		if _, ierr := c.inspect(ctx); errors.Is(ierr, exec.ErrTaskNotFound) {
			return ierr
		}
		return fmt.Errorf("reading logs of container %s: %w", c.cfg.name, err)
	}
	defer rc.Close()
	err = readLogFrames(bufio.NewReader(rc), opts.Timestamps, fn)
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// The body was closed under the reader as ctx ended.
		return ctx.Err()
	}
	return err
}

// Stream numbers in the engine's multiplexed log frames.
const (
	frameStdout = 1
	frameStderr = 2
)

// readLogFrames reads the engine's multiplexed stream (no TTY): frames of an
// 8-byte header — stream, three zero bytes, big-endian payload size — and
// the payload. A payload holds whole lines, or the part of a long line the
// engine split; each line starts with its RFC 3339 time when timestamps
// were asked for.
func readLogFrames(r *bufio.Reader, timestamps bool, fn func(exec.LogLine) error) error {
	var hdr [8]byte
	// partial holds, per stream, a line the engine split over frames.
	partial := map[string][]byte{}
	flush := func(stream string, data []byte) error {
		line := exec.LogLine{Stream: stream, Data: data}
		if timestamps {
			ts, rest, ok := bytes.Cut(data, []byte(" "))
			if t, err := time.Parse(time.RFC3339Nano, string(ts)); ok && err == nil {
				line.Time, line.Data = t, rest
			}
		}
		return fn(line)
	}
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("reading log frame header: %w", err)
		}
		var stream string
		switch hdr[0] {
		case frameStdout:
			stream = exec.StreamStdout
		case frameStderr:
			stream = exec.StreamStderr
		default:
			// Stdin (0) or the engine's own messages (3): not output.
			stream = ""
		}
		size := binary.BigEndian.Uint32(hdr[4:])
		payload := make([]byte, size)
		if _, err := io.ReadFull(r, payload); err != nil {
			return fmt.Errorf("reading a log frame of %d bytes: %w", size, err)
		}
		if stream == "" {
			if hdr[0] == 3 {
				return fmt.Errorf("engine error in log stream: %s", bytes.TrimSpace(payload))
			}
			continue
		}
		buf := append(partial[stream], payload...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			if err := flush(stream, buf[:i:i]); err != nil {
				return err
			}
			buf = buf[i+1:]
		}
		partial[stream] = buf
	}
	for _, stream := range []string{exec.StreamStdout, exec.StreamStderr} {
		if len(partial[stream]) > 0 {
			if err := flush(stream, partial[stream]); err != nil {
				return err
			}
		}
	}
	return nil
}
