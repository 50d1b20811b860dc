package raftstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level raft's trace messages are logged at. It sits
// below slog.LevelDebug, so handlers configured for debug output omit it.
const LevelTrace = slog.LevelDebug - 4

// hclogAdapter implements hclog.Logger on top of a *slog.Logger so that
// hashicorp/raft logs through the daemon's structured logger.
type hclogAdapter struct {
	base    *slog.Logger  // the injected logger, without this adapter's attributes
	logger  *slog.Logger  // base with the component name and implied args attached
	name    string        // dotted component name, attached as "component"
	implied []interface{} // key/value pairs added with With
	// level is an extra minimum set through SetLevel (hclog.NoLevel when
	// unset). The slog handler's own level always applies as well. It is
	// shared by loggers derived with With and Named, as in hclog.
	level *atomic.Int32
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogger(logger *slog.Logger, name string) *hclogAdapter {
	a := &hclogAdapter{base: logger, name: name, level: new(atomic.Int32)}
	a.level.Store(int32(hclog.NoLevel))
	a.logger = a.build()
	return a
}

func (a *hclogAdapter) build() *slog.Logger {
	l := a.base
	if a.name != "" {
		l = l.With("component", a.name)
	}
	if len(a.implied) > 0 {
		l = l.With(convertArgs(a.implied)...)
	}
	return l
}

func (a *hclogAdapter) derive(name string, implied []interface{}) *hclogAdapter {
	d := &hclogAdapter{base: a.base, name: name, implied: implied, level: a.level}
	d.logger = d.build()
	return d
}

// slogLevel maps an hclog level onto slog. NoLevel is treated as info.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// enabled reports whether a message at level l would be written.
func (a *hclogAdapter) enabled(l hclog.Level) bool {
	if l == hclog.Off {
		return false
	}
	if min := hclog.Level(a.level.Load()); min != hclog.NoLevel && l != hclog.NoLevel && l < min {
		return false
	}
	return a.logger.Enabled(context.Background(), slogLevel(l))
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	if !a.enabled(level) {
		return
	}
	a.logger.Log(context.Background(), slogLevel(level), msg, convertArgs(args)...)
}

func (a *hclogAdapter) Trace(msg string, args ...interface{}) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...interface{}) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...interface{})  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...interface{})  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...interface{}) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []interface{} {
	return append([]interface{}(nil), a.implied...)
}

func (a *hclogAdapter) With(args ...interface{}) hclog.Logger {
	implied := make([]interface{}, 0, len(a.implied)+len(args))
	implied = append(implied, a.implied...)
	implied = append(implied, args...)
	return a.derive(a.name, implied)
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.derive(name, a.implied)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return a.derive(name, a.implied)
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }

// GetLevel reports the level set with SetLevel, or, if none was set, the
// most verbose level the slog handler accepts.
func (a *hclogAdapter) GetLevel() hclog.Level {
	if l := hclog.Level(a.level.Load()); l != hclog.NoLevel {
		return l
	}
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.logger.Enabled(context.Background(), slogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &stdWriter{logger: a, level: hclog.Info}
	if opts != nil {
		w.infer = opts.InferLevels || opts.InferLevelsWithTimestamp
		if opts.ForceLevel != hclog.NoLevel {
			w.level = opts.ForceLevel
			w.infer = false
		}
	}
	return w
}

// stdWriter turns lines written through a standard library logger into
// records, optionally recognising hclog-style "[LEVEL]" prefixes.
type stdWriter struct {
	logger *hclogAdapter
	level  hclog.Level
	infer  bool
}

var levelPrefixes = []struct {
	prefix string
	level  hclog.Level
}{
	{"[TRACE]", hclog.Trace},
	{"[DEBUG]", hclog.Debug},
	{"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn},
	{"[ERR]", hclog.Error},
	{"[ERROR]", hclog.Error},
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\r\n"))
	level := w.level
	if w.infer {
		for _, lp := range levelPrefixes {
			if i := strings.Index(msg, lp.prefix); i >= 0 {
				level = lp.level
				msg = strings.TrimSpace(msg[i+len(lp.prefix):])
				break
			}
		}
	}
	w.logger.Log(level, msg)
	return len(p), nil
}

// convertArgs turns hclog's alternating key/value arguments into slog
// arguments: keys become strings, hclog.Format values are rendered, and a
// trailing key without a value is kept under "EXTRA_VALUE_AT_END" like hclog
// does.
func convertArgs(args []interface{}) []any {
	if len(args) == 0 {
		return nil
	}
	out := make([]any, 0, len(args)+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, slog.Any("EXTRA_VALUE_AT_END", convertValue(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		out = append(out, slog.Any(key, convertValue(args[i+1])))
	}
	return out
}

func convertValue(v interface{}) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if format, ok := v[0].(string); ok {
			return fmt.Sprintf(format, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(v))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(v))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(v))
	case hclog.Quote:
		return fmt.Sprintf("%q", string(v))
	default:
		return v
	}
}
