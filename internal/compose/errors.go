package compose

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Error is a compose file the cluster cannot accept. It always names the
// file, and the key when the problem is at one.
type Error struct {
	// File is the compose file, as the user named it.
	File string
	// Detail says what is wrong, starting with the key's path when there
	// is one: "services.web.deploy.replicas must be a number (got "x")".
	Detail string
}

func (e *Error) Error() string { return e.File + ": " + e.Detail }

// problem is an error of the loader or the converter worded for users,
// before the file it is in is known.
type problem struct {
	detail string
	// file, when the message named it, is the file's absolute path.
	file string
}

func (p *problem) Error() string { return p.detail }

// problemf is a conversion error at a key: path and what is wrong with it.
func problemf(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path == "" {
		return &problem{detail: msg}
	}
	return &problem{detail: path + " " + msg}
}

var (
	validatingRE   = regexp.MustCompile(`^validating (.+?): (.*)$`)
	parseRE        = regexp.MustCompile(`^failed to parse (.+?): (?:yaml: )?(.*)$`)
	interpolateRE  = regexp.MustCompile(`^error while interpolating ([^:]+): (.*)$`)
	castRE         = regexp.MustCompile(`^failed to cast to expected type: (.*)$`)
	decodeItemRE   = regexp.MustCompile(`^'([^']+)' (.*)$`)
	bracketRE      = regexp.MustCompile(`\[([^\]]*[^\]0-9][^\]]*)\]`)
	durationValRE  = regexp.MustCompile(`duration "(.*)"$`)
	sizeValRE      = regexp.MustCompile(`^invalid size: '(.*)'$`)
	quotedRE       = regexp.MustCompile(`"([^"]*)"`)
	noImageRE      = regexp.MustCompile(`^service "([^"]+)" has neither an image nor a build context specified`)
	undefinedDepRE = regexp.MustCompile(`^service "([^"]+)" depends on undefined service "([^"]+)"`)
	undefinedRefRE = regexp.MustCompile(`^service "([^"]+)" refers to undefined (network|volume|secret|config) "?([^":]+)"?`)
	additionalRE   = regexp.MustCompile(`^(\S*)\s*additional propert(?:y|ies) (.+) not allowed$`)
	falseSchemaRE  = regexp.MustCompile(`^(\S+) false schema$`)
	cycleRE        = regexp.MustCompile(`^dependency cycle detected: ([^ ]+) -> (.*)$`)
)

// describe words an error of compose-go for users: a key path and what
// is wrong with it wherever the message allows.
func describe(err error) *problem {
	var p *problem
	if errors.As(err, &p) {
		return p
	}
	var lines []string
	file := ""
	for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "decoding failed due to the following error(s)") {
			continue
		}
		d, f := describeLine(line)
		if f != "" && file == "" {
			file = f
		}
		lines = append(lines, d)
	}
	if len(lines) == 0 {
		lines = []string{err.Error()}
	}
	return &problem{detail: strings.Join(lines, "\n"), file: file}
}

func describeLine(line string) (detail, file string) {
	if m := validatingRE.FindStringSubmatch(line); m != nil {
		d, _ := describeLine(m[2])
		return d, m[1]
	}
	if m := parseRE.FindStringSubmatch(line); m != nil {
		return "is not valid YAML: " + m[2], m[1]
	}
	if m := interpolateRE.FindStringSubmatch(line); m != nil {
		path, msg := m[1], m[2]
		if c := castRE.FindStringSubmatch(msg); c != nil {
			return path + " " + castProblem(c[1]), ""
		}
		return path + ": " + msg, ""
	}
	if m := decodeItemRE.FindStringSubmatch(line); m != nil {
		return decodeProblem(dotted(m[1]), m[2]), ""
	}
	if m := noImageRE.FindStringSubmatch(line); m != nil {
		return "services." + m[1] + ".image is required", ""
	}
	if m := undefinedDepRE.FindStringSubmatch(line); m != nil {
		return fmt.Sprintf("services.%s.depends_on names service %q, which is not defined", m[1], m[2]), ""
	}
	if m := undefinedRefRE.FindStringSubmatch(line); m != nil {
		return fmt.Sprintf("services.%s refers to %s %q, which is not defined in the top-level %ss", m[1], m[2], m[3], m[2]), ""
	}
	if m := additionalRE.FindStringSubmatch(line); m != nil {
		where := m[1]
		if where == "" {
			return fmt.Sprintf("unknown top-level key %s (additional properties are not allowed; use an x- prefix for extensions)", m[2]), ""
		}
		return fmt.Sprintf("%s has unknown key %s (additional properties are not allowed)", where, m[2]), ""
	}
	if m := cycleRE.FindStringSubmatch(line); m != nil {
		return fmt.Sprintf("services.%s.depends_on makes a dependency cycle: %s -> %s", m[1], m[1], m[2]), ""
	}
	if m := falseSchemaRE.FindStringSubmatch(line); m != nil {
		return m[1] + " is not a known key (use an x- prefix for extensions)", ""
	}
	return strings.TrimSuffix(line, ": invalid compose project"), ""
}

// dotted turns mapstructure's services[web].deploy into services.web.deploy;
// list indexes ([0]) are kept.
func dotted(p string) string {
	return bracketRE.ReplaceAllString(p, ".$1")
}

func castProblem(msg string) string {
	value := ""
	if m := quotedRE.FindStringSubmatch(msg); m != nil {
		value = m[1]
	} else if v, ok := strings.CutPrefix(msg, "invalid boolean: "); ok {
		value = v
	}
	switch {
	case strings.Contains(msg, "invalid boolean"):
		return fmt.Sprintf("must be a boolean (got %q)", value)
	case strings.Contains(msg, "strconv."):
		return fmt.Sprintf("must be a number (got %q)", value)
	}
	return "has an invalid value: " + msg
}

func decodeProblem(path, msg string) string {
	if strings.HasPrefix(msg, "time: ") {
		if m := durationValRE.FindStringSubmatch(msg); m != nil {
			return fmt.Sprintf("%s must be a duration such as 10s or 1m30s (got %q)", path, m[1])
		}
	}
	if m := sizeValRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s must be a size such as 512m or 1g (got %q)", path, m[1])
	}
	if strings.HasPrefix(msg, "time: ") {
		return fmt.Sprintf("%s must be a duration such as 10s or 1m30s (%s)", path, msg)
	}
	return path + ": " + msg
}
