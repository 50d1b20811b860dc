package compose_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-project/shoal/internal/compose"
	"github.com/shoal-project/shoal/proto/shoalpb"
)

// project writes files (name → content) into a fresh directory and
// returns it.
func project(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// load loads the named files of dir as stack "app", with env.
func load(t *testing.T, dir string, env []string, files ...string) (*compose.Stack, error) {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f))
	}
	return compose.Load(context.Background(), "app", compose.Options{Files: paths, Env: env})
}

func mustLoad(t *testing.T, content string) *compose.Stack {
	t.Helper()
	dir := project(t, map[string]string{"docker-compose.yml": content})
	st, err := load(t, dir, nil, "docker-compose.yml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return st
}

func service(t *testing.T, st *compose.Stack, name string) *shoalpb.ServiceSpec {
	t.Helper()
	for _, s := range st.Spec.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s in %v", name, st.Spec.Services)
	return nil
}

func diff(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

func ns(d time.Duration) int64 { return int64(d) }

func TestConvertService(t *testing.T) {
	st := mustLoad(t, `
services:
  web:
    image: nginx:1.27
    command: ["nginx", "-g", "daemon off;"]
    entrypoint: /docker-entrypoint.sh
    environment:
      B: "2"
      A: "1"
    labels:
      tier: front
    hostname: web-host
    user: "101:101"
    working_dir: /srv
    stop_grace_period: 20s
    stop_signal: SIGQUIT
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 10s
    deploy:
      mode: replicated
      replicas: 3
      labels:
        team: web
      endpoint_mode: dnsrr
      resources:
        limits: {cpus: "0.5", memory: 256M}
        reservations: {cpus: "0.1", memory: 64M}
      restart_policy:
        condition: on-failure
        delay: 3s
        max_attempts: 4
        window: 1m
      placement:
        constraints: [node.role==worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config:
        failure_action: continue
`)
	want := &shoalpb.ServiceSpec{
		Name:   "app_web",
		Labels: map[string]string{"team": "web", compose.LabelNamespace: "app", compose.LabelImage: "nginx:1.27"},
		Mode:   &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 3}},
		Task: &shoalpb.TaskSpec{
			Container: &shoalpb.ContainerSpec{
				Image:             "nginx:1.27",
				Labels:            map[string]string{"tier": "front", compose.LabelNamespace: "app"},
				Command:           []string{"/docker-entrypoint.sh"},
				Args:              []string{"nginx", "-g", "daemon off;"},
				Hostname:          "web-host",
				Env:               []string{"A=1", "B=2"},
				Dir:               "/srv",
				User:              "101:101",
				StopGracePeriodNs: proto.Int64(ns(20 * time.Second)),
				StopSignal:        "SIGQUIT",
				Healthcheck: &shoalpb.HealthConfig{
					Test:       []string{"CMD", "curl", "-f", "http://localhost"},
					IntervalNs: ns(5 * time.Second), TimeoutNs: ns(2 * time.Second), Retries: 3, StartPeriodNs: ns(10 * time.Second),
				},
			},
			Resources: &shoalpb.ResourceRequirements{
				Limits:       &shoalpb.Resources{NanoCpus: 500_000_000, MemoryBytes: 256 << 20},
				Reservations: &shoalpb.Resources{NanoCpus: 100_000_000, MemoryBytes: 64 << 20},
			},
			Restart: &shoalpb.RestartPolicy{
				Condition: shoalpb.RestartPolicy_CONDITION_ON_FAILURE, DelayNs: proto.Int64(ns(3 * time.Second)),
				MaxAttempts: 4, WindowNs: ns(time.Minute),
			},
			Placement: &shoalpb.Placement{
				Constraints: []string{"node.role==worker"},
				Preferences: []*shoalpb.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}},
				MaxReplicas: 2,
			},
			Networks: []*shoalpb.NetworkAttachmentConfig{{Target: "app_default", Aliases: []string{"web"}}},
		},
		Update: &shoalpb.UpdateConfig{
			Parallelism: 2, DelayNs: ns(10 * time.Second), FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_ROLLBACK,
			MonitorNs: proto.Int64(ns(30 * time.Second)), MaxFailureRatio: 0.25, Order: shoalpb.UpdateConfig_ORDER_START_FIRST,
		},
		Rollback: &shoalpb.UpdateConfig{Parallelism: 1, FailureAction: shoalpb.UpdateConfig_FAILURE_ACTION_CONTINUE},
		Endpoint: &shoalpb.EndpointSpec{Mode: shoalpb.EndpointSpec_MODE_DNSRR},
	}
	diff(t, "service app_web", service(t, st, "app_web"), want)
	if st.Spec.Name != "app" {
		t.Errorf("stack name %q", st.Spec.Name)
	}
	if len(st.Warnings) != 0 {
		t.Errorf("warnings for a file with only supported keys: %q", st.Warnings)
	}
	if !strings.Contains(string(st.Spec.Compose), "nginx:1.27") {
		t.Errorf("compose model not kept:\n%s", st.Spec.Compose)
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		deploy string
		want   *shoalpb.ServiceSpec
	}{
		{"", &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 1}}}},
		{"replicas: 0", &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Replicated{Replicated: &shoalpb.ReplicatedService{Replicas: 0}}}},
		{"mode: global", &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_Global{Global: &shoalpb.GlobalService{}}}},
		{"mode: replicated-job\n      replicas: 4", &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{MaxConcurrent: 4, TotalCompletions: 4}}}},
		{"mode: replicated-job", &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_ReplicatedJob{ReplicatedJob: &shoalpb.ReplicatedJob{}}}},
		{"mode: global-job", &shoalpb.ServiceSpec{Mode: &shoalpb.ServiceSpec_GlobalJob{GlobalJob: &shoalpb.GlobalJob{}}}},
	} {
		t.Run(tc.deploy, func(t *testing.T) {
			st := mustLoad(t, "services:\n  s:\n    image: busybox\n    deploy:\n      "+tc.deploy+"\n")
			got := service(t, st, "app_s")
			diff(t, "mode", &shoalpb.ServiceSpec{Mode: got.Mode}, tc.want)
		})
	}
}

