// Command kafkalocal fetches, starts and stops a real Apache Kafka broker
// (single KRaft node) on the local JDK, for the Makefile and for developers.
// It needs java and, the first time, mvn; see internal/kafkalocal.
//
// Usage:
//
//	kafkalocal [--home DIR] jars               fetch the jars into DIR (once)
//	kafkalocal [--home DIR] up                 start a broker that outlives the command
//	kafkalocal [--home DIR] down               stop the broker that up started
//	kafkalocal [--home DIR] run -- CMD ARGS... run CMD with KAFKA_BROKERS set
//
// DIR defaults to $CAPIRELAY_KAFKA_HOME, else $HOME/.cache/capirelay/kafka.
// up records its broker in DIR/run/state.json and prints
// KAFKA_BROKERS=127.0.0.1:PORT. run uses KAFKA_BROKERS as it is if the
// environment has it; otherwise it starts a broker, runs CMD, stops the
// broker (also on SIGINT or SIGTERM) and exits with CMD's exit code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/capirelay/capirelay/internal/kafkalocal"
)

const usage = `usage: kafkalocal [--home DIR] jars | up | down | run -- CMD [ARGS...]`

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kafkalocal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", kafkalocal.DefaultHome(), "jar cache and run state `DIR`")
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	rest := fs.Args()[1:]
	switch fs.Arg(0) {
	case "jars":
		return jars(*home, stdout, stderr)
	case "up":
		return up(*home, stdout, stderr)
	case "down":
		return down(*home, stderr)
	case "run":
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			fmt.Fprintln(stderr, "kafkalocal run: no command given\n"+usage)
			return 2
		}
		return run(*home, rest, stderr)
	default:
		fmt.Fprintf(stderr, "kafkalocal: unknown subcommand %q\n%s\n", fs.Arg(0), usage)
		return 2
	}
}

func jars(home string, stdout, stderr io.Writer) int {
	began := time.Now()
	dir, err := kafkalocal.EnsureJars(context.Background(), home)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "kafkalocal: Kafka %s jars ready in %.1fs\n", kafkalocal.Version, time.Since(began).Seconds())
	fmt.Fprintln(stdout, dir)
	return 0
}

// state is what up leaves in DIR/run/state.json for down.
type state struct {
	Addr    string    `json:"addr"`
	PID     int       `json:"pid"`
	Dir     string    `json:"dir"`
	Log     string    `json:"log"`
	Started time.Time `json:"started"`
}

func statePath(home string) string { return filepath.Join(home, "run", "state.json") }

// readState returns the recorded broker, or ok=false if there is none.
func readState(home string) (st state, ok bool, err error) {
	raw, err := os.ReadFile(statePath(home))
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	if err != nil {
		return st, false, fmt.Errorf("kafkalocal: read %s: %w", statePath(home), err)
	}
	return st, true, nil
}

func up(home string, stdout, stderr io.Writer) int {
	st, ok, err := readState(home)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if ok {
		if kafkalocal.Running(st.PID, st.Dir) {
			fmt.Fprintf(stderr, "kafkalocal: a broker is already running at %s (pid %d, log %s); stop it with `kafkalocal down`\n",
				st.Addr, st.PID, st.Log)
			fmt.Fprintln(stdout, "KAFKA_BROKERS="+st.Addr)
			return 1
		}
		fmt.Fprintf(stderr, "kafkalocal: clearing stale state of a broker that is gone (pid %d)\n", st.PID)
		if err := kafkalocal.StopProcess(st.PID, st.Dir); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		_ = os.Remove(statePath(home))
	}
	runDir := filepath.Dir(statePath(home))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		fmt.Fprintf(stderr, "kafkalocal: create %s: %v\n", runDir, err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	b, err := kafkalocal.Start(ctx, kafkalocal.Options{Home: home, ParentDir: runDir, Detached: true})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	st = state{Addr: b.Addr(), PID: b.PID(), Dir: b.Dir(), Log: b.LogPath(), Started: time.Now().UTC()}
	raw, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath(home), append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "kafkalocal: write %s: %v; stopping the broker\n", statePath(home), err)
		_ = kafkalocal.StopProcess(st.PID, st.Dir)
		return 1
	}
	fmt.Fprintf(stderr, "kafkalocal: Kafka %s broker started in %.1fs (pid %d, log %s); stop it with `kafkalocal down`\n",
		kafkalocal.Version, b.StartDuration().Seconds(), st.PID, st.Log)
	fmt.Fprintln(stdout, "KAFKA_BROKERS="+st.Addr)
	return 0
}

func down(home string, stderr io.Writer) int {
	st, ok, err := readState(home)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if !ok {
		fmt.Fprintf(stderr, "kafkalocal: no broker to stop (no %s)\n", statePath(home))
		return 0
	}
	if err := kafkalocal.StopProcess(st.PID, st.Dir); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := os.Remove(statePath(home)); err != nil {
		fmt.Fprintf(stderr, "kafkalocal: remove %s: %v\n", statePath(home), err)
		return 1
	}
	fmt.Fprintf(stderr, "kafkalocal: stopped the broker at %s (pid %d)\n", st.Addr, st.PID)
	return 0
}

// run runs argv with KAFKA_BROKERS set, starting and stopping a broker
// around it unless the environment already names one. SIGINT and SIGTERM
// abandon a broker start, or are passed on to the running command.
func run(home string, argv []string, stderr io.Writer) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu          sync.Mutex
		child       *os.Process
		interrupted bool
	)
	go func() {
		for s := range sigs {
			mu.Lock()
			if child != nil {
				_ = child.Signal(s)
			} else {
				interrupted = true
				cancel()
			}
			mu.Unlock()
		}
	}()

	env := os.Environ()
	if addr := os.Getenv("KAFKA_BROKERS"); addr != "" {
		fmt.Fprintf(stderr, "kafkalocal: using KAFKA_BROKERS=%s from the environment\n", addr)
	} else {
		b, err := kafkalocal.Start(ctx, kafkalocal.Options{Home: home})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer func() {
			if err := b.Stop(); err != nil {
				fmt.Fprintln(stderr, err)
			}
		}()
		fmt.Fprintf(stderr, "kafkalocal: Kafka %s broker KAFKA_BROKERS=%s started in %.1fs\n",
			kafkalocal.Version, b.Addr(), b.StartDuration().Seconds())
		env = append(env, "KAFKA_BROKERS="+b.Addr())
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	mu.Lock()
	if interrupted {
		mu.Unlock()
		return 130
	}
	err := cmd.Start()
	if err == nil {
		child = cmd.Process
	}
	mu.Unlock()
	if err != nil {
		fmt.Fprintf(stderr, "kafkalocal run: %v\n", err)
		return 127
	}
	err = cmd.Wait()
	mu.Lock()
	child = nil
	mu.Unlock()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exitErr.ExitCode()
	default:
		fmt.Fprintf(stderr, "kafkalocal run: %v\n", err)
		return 1
	}
}
