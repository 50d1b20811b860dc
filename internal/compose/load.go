package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

// Options say which compose files make a stack and what they are
// interpolated with.
type Options struct {
	// Files are the compose files, merged in order (later files override
	// earlier ones). "-" stands for Stdin.
	Files []string
	// Env is the environment ${VAR} references are interpolated from
	// (KEY=VALUE entries, usually os.Environ()). The project directory's
	// .env file adds the variables Env does not set.
	Env []string
	// Stdin is read for a file named "-".
	Stdin io.Reader
	// WorkingDir is the project directory, against which relative paths
	// (bind mount sources, env_file, .env) are resolved. Empty means the
	// directory of the first file.
	WorkingDir string
}

// Stack is a stack converted from compose files.
type Stack struct {
	// Spec is what DeployStack is sent: full names, stack labels set,
	// and the merged, interpolated model in Spec.Compose.
	Spec *shoalpb.StackSpec
	// Warnings are for the user (keys ignored, variables not set), one
	// message each, possibly of several lines.
	Warnings []string
}

// MaxStackNameLength leaves room in a service name (at most 63
// characters) for "_" and a short service name.
const MaxStackNameLength = 48

var stackNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateStackName checks a stack name: letters, digits, '_', '.' and
// '-', starting with a letter or digit.
func ValidateStackName(name string) error {
	if name == "" {
		return errors.New("a stack name is required")
	}
	if len(name) > MaxStackNameLength || !stackNameRE.MatchString(name) {
		return fmt.Errorf("invalid stack name %q: names must be at most %d characters of letters, digits, '_', '.' and '-', starting with a letter or digit", name, MaxStackNameLength)
	}
	return nil
}

// source is one compose file read into memory.
type source struct {
	display string // as the user named it
	path    string // absolute, or "-"
	content []byte
}

// Load reads, merges, interpolates and validates the compose files and
// converts them into the spec of stack name. Every error is an *Error
// naming the file (and the key when there is one), except a bad stack
// name or no file at all.
func Load(ctx context.Context, name string, opts Options) (*Stack, error) {
	if err := ValidateStackName(name); err != nil {
		return nil, err
	}
	if len(opts.Files) == 0 {
		return nil, errors.New("no compose file given (use --compose-file)")
	}
	var files []source
	stdinUsed := false
	for _, f := range opts.Files {
		src := source{display: f, path: "-"}
		var err error
		if f == "-" {
			if stdinUsed || opts.Stdin == nil {
				return nil, &Error{File: f, Detail: "standard input can be read only once, and only when it is given"}
			}
			stdinUsed = true
			src.content, err = io.ReadAll(opts.Stdin)
		} else {
			if src.path, err = filepath.Abs(f); err == nil {
				src.content, err = os.ReadFile(src.path)
			}
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, &Error{File: f, Detail: "cannot be read: " + err.Error()}
		}
		files = append(files, src)
	}
	wd, err := workingDir(opts.WorkingDir, files)
	if err != nil {
		return nil, err
	}
	env, err := environment(opts.Env, wd)
	if err != nil {
		return nil, err
	}
	st, err := build(ctx, name, files, wd, env)
	if err != nil {
		return nil, attribute(ctx, name, files, wd, env, err)
	}
	return st, nil
}

func workingDir(wd string, files []source) (string, error) {
	if wd == "" {
		for _, f := range files {
			if f.path != "-" {
				return filepath.Dir(f.path), nil
			}
		}
		return os.Getwd()
	}
	return filepath.Abs(wd)
}

// environment is env with the variables of wd/.env it does not set.
func environment(env []string, wd string) (types.Mapping, error) {
	m := types.Mapping{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	dotEnv := filepath.Join(wd, ".env")
	if st, err := os.Stat(dotEnv); err != nil || st.IsDir() {
		return m, nil
	}
	vars, err := dotenv.GetEnvFromFile(m, []string{dotEnv})
	if err != nil {
		return nil, &Error{File: dotEnv, Detail: strings.TrimPrefix(err.Error(), "failed to read "+dotEnv+": ")}
	}
	return m.Merge(vars), nil
}

// build loads files and converts them; errors are *problem.
func build(ctx context.Context, name string, files []source, wd string, env types.Mapping) (*Stack, error) {
	details := types.ConfigDetails{WorkingDir: wd, Environment: env}
	for _, f := range files {
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: f.path, Content: f.content})
	}
	report := &keyReport{}
	var project *types.Project
	var err error
	logged := captureWarnings(func() {
		project, err = loader.LoadWithContext(ctx, details,
			func(o *loader.Options) {
				o.SetProjectName(loader.NormalizeProjectName(name), true)
				// Profiles select services for a local compose run; a
				// stack deploys every service.
				o.Profiles = []string{"*"}
			},
			report.option())
	})
	if err != nil {
		return nil, describe(err)
	}
	warnings, err := checkKeys(report, project)
	if err != nil {
		return nil, err
	}
	spec, err := convert(name, project)
	if err != nil {
		return nil, err
	}
	if spec.Compose, err = project.MarshalYAML(); err != nil {
		return nil, fmt.Errorf("render the merged compose model: %w", err)
	}
	return &Stack{Spec: spec, Warnings: append(logged, warnings...)}, nil
}

// attribute makes err an *Error naming the file it is in. When the
// message does not say, the file is the first whose addition to the
// files before it brings the same problem about (a single file is always
// the one).
func attribute(ctx context.Context, name string, files []source, wd string, env types.Mapping, err error) error {
	p := describe(err)
	blame := files[len(files)-1]
	switch {
	case p.file != "":
		for _, f := range files {
			if f.path == p.file {
				blame = f
			}
		}
	case len(files) > 1:
		for k := 1; k < len(files); k++ {
			if _, e := build(ctx, name, files[:k], wd, env); e != nil && describe(e).detail == p.detail {
				blame = files[k-1]
				break
			}
		}
	}
	return &Error{File: blame.display, Detail: p.detail}
}

// captureWarnings runs fn with compose-go's log warnings (unset variables
// and the like) collected instead of printed. Loads are serialised while
// the standard logger is redirected.
var logMu sync.Mutex

func captureWarnings(fn func()) []string {
	logMu.Lock()
	defer logMu.Unlock()
	std := logrus.StandardLogger()
	hook := &warnHook{}
	hooks := logrus.LevelHooks{}
	hooks.Add(hook)
	oldHooks := std.ReplaceHooks(hooks)
	oldOut, oldLevel := std.Out, std.GetLevel()
	std.SetOutput(io.Discard)
	std.SetLevel(logrus.WarnLevel)
	defer func() {
		std.ReplaceHooks(oldHooks)
		std.SetOutput(oldOut)
		std.SetLevel(oldLevel)
	}()
	fn()
	return hook.msgs
}

type warnHook struct{ msgs []string }

func (h *warnHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h *warnHook) Fire(e *logrus.Entry) error {
	// The version key is common in files written for docker stack
	// deploy, which accepts it silently; so does a stack.
	if !strings.Contains(e.Message, "the attribute `version` is obsolete") {
		h.msgs = append(h.msgs, e.Message)
	}
	return nil
}