func TestNetworks(t *testing.T) {
	st := mustLoad(t, `
services:
  plain:
    image: busybox
  front:
    image: busybox
    networks:
      edge:
        aliases: [www]
      shared: {}
      named: {}
networks:
  edge:
    driver: overlay
    attachable: true
    labels: {purpose: edge}
    ipam:
      config:
        - subnet: 198.19.7.0/24
  shared:
    external: true
    name: platform_net
  named:
    name: fixed-name
  unused: {}
`)
	want := []*shoalpb.NetworkSpec{
		{Name: "app_default", Driver: "overlay", Labels: map[string]string{compose.LabelNamespace: "app"}},
		{Name: "app_edge", Driver: "overlay", Attachable: true, Labels: map[string]string{"purpose": "edge", compose.LabelNamespace: "app"}, Ipam: &shoalpb.IPAMConfig{Subnet: "198.19.7.0/24"}},
		{Name: "fixed-name", Driver: "overlay", Labels: map[string]string{compose.LabelNamespace: "app"}},
	}
	diff(t, "networks", &shoalpb.StackSpec{Networks: st.Spec.Networks}, &shoalpb.StackSpec{Networks: want})
	diff(t, "front's attachments", &shoalpb.TaskSpec{Networks: service(t, st, "app_front").Task.Networks}, &shoalpb.TaskSpec{Networks: []*shoalpb.NetworkAttachmentConfig{
		{Target: "app_edge", Aliases: []string{"www", "front"}},
		{Target: "fixed-name", Aliases: []string{"front"}},
		{Target: "platform_net", Aliases: []string{"front"}},
	}})
	diff(t, "plain's attachments", &shoalpb.TaskSpec{Networks: service(t, st, "app_plain").Task.Networks}, &shoalpb.TaskSpec{Networks: []*shoalpb.NetworkAttachmentConfig{
		{Target: "app_default", Aliases: []string{"plain"}},
	}})
}

func TestNetworkDriverMustBeOverlay(t *testing.T) {
	dir := project(t, map[string]string{"docker-compose.yml": "services:\n  s:\n    image: busybox\n    networks: [n]\nnetworks:\n  n:\n    driver: bridge\n"})
	_, err := load(t, dir, nil, "docker-compose.yml")
	wantError(t, err, "docker-compose.yml: networks.n.driver must be overlay (got \"bridge\")")
}

