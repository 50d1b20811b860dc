package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/proto/shoalpb"
)

const idWeb = "w3bw3bw3bw3bw3bw3bw3bw3b0"

// createSpec runs service create -d against the fake daemon and returns
// the spec it sent.
func createSpec(t *testing.T, args ...string) *shoalpb.ServiceSpec {
	t.Helper()
	f := startFake(t)
	f.reply("CreateService", &shoalpb.CreateServiceResponse{Service: &shoalpb.Service{Id: idWeb}})
	stdout, stderr, code := f.cli(t, append([]string{"service", "create", "-d"}, args...)...)
	wantOutput(t, stdout, stderr, code, idWeb+"\n")
	reqs := f.requests("CreateService")
	if len(reqs) != 1 {
		t.Fatalf("%d CreateService requests", len(reqs))
	}
	return reqs[0].(*shoalpb.CreateServiceRequest).Spec
}

func wantSpec(t *testing.T, got, want *shoalpb.ServiceSpec) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("spec\n got %v\nwant %v", got, want)
	}
}

func TestServiceCreateMinimal(t *testing.T) {
	got := createSpec(t, "--name", "web", "nginx:alpine")
	wantSpec(t, got, &shoalpb.ServiceSpec{
		Name: "web",
		Task: &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "nginx:alpine"}},
		Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}},
	})
}

func TestServiceCreateFullSpec(t *testing.T) {
	t.Setenv("SHOAL_TEST_FROM_CLIENT", "client-value")
	got := createSpec(t,
		"--name", "web", "--replicas", "3",
		"-e", "A=1", "--env", "SHOAL_TEST_FROM_CLIENT", "-e", "SHOAL_TEST_UNSET_XYZ",
		"--label", "tier=front", "--label", "flag", "--container-label", "c=d",
		"--constraint", "node.role==worker", "--constraint", "node.labels.zone != b",
		"--placement-pref", "spread=node.labels.zone", "--replicas-max-per-node", "2",
		"--reserve-cpu", "0.25", "--reserve-memory", "512m", "--limit-cpu", "1.5", "--limit-memory", "1g",
		"--restart-condition", "on-failure", "--restart-delay", "3s", "--restart-max-attempts", "4", "--restart-window", "1m",
		"--health-cmd", "curl -f http://localhost/", "--health-interval", "30s", "--health-timeout", "5s",
		"--health-retries", "3", "--health-start-period", "1m",
		"--stop-grace-period", "20s", "--stop-signal", "SIGQUIT",
		"--entrypoint", `sh -c`, "--workdir", "/app", "-u", "1000:1000", "--hostname", "web-host",
		"--mount", "type=bind,src=/srv/data,dst=/data,ro,bind-propagation=rslave",
		"--mount", "source=cache,target=/cache,volume-driver=local,volume-label=a=b,volume-opt=o=bind,volume-nocopy=true",
		"--mount", "target=/anon",
		"--mount", `type=tmpfs,destination=/tmp,tmpfs-size=64m,tmpfs-mode=1777`,
		"--mount", `"type=bind","source=/a,b",target=/ab,readonly=false`,
		"nginx:alpine", "echo hello", "--not-a-flag")
	want := &shoalpb.ServiceSpec{
		Name:   "web",
		Labels: map[string]string{"tier": "front", "flag": ""},
		Mode:   &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 3}},
		Task: &shoalpb.TaskSpec{
			Container: &shoalpb.ContainerSpec{
				Image:    "nginx:alpine",
				Labels:   map[string]string{"c": "d"},
				Command:  []string{"sh", "-c"},
				Args:     []string{"echo hello", "--not-a-flag"},
				Hostname: "web-host",
				Env:      []string{"A=1", "SHOAL_TEST_FROM_CLIENT=client-value", "SHOAL_TEST_UNSET_XYZ"},
				Dir:      "/app",
				User:     "1000:1000",
				Mounts: []*shoalpb.Mount{
					{Type: shoalpb.Mount_TYPE_BIND, Source: "/srv/data", Target: "/data", ReadOnly: true, BindPropagation: "rslave"},
					{Type: shoalpb.Mount_TYPE_VOLUME, Source: "cache", Target: "/cache", VolumeDriver: "local",
						VolumeLabels: map[string]string{"a": "b"}, VolumeDriverOptions: map[string]string{"o": "bind"}, VolumeNocopy: true},
					{Type: shoalpb.Mount_TYPE_VOLUME, Target: "/anon"},
					{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/tmp", TmpfsSizeBytes: 64 << 20, TmpfsMode: 0o1777},
					{Type: shoalpb.Mount_TYPE_BIND, Source: "/a,b", Target: "/ab"},
				},
				StopGracePeriodNs: proto.Int64(int64(20 * time.Second)),
				StopSignal:        "SIGQUIT",
				Healthcheck: &shoalpb.HealthConfig{
					Test:       []string{"CMD-SHELL", "curl -f http://localhost/"},
					IntervalNs: int64(30 * time.Second), TimeoutNs: int64(5 * time.Second),
					Retries: 3, StartPeriodNs: int64(time.Minute),
				},
			},
			Resources: &shoalpb.ResourceRequirements{
				Limits:       &shoalpb.Resources{NanoCpus: 1_500_000_000, MemoryBytes: 1 << 30},
				Reservations: &shoalpb.Resources{NanoCpus: 250_000_000, MemoryBytes: 512 << 20},
			},
			Restart: &shoalpb.RestartPolicy{
				Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE, DelayNs: proto.Int64(int64(3 * time.Second)),
				MaxAttempts: 4, WindowNs: int64(time.Minute),
			},
			Placement: &shoalpb.Placement{
				Constraints: []string{"node.role==worker", "node.labels.zone != b"},
				Preferences: []*shoalpb.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}},
				MaxReplicas: 2,
			},
		},
	}
	wantSpec(t, got, want)
}

