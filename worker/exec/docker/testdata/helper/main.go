// Command helper is the program of the docker executor tests' image. It
// runs its arguments as steps, in order:
//
//	out:TEXT      print TEXT to stdout
//	err:TEXT      print TEXT to stderr
//	touch:PATH    create PATH (and its directory); exit 1 if it cannot
//	rm:PATH       remove PATH
//	exists:PATH   exit 0 if PATH exists, 1 if not (a health check)
//	mount:PATH    print the mountinfo line of the mount at PATH
//	cat:PATH      print the contents of PATH
//	hostname      print hostname=<the container's hostname>
//	pause:DUR     sleep DUR
//	ignore-term   ignore SIGTERM from now on
//	wait:SIG      block until signal SIG (TERM, INT, USR1), then exit 0
//	exit:N        exit with code N
//
// and exits 0 after the last.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var signals = map[string]os.Signal{"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "USR1": syscall.SIGUSR1}

func main() {
	for _, step := range os.Args[1:] {
		verb, arg, _ := strings.Cut(step, ":")
		switch verb {
		case "out":
			fmt.Fprintln(os.Stdout, arg)
		case "err":
			fmt.Fprintln(os.Stderr, arg)
		case "touch":
			if err := os.MkdirAll(filepath.Dir(arg), 0o755); err != nil {
				fail(err)
			}
			if err := os.WriteFile(arg, []byte("x"), 0o644); err != nil {
				fail(err)
			}
		case "rm":
			if err := os.Remove(arg); err != nil {
				fail(err)
			}
		case "exists":
			if _, err := os.Stat(arg); err != nil {
				os.Exit(1)
			}
			os.Exit(0)
		case "mount":
			printMount(arg)
		case "cat":
			b, err := os.ReadFile(arg)
			if err != nil {
				fail(err)
			}
			os.Stdout.Write(b)
		case "hostname":
			h, err := os.Hostname()
			if err != nil {
				fail(err)
			}
			fmt.Println("hostname=" + h)
		case "pause":
			d, err := time.ParseDuration(arg)
			if err != nil {
				fail(err)
			}
			time.Sleep(d)
		case "ignore-term":
			signal.Ignore(syscall.SIGTERM)
		case "wait":
			sig, ok := signals[arg]
			if !ok {
				fail(fmt.Errorf("unknown signal %q", arg))
			}
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, sig)
			fmt.Println("waiting for", arg)
			<-ch
			fmt.Println("got", arg)
			os.Exit(0)
		case "exit":
			code, err := strconv.Atoi(arg)
			if err != nil {
				fail(err)
			}
			os.Exit(code)
		default:
			fail(fmt.Errorf("unknown step %q", step))
		}
	}
}

func printMount(target string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		fail(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == target {
			fmt.Println(sc.Text())
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(1)
}
