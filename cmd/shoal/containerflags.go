package main

import (
	"time"

	"github.com/spf13/pflag"
)

// containerFlags are the flags `service create` and `service update` share
// for a task's container: resources, restart policy, health check and how
// the container is run. create fills a new spec from them; update changes
// only what was given.
type containerFlags struct {
	reserveCPU, limitCPU       cpuValue
	reserveMemory, limitMemory sizeValue

	restartCondition   *enumValue
	restartDelay       durationValue
	restartMaxAttempts uintValue
	restartWindow      durationValue

	healthCmd         string
	healthInterval    durationValue
	healthTimeout     durationValue
	healthRetries     uintValue
	healthStartPeriod durationValue
	noHealthcheck     bool

	stopGracePeriod durationValue
	stopSignal      string
	entrypoint      shellWordsValue
	workdir         string
	user            string
	hostname        string
}

func newContainerFlags() containerFlags {
	return containerFlags{
		restartCondition:  newEnum("restart condition", "", "none", "on-failure", "any"),
		healthInterval:    durationValue{min: time.Millisecond},
		healthTimeout:     durationValue{min: time.Millisecond},
		healthStartPeriod: durationValue{min: time.Millisecond},
	}
}

// add registers the flags; creating says the defaults a new service gets
// (an update keeps what the service has).
func (o *containerFlags) add(f *pflag.FlagSet, creating bool) {
	def := func(create, update string) string {
		if creating {
			return create
		}
		return update
	}
	f.Var(&o.reserveCPU, "reserve-cpu", "Reserve CPUs")
	f.Var(&o.reserveMemory, "reserve-memory", def("Reserve memory (512m, 1g, ...)", "Reserve memory"))
	f.Var(&o.limitCPU, "limit-cpu", "Limit CPUs")
	f.Var(&o.limitMemory, "limit-memory", def("Limit memory (512m, 1g, ...)", "Limit memory"))
	f.Var(o.restartCondition, "restart-condition", `Restart when condition is met ("none", "on-failure", "any")`+
		def(` (default "any"; "on-failure" for jobs)`, ""))
	f.Var(&o.restartDelay, "restart-delay", "Delay between restart attempts (ns|us|ms|s|m|h)"+def(" (default 5s)", ""))
	f.Var(&o.restartMaxAttempts, "restart-max-attempts", "Maximum number of restarts before giving up")
	f.Var(&o.restartWindow, "restart-window", "Window used to evaluate the restart policy (ns|us|ms|s|m|h)")
	f.StringVar(&o.healthCmd, "health-cmd", "", "Command to run to check health")
	f.Var(&o.healthInterval, "health-interval", "Time between running the check (ms|s|m|h)")
	f.Var(&o.healthTimeout, "health-timeout", "Maximum time to allow one check to run (ms|s|m|h)")
	f.Var(&o.healthRetries, "health-retries", "Consecutive failures needed to report unhealthy")
	f.Var(&o.healthStartPeriod, "health-start-period", "Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)")
	f.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	f.Var(&o.stopGracePeriod, "stop-grace-period", "Time to wait before force killing a container (ns|us|ms|s|m|h)"+def(" (default 10s)", ""))
	f.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	f.Var(&o.entrypoint, "entrypoint", "Overwrite the default ENTRYPOINT of the image")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(&o.hostname, "hostname", "", "Container hostname")
}