func TestServiceCreateModes(t *testing.T) {
	spec := func(mode *shoalpb.ServiceSpec) *shoalpb.ServiceSpec {
		mode.Name = "j"
		mode.Task = &shoalpb.TaskSpec{Container: &shoalpb.ContainerSpec{Image: "busybox"}}
		return mode
	}
	for _, tc := range []struct {
		args []string
		want *shoalpb.ServiceSpec
	}{
		{[]string{"--mode", "global"}, spec(&shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}})},
		{[]string{"--mode", "Replicated", "--replicas", "0"}, spec(&shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{}}})},
		{[]string{"--mode", "replicated-job", "--replicas", "5"},
			spec(&shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 5, TotalCompletions: 5}}})},
		{[]string{"--mode", "replicated-job", "--replicas", "5", "--max-concurrent", "2"},
			spec(&shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}})},
		{[]string{"--mode", "global-job"}, spec(&shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}})},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantSpec(t, createSpec(t, append(append([]string{"--name", "j"}, tc.args...), "busybox")...), tc.want)
		})
	}

	// A job given restart flags without a condition restarts on failure.
	got := createSpec(t, "--name", "j", "--mode", "global-job", "--restart-max-attempts", "2", "busybox")
	if r := got.Task.Restart; r.GetCondition() != shoalpb.RestartPolicy_CONDITION_ON_FAILURE || r.GetMaxAttempts() != 2 || r.DelayNs != nil {
		t.Errorf("job restart policy %v", r)
	}
	// --no-healthcheck disables the image's check.
	got = createSpec(t, "--name", "j", "--no-healthcheck", "busybox")
	if hc := got.Task.Container.Healthcheck; !proto.Equal(hc, &shoalpb.HealthConfig{Test: []string{"NONE"}}) {
		t.Errorf("healthcheck %v", hc)
	}
	// Zero durations are sent as given, not left to the defaults.
	got = createSpec(t, "--name", "j", "--stop-grace-period", "0s", "--restart-delay", "0", "busybox")
	if got.Task.Container.StopGracePeriodNs == nil || *got.Task.Container.StopGracePeriodNs != 0 || got.Task.Restart.DelayNs == nil {
		t.Errorf("zero durations: %v", got.Task)
	}
}

func TestSizesAndCPUs(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "512m": 512 << 20, "512M": 512 << 20, "1g": 1 << 30, "1.5g": 3 << 29, "2KiB": 2048,
		"10kb": 10240, "1 GB": 1 << 30, "3b": 3, "1t": 1 << 40,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"12XB", "", "-1m", "1.g", "m", "1e3"} {
		if _, err := parseSize(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("parseSize(%q) err = %v", bad, err)
		}
	}
	for in, want := range map[string]int64{"1": 1e9, "0.5": 5e8, "0.001": 1e6, "2.000000001": 2000000001, "0": 0} {
		var c cpuValue
		if err := c.Set(in); err != nil || c.nano != want {
			t.Errorf("cpus %q = %d, %v; want %d", in, c.nano, err, want)
		}
	}
	for _, bad := range []string{"-1", "abc", "0.0000000001", "1,5"} {
		var c cpuValue
		if err := c.Set(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("cpus %q err = %v", bad, err)
		}
	}
}