func TestPortsAndEndpoint(t *testing.T) {
	st := mustLoad(t, `
services:
  s:
    image: busybox
    ports:
      - "8080:80"
      - "9000:90/udp"
      - target: 443
        published: "8443"
        mode: host
      - "7000"
`)
	diff(t, "endpoint", service(t, st, "app_s").Endpoint, &shoalpb.EndpointSpec{Ports: []*shoalpb.PortConfig{
		{TargetPort: 7000},
		{TargetPort: 80, PublishedPort: 8080},
		{TargetPort: 443, PublishedPort: 8443, PublishMode: shoalpb.PortConfig_PUBLISH_MODE_HOST},
		{TargetPort: 90, PublishedPort: 9000, Protocol: shoalpb.PortConfig_PROTOCOL_UDP},
	}})
}

func TestVolumes(t *testing.T) {
	dir := project(t, map[string]string{"docker-compose.yml": `
services:
  db:
    image: postgres
    volumes:
      - ./conf:/etc/db:ro
      - data:/var/lib/db
      - /scratch
      - type: tmpfs
        target: /run
        tmpfs: {size: 64m, mode: 1777}
      - type: bind
        source: /srv/logs
        target: /logs
        bind: {propagation: rshared}
      - shared:/shared
      - type: volume
        source: cache
        target: /cache
        volume: {nocopy: true}
    tmpfs: /tmp:size=16m
volumes:
  data:
    driver: local
    driver_opts: {type: none}
    labels: {backup: daily}
  shared:
    external: true
  cache:
    name: global-cache
`})
	st, err := load(t, dir, nil, "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	stackLabel := map[string]string{compose.LabelNamespace: "app"}
	diff(t, "mounts", &shoalpb.ContainerSpec{Mounts: service(t, st, "app_db").Task.Container.Mounts}, &shoalpb.ContainerSpec{Mounts: []*shoalpb.Mount{
		{Type: shoalpb.Mount_TYPE_BIND, Source: filepath.Join(dir, "conf"), Target: "/etc/db", ReadOnly: true},
		{Type: shoalpb.Mount_TYPE_VOLUME, Source: "app_data", Target: "/var/lib/db", VolumeDriver: "local",
			VolumeDriverOptions: map[string]string{"type": "none"}, VolumeLabels: map[string]string{"backup": "daily", compose.LabelNamespace: "app"}},
		{Type: shoalpb.Mount_TYPE_VOLUME, Target: "/scratch"},
		{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/run", TmpfsSizeBytes: 64 << 20, TmpfsMode: 0o1777},
		{Type: shoalpb.Mount_TYPE_BIND, Source: "/srv/logs", Target: "/logs", BindPropagation: "rshared"},
		{Type: shoalpb.Mount_TYPE_VOLUME, Source: "shared", Target: "/shared"},
		{Type: shoalpb.Mount_TYPE_VOLUME, Source: "global-cache", Target: "/cache", VolumeNocopy: true, VolumeLabels: stackLabel},
		{Type: shoalpb.Mount_TYPE_TMPFS, Target: "/tmp", TmpfsSizeBytes: 16 << 20},
	}})
}

func TestDependsOn(t *testing.T) {
	st := mustLoad(t, `
services:
  app:
    image: busybox
    depends_on:
      db:
        condition: service_healthy
      cache:
        condition: service_started
      migrate:
        condition: service_completed_successfully
    links: [legacy]
  db:
    image: postgres
  cache:
    image: redis
    depends_on: [db]
  migrate:
    image: busybox
    deploy:
      mode: replicated-job
  legacy:
    image: busybox
`)
	diff(t, "app's dependencies", &shoalpb.ServiceSpec{DependsOn: service(t, st, "app_app").DependsOn}, &shoalpb.ServiceSpec{DependsOn: []*shoalpb.ServiceDependency{
		{Service: "app_cache", Condition: shoalpb.ServiceDependency_CONDITION_STARTED},
		{Service: "app_db", Condition: shoalpb.ServiceDependency_CONDITION_HEALTHY},
		{Service: "app_migrate", Condition: shoalpb.ServiceDependency_CONDITION_COMPLETED_SUCCESSFULLY},
	}})
	diff(t, "cache's dependencies", &shoalpb.ServiceSpec{DependsOn: service(t, st, "app_cache").DependsOn}, &shoalpb.ServiceSpec{DependsOn: []*shoalpb.ServiceDependency{
		{Service: "app_db"},
	}})
	if !hasWarning(st, "Ignoring unsupported options: links") {
		t.Errorf("links not warned about: %q", st.Warnings)
	}
}

func hasWarning(st *compose.Stack, w string) bool {
	for _, x := range st.Warnings {
		if x == w {
			return true
		}
	}
	return false
}

func TestWarnings(t *testing.T) {
	st := mustLoad(t, `
version: "3.8"
x-common: &common
  image: busybox
services:
  a:
    <<: *common
    build: .
    privileged: true
    container_name: fixed
    x-note: fine
  b:
    <<: *common
    privileged: false
    cap_add: [NET_ADMIN]
    expose: ["80"]
    profiles: [debug]
    deploy:
      resources:
        limits:
          pids: 100
secrets:
  token:
    file: ./token
`)
	want := []string{
		"Ignoring unsupported options: build, cap_add, deploy.resources.limits.pids, privileged, profiles, secrets",
		"Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n\n" +
			"expose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
	}
	if d := cmp.Diff(want, st.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
	// A service behind a profile is still part of the stack.
	service(t, st, "app_b")
}

func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	var ce *compose.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %q (%T) is not a *compose.Error", err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestInvalidFiles(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"replicas not a number", "services:\n  a:\n    image: x\n    deploy:\n      replicas: lots\n",
			`docker-compose.yml: services.a.deploy.replicas must be a number (got "lots")`},
		{"replicas wrong type", "services:\n  a:\n    image: x\n    deploy:\n      replicas: [1]\n",
			`docker-compose.yml: services.a.deploy.replicas must be a integer`},
		{"bad duration", "services:\n  a:\n    image: x\n    stop_grace_period: 5 parsecs\n",
			`docker-compose.yml: services.a.stop_grace_period must be a duration such as 10s or 1m30s (got "5 parsecs")`},
		{"bad healthcheck duration", "services:\n  a:\n    image: x\n    healthcheck:\n      interval: soon\n",
			`docker-compose.yml: services.a.healthcheck.interval must be a duration such as 10s or 1m30s (got "soon")`},
		{"unknown top-level key", "services:\n  a:\n    image: x\nservicez: {}\n",
			`docker-compose.yml: unknown top-level key 'servicez'`},
		{"unknown service key", "services:\n  a:\n    image: x\n    imgae: y\n",
			`docker-compose.yml: services.a.imgae is not a known key`},
		{"unknown deploy key", "services:\n  a:\n    image: x\n    deploy:\n      replica: 2\n",
			`docker-compose.yml: services.a.deploy has unknown key 'replica'`},
		{"wrong type", "services:\n  a:\n    image: [x]\n",
			`docker-compose.yml: services.a.image must be a string`},
		{"missing image", "services:\n  a:\n    command: sleep 1\n",
			`docker-compose.yml: services.a.image is required`},
		{"build only", "services:\n  a:\n    build: .\n",
			`docker-compose.yml: services.a.image is required`},
		{"bad memory", "services:\n  a:\n    image: x\n    deploy:\n      resources:\n        limits:\n          memory: lots\n",
			`docker-compose.yml: services.a.deploy.resources.limits.memory must be a size such as 512m or 1g (got "lots")`},
		{"bad mode", "services:\n  a:\n    image: x\n    deploy:\n      mode: everywhere\n",
			`docker-compose.yml: services.a.deploy.mode must be replicated, global, replicated-job or global-job (got "everywhere")`},
		{"replicas with global", "services:\n  a:\n    image: x\n    deploy:\n      mode: global\n      replicas: 2\n",
			`docker-compose.yml: services.a.deploy.replicas can only be used with replicated or replicated-job mode, not global`},
		{"bad restart condition", "services:\n  a:\n    image: x\n    deploy:\n      restart_policy:\n        condition: always\n",
			`docker-compose.yml: services.a.deploy.restart_policy.condition must be none, on-failure or any (got "always")`},
		{"bad endpoint mode", "services:\n  a:\n    image: x\n    deploy:\n      endpoint_mode: magic\n",
			`docker-compose.yml: services.a.deploy.endpoint_mode must be vip or dnsrr (got "magic")`},
		{"bad update order", "services:\n  a:\n    image: x\n    deploy:\n      update_config:\n        order: random\n",
			`docker-compose.yml: services.a.deploy.update_config.order value must be one of 'start-first', 'stop-first'`},
		{"job with update config", "services:\n  a:\n    image: x\n    deploy:\n      mode: replicated-job\n      update_config: {parallelism: 2}\n",
			`docker-compose.yml: services.a.deploy.update_config cannot be used with replicated-job mode`},
		{"undefined network", "services:\n  a:\n    image: x\n    networks: [nowhere]\n",
			`docker-compose.yml: services.a refers to network "nowhere", which is not defined in the top-level networks`},
		{"undefined dependency", "services:\n  a:\n    image: x\n    depends_on: [b]\n",
			`docker-compose.yml: services.a.depends_on names service "b", which is not defined`},
		{"dependency cycle", "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
			`docker-compose.yml: services.a.depends_on makes a dependency cycle: a -> b -> a`},
		{"completed on a service", "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_completed_successfully}\n  b:\n    image: x\n",
			`docker-compose.yml: services.a.depends_on.b.condition service_completed_successfully needs b to be a job`},
		{"forbidden key", "services:\n  a:\n    image: x\n    mem_limit: 1g\n",
			`docker-compose.yml: services.a.mem_limit is not supported: Set resource limits using deploy.resources`},
		{"port range", "services:\n  a:\n    image: x\n    ports: [{target: 80, published: \"8000-8010\"}]\n",
			`docker-compose.yml: services.a.ports[0].published is a range (8000-8010)`},
		{"missing variable", "services:\n  a:\n    image: ${IMAGE:?set IMAGE to the image to run}\n",
			`docker-compose.yml: services.a.image: required variable IMAGE is missing a value: set IMAGE to the image to run`},
		{"invalid yaml", "services:\n  a:\n   image: x\n  b: : :\n",
			`docker-compose.yml: is not valid YAML: line 4`},
		{"no services", "services: {}\n",
			`docker-compose.yml: defines no services`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, map[string]string{"docker-compose.yml": tc.content})
			st, err := load(t, dir, nil, "docker-compose.yml")
			if err == nil {
				t.Fatalf("loaded %v; want error %q", st.Spec, tc.want)
			}
			// The file is named as the user gave it.
			got := strings.ReplaceAll(err.Error(), filepath.Join(dir, "docker-compose.yml"), "docker-compose.yml")
			if !strings.HasPrefix(got, "docker-compose.yml: ") || !strings.Contains(got, strings.TrimPrefix(tc.want, "docker-compose.yml: ")) {
				t.Fatalf("error:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestMergeAndAttribution(t *testing.T) {
	dir := project(t, map[string]string{
		"base.yml": "services:\n  web:\n    image: nginx:1\n    deploy:\n      replicas: 2\n  db:\n    image: postgres\n",
		"prod.yml": "services:\n  web:\n    image: nginx:2\n    environment: [MODE=prod]\n",
		"bad.yml":  "services:\n  db:\n    deploy:\n      replicas: many\n",
		"bad2.yml": "services:\n  web:\n    stop_grace_period: later\n",
	})
	st, err := load(t, dir, nil, "base.yml", "prod.yml")
	if err != nil {
		t.Fatal(err)
	}
	web := service(t, st, "app_web")
	if web.Task.Container.Image != "nginx:2" || web.GetReplicated().GetReplicas() != 2 || web.Task.Container.Env[0] != "MODE=prod" {
		t.Fatalf("merged web: %v", web)
	}
	if web.Labels[compose.LabelImage] != "nginx:2" {
		t.Errorf("image label %q", web.Labels[compose.LabelImage])
	}
	// An error brought by the second file names it, not the first.
	for _, bad := range []string{"bad.yml", "bad2.yml"} {
		_, err = compose.Load(context.Background(), "app", compose.Options{Files: []string{filepath.Join(dir, "base.yml"), filepath.Join(dir, bad)}})
		wantError(t, err, filepath.Join(dir, bad)+": services.")
	}
	// A file that does not exist is named.
	_, err = load(t, dir, nil, "base.yml", "missing.yml")
	wantError(t, err, "missing.yml: cannot be read: no such file or directory")
}

func TestInterpolation(t *testing.T) {
	dir := project(t, map[string]string{
		"docker-compose.yml": "services:\n  web:\n    image: ${IMAGE}:${TAG:-latest}\n    environment:\n      - FROM_ENV\n      - GREETING=${GREETING}\n",
		".env":               "IMAGE=from-dotenv\nTAG=1.0\nGREETING=hello\n",
	})
	st, err := load(t, dir, []string{"IMAGE=from-env", "FROM_ENV=passed"}, "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := service(t, st, "app_web").Task.Container
	// The environment wins over .env, which fills in the rest.
	if c.Image != "from-env:1.0" {
		t.Errorf("image %q, want from-env:1.0", c.Image)
	}
	if d := cmp.Diff([]string{"FROM_ENV=passed", "GREETING=hello"}, c.Env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}
	if !strings.Contains(string(st.Spec.Compose), "from-env:1.0") {
		t.Errorf("the kept model is not interpolated:\n%s", st.Spec.Compose)
	}

	dir = project(t, map[string]string{"docker-compose.yml": "services:\n  web:\n    image: busybox:${TAG}\n"})
	st, err = load(t, dir, nil, "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(st, `The "TAG" variable is not set. Defaulting to a blank string.`) {
		t.Errorf("no warning for an unset variable: %q", st.Warnings)
	}
}

func TestEnvFile(t *testing.T) {
	dir := project(t, map[string]string{
		"docker-compose.yml": "services:\n  web:\n    image: busybox\n    env_file: [web.env]\n    environment: [B=override]\n",
		"web.env":            "A=from-file\nB=from-file\n",
	})
	st, err := load(t, dir, nil, "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"A=from-file", "B=override"}, service(t, st, "app_web").Task.Container.Env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}
}

func TestStdin(t *testing.T) {
	st, err := compose.Load(context.Background(), "app", compose.Options{
		Files: []string{"-"}, Stdin: strings.NewReader("services:\n  s:\n    image: busybox\n"), WorkingDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	service(t, st, "app_s")
}

func TestStackNames(t *testing.T) {
	for _, name := range []string{"", "-x", "a b", "x/y", strings.Repeat("a", compose.MaxStackNameLength+1)} {
		if compose.ValidateStackName(name) == nil {
			t.Errorf("stack name %q accepted", name)
		}
	}
	// Upper case and dots are fine, as docker allows them; networks and
	// volumes are scoped with the name as given.
	dir := project(t, map[string]string{"docker-compose.yml": "services:\n  s:\n    image: busybox\n    volumes: [data:/d]\nvolumes:\n  data: {}\n"})
	st, err := compose.Load(context.Background(), "My.App", compose.Options{Files: []string{filepath.Join(dir, "docker-compose.yml")}})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Spec.Services[0]
	if s.Name != "My.App_s" || st.Spec.Networks[0].Name != "My.App_default" || s.Task.Container.Mounts[0].Source != "My.App_data" {
		t.Fatalf("names: service %s, network %s, volume %s", s.Name, st.Spec.Networks[0].Name, s.Task.Container.Mounts[0].Source)
	}
}

func TestNetworkMode(t *testing.T) {
	st := mustLoad(t, `
services:
  isolated:
    image: busybox
    network_mode: none
  hostnet:
    image: busybox
    network_mode: host
`)
	// none is honoured: no network at all; host is not (as docker stack
	// deploy, the service joins the default network) and is warned about.
	if n := service(t, st, "app_isolated").Task.Networks; n != nil {
		t.Errorf("network_mode none joins %v", n)
	}
	diff(t, "hostnet's attachments", &shoalpb.TaskSpec{Networks: service(t, st, "app_hostnet").Task.Networks}, &shoalpb.TaskSpec{Networks: []*shoalpb.NetworkAttachmentConfig{
		{Target: "app_default", Aliases: []string{"hostnet"}},
	}})
	if len(st.Spec.Networks) != 1 || st.Spec.Networks[0].Name != "app_default" {
		t.Errorf("networks %v", st.Spec.Networks)
	}
	if d := cmp.Diff([]string{"Ignoring unsupported options: network_mode"}, st.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}

	st = mustLoad(t, "services:\n  s:\n    image: busybox\n    network_mode: none\n")
	if len(st.Spec.Networks) != 0 || len(st.Warnings) != 0 {
		t.Errorf("a stack whose services join no network: networks %v, warnings %q", st.Spec.Networks, st.Warnings)
	}
}
