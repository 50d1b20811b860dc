package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Flags of the update and rollback configs (service create and update),
// and the list flags of service update, in docker's syntax.

// Docker's defaults for an update or rollback config, which the cluster
// applies to unset fields too.
const (
	defaultUpdateParallelism = 1
	defaultUpdateMonitor     = 5 * time.Second
	defaultUpdateTimeout     = 2 * time.Minute
)

var (
	failureActions = map[string]shoalpb.UpdateConfig_FailureAction{
		"pause":    shoalpb.UpdateConfig_FAILURE_ACTION_PAUSE,
		"continue": shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE,
		"rollback": shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK,
	}
	updateOrders = map[string]shoalpb.UpdateConfig_Order{
		"stop-first":  shoalpb.UpdateConfig_ORDER_STOP_FIRST,
		"start-first": shoalpb.UpdateConfig_ORDER_START_FIRST,
	}
)

// ratioValue is a number between 0 and 1.
type ratioValue struct{ v float32 }

func (r *ratioValue) String() string { return strconv.FormatFloat(float64(r.v), 'f', -1, 32) }
func (r *ratioValue) Type() string   { return "float" }

func (r *ratioValue) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 32)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("invalid failure ratio %q: must be a number between 0 and 1", s)
	}
	r.v = float32(v)
	return nil
}

// updateConfigFlags are the --update-* or --rollback-* flags.
type updateConfigFlags struct {
	prefix      string // "update" or "rollback"
	parallelism uintValue
	delay       durationValue
	action      *enumValue
	monitor     durationValue
	ratio       ratioValue
	order       *enumValue
	timeout     durationValue // --update-timeout only
}

func newUpdateConfigFlags(prefix string) *updateConfigFlags {
	actions := []string{"pause", "continue", "rollback"}
	if prefix == "rollback" {
		// A rollback is never rolled back.
		actions = []string{"pause", "continue"}
	}
	return &updateConfigFlags{
		prefix:      prefix,
		parallelism: uintValue{v: defaultUpdateParallelism},
		action:      newEnum(prefix+" failure action", "pause", actions...),
		order:       newEnum(prefix+" order", "stop-first", "start-first", "stop-first"),
	}
}

func (u *updateConfigFlags) add(f *pflag.FlagSet) {
	p, what := u.prefix, "update"
	if p == "rollback" {
		what = "rollback"
	}
	verb := "updated"
	if what == "rollback" {
		verb = "rolled back"
	}
	// Flags whose value prints (parallelism, action, order) get their
	// default shown by the flag package.
	f.Var(&u.parallelism, p+"-parallelism", fmt.Sprintf("Maximum number of tasks %s simultaneously (0 for all at once)", verb))
	f.Var(&u.delay, p+"-delay", fmt.Sprintf("Delay between %ss (ns|us|ms|s|m|h) (default 0s)", what))
	f.Var(u.action, p+"-failure-action", fmt.Sprintf("Action on %s failure (%s)", what, quotedList(u.action.allowed)))
	f.Var(&u.monitor, p+"-monitor", fmt.Sprintf("Duration after each task %s to monitor for failure (ns|us|ms|s|m|h) (default 5s)", what))
	article := "a"
	if what == "update" {
		article = "an"
	}
	f.Var(&u.ratio, p+"-max-failure-ratio", fmt.Sprintf("Failure rate to tolerate during %s %s (0 to 1)", article, what))
	f.Var(u.order, p+"-order", fmt.Sprintf("%s order (\"start-first\"|\"stop-first\")", capitalize(what)))
	if p == "update" {
		f.Var(&u.timeout, p+"-timeout", "Time a new task may take to be running (and healthy) before it counts as failed (ns|us|ms|s|m|h; 0 for none) (default 2m)")
	}
}

func quotedList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	return strings.Join(q, "|")
}

func (u *updateConfigFlags) names() []string {
	out := []string{"parallelism", "delay", "failure-action", "monitor", "max-failure-ratio", "order"}
	if u.prefix == "update" {
		out = append(out, "timeout")
	}
	for i, n := range out {
		out[i] = u.prefix + "-" + n
	}
	return out
}

// changed reports whether any of the flags was given.
func (u *updateConfigFlags) changed(f *pflag.FlagSet) bool {
	for _, n := range u.names() {
		if f.Changed(n) {
			return true
		}
	}
	return false
}

// apply returns cur with the flags given applied, or cur itself when none
// was. A service with no config gets docker's defaults for the fields the
// flags leave out.
func (u *updateConfigFlags) apply(f *pflag.FlagSet, cur *shoalpb.UpdateConfig) *shoalpb.UpdateConfig {
	if !u.changed(f) {
		return cur
	}
	c := &shoalpb.UpdateConfig{Parallelism: defaultUpdateParallelism}
	if cur != nil {
		c = proto.Clone(cur).(*shoalpb.UpdateConfig)
	}
	n := func(s string) bool { return f.Changed(u.prefix + "-" + s) }
	if n("parallelism") {
		c.Parallelism = u.parallelism.v
	}
	if n("delay") {
		c.DelayNs = int64(u.delay.d)
	}
	if n("failure-action") {
		c.FailureAction = failureActions[u.action.value]
	}
	if n("monitor") {
		c.MonitorNs = proto.Int64(int64(u.monitor.d))
	}
	if n("max-failure-ratio") {
		c.MaxFailureRatio = u.ratio.v
	}
	if n("order") {
		c.Order = updateOrders[u.order.value]
	}
	if u.prefix == "update" && n("timeout") {
		c.TaskTimeoutNs = proto.Int64(int64(u.timeout.d))
	}
	return c
}

// listValue collects the non-empty values of a repeated flag (the -rm
// flags of service update).
type listValue struct {
	what  string
	items []string
}

func (l *listValue) String() string { return listString(l.items) }
func (l *listValue) Type() string   { return "list" }

func (l *listValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("invalid %s %q: it is empty", l.what, s)
	}
	l.items = append(l.items, s)
	return nil
}

func (l *listValue) has(s string) bool {
	for _, v := range l.items {
		if v == s {
			return true
		}
	}
	return false
}