func TestShellWords(t *testing.T) {
	for in, want := range map[string][]string{
		`sh -c`:                 {"sh", "-c"},
		`  /bin/app  `:          {"/bin/app"},
		`"a b" 'c d' e\ f`:      {"a b", "c d", "e f"},
		`x "" y`:                {"x", "", "y"},
		`'it''s' "q\"uote"`:     {"its", `q"uote`},
		`/entry --flag=a\\b`:    {"/entry", `--flag=a\b`},
		``:                      nil,
		`"joined"'words'plain`:  {"joinedwordsplain"},
		"tab\tseparated\nlines": {"tab", "separated", "lines"},
	} {
		got, err := splitShellWords(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("splitShellWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := splitShellWords(bad); err == nil {
			t.Errorf("splitShellWords(%q) accepted", bad)
		}
	}
}

// TestServiceCreateRefusesBadValues checks that each bad value is named
// and that nothing is sent to the daemon.
func TestServiceCreateRefusesBadValues(t *testing.T) {
	f := startFake(t)
	for _, c := range []struct {
		args []string
		want string // part of stderr's first line
	}{
		{[]string{"--replicas", "-1"}, `invalid argument "-1" for "--replicas" flag`},
		{[]string{"--replicas", "two"}, `"two" is not a non-negative integer`},
		{[]string{"--limit-memory", "12XB"}, `invalid size "12XB"`},
		{[]string{"--reserve-memory", "1.5.5g"}, `"1.5.5g"`},
		{[]string{"--limit-cpu", "lots"}, `invalid number of CPUs "lots"`},
		{[]string{"--constraint", "node.labels.zone=a"}, `invalid constraint "node.labels.zone=a"`},
		{[]string{"--constraint", "node.role==boss"}, `"boss"`},
		{[]string{"--mode", "daemonset"}, `invalid mode "daemonset"`},
		{[]string{"--restart-condition", "always"}, `invalid restart condition "always"`},
		{[]string{"--restart-delay", "5 s"}, `invalid duration "5 s"`},
		{[]string{"--restart-window", "-1m"}, `invalid duration "-1m": must not be negative`},
		{[]string{"--stop-grace-period", "soon"}, `invalid duration "soon"`},
		{[]string{"--health-interval", "10us"}, `invalid duration "10us": must be at least 1ms`},
		{[]string{"--health-retries", "-2"}, `"-2"`},
		{[]string{"--placement-pref", "pack=node.labels.zone"}, `"pack=node.labels.zone"`},
		{[]string{"--placement-pref", "spread="}, `"spread="`},
		{[]string{"-e", "=x"}, `invalid environment variable "=x"`},
		{[]string{"--label", "=x"}, `invalid label "=x"`},
		{[]string{"--entrypoint", `"unclosed`}, `invalid command "\"unclosed"`},
		{[]string{"--mount", "type=nfs,target=/x"}, `invalid mount type "nfs"`},
		{[]string{"--mount", "type=bind,target=/x"}, `a bind mount needs a source`},
		{[]string{"--mount", "type=bind,source=rel,target=/x"}, `bind source "rel"`},
		{[]string{"--mount", "source=v"}, `target is required`},
		{[]string{"--mount", "target=rel"}, `target "rel" is not an absolute path`},
		{[]string{"--mount", "type=tmpfs,source=/x,target=/t"}, `a tmpfs mount takes no source`},
		{[]string{"--mount", "type=bind,source=/a,target=/b,volume-nocopy"}, `volume-nocopy is for volume mounts, not bind`},
		{[]string{"--mount", "type=volume,target=/b,bind-propagation=shared"}, `bind-propagation is for bind mounts, not volume`},
		{[]string{"--mount", "type=volume,target=/b,tmpfs-size=1m"}, `tmpfs-size is for tmpfs mounts`},
		{[]string{"--mount", "type=tmpfs,target=/b,tmpfs-size=big"}, `invalid size "big"`},
		{[]string{"--mount", "type=tmpfs,target=/b,tmpfs-mode=999"}, `"tmpfs-mode=999"`},
		{[]string{"--mount", "target=/b,colour=red"}, `unknown key "colour"`},
		{[]string{"--mount", "target=/b,ro=maybe"}, `"ro=maybe"`},
		{[]string{"--mount", "target"}, `"target": must be a key=value pair`},
		{[]string{"--mode", "global", "--replicas", "2"}, "--replicas 2: replicas can only be used with replicated or replicated-job mode"},
		{[]string{"--mode", "global", "--replicas-max-per-node", "1"}, "replicas-max-per-node can only be used with replicated or replicated-job mode"},
		{[]string{"--max-concurrent", "2"}, "--max-concurrent 2: max-concurrent can only be used with replicated-job mode"},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck conflicts with --health-* options"},
	} {
		args := append(append([]string{"service", "create", "--name", "web"}, c.args...), "nginx")
		stdout, stderr, code := f.cli(t, args...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != 1 || stdout != "" || !strings.Contains(first, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", c.args, code, stdout, stderr, c.want)
		}
		if !strings.Contains(stderr, "See 'shoal service create --help'.") {
			t.Errorf("%q: no pointer to the help in %q", c.args, stderr)
		}
	}
	for _, args := range [][]string{{"service", "create", "nginx"}, {"service", "create", "--name", "web"}} {
		if _, stderr, code := f.cli(t, args...); code != 1 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	if m := f.methods(); len(m) != 0 {
		t.Errorf("the daemon was called: %v", m)
	}
}
