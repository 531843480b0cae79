package kafkalocal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadyTopic is the topic (one partition) that Start and WaitReady create and
// produce to in order to prove that a broker is ready; it stays on the broker.
const ReadyTopic = "_kafkalocal-ready"

// Options configures Start. The zero value is usable.
type Options struct {
	// Home is the jar cache given to EnsureJars; empty means DefaultHome().
	Home string
	// ParentDir is where the broker's working folder (server.properties,
	// data, broker.log) is created; empty means os.TempDir().
	ParentDir string
	// StartTimeout bounds the wait, after the JVM is launched, for the broker
	// to accept a produce request; 0 means 60 s.
	StartTimeout time.Duration
	// Heap is the JVM's maximum heap (-Xmx); empty means "512m".
	Heap string
	// Properties are written into server.properties over the defaults.
	Properties map[string]string
	// Detached runs the JVM in a session of its own and without a
	// parent-death signal, so that it outlives this process; stop it later
	// with StopProcess(PID(), Dir()). Without Detached the JVM is killed when
	// this process dies.
	Detached bool
	// Logf, if set, receives a line when the broker is ready.
	Logf func(format string, args ...any)
}

// Broker is a running single-node broker started by Start.
type Broker struct {
	addr     string
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the JVM has exited and been reaped
	waitErr  error         // the JVM's exit, valid after exited is closed
	startDur time.Duration

	stopOnce sync.Once
	stopErr  error
}

// Addr is the broker's PLAINTEXT address, "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.addr }

// Dir is the broker's working folder (configuration, data, log); Stop
// removes it.
func (b *Broker) Dir() string { return b.dir }

// LogPath is the file that receives the JVM's stdout and stderr. It lives
// in Dir and is removed by Stop.
func (b *Broker) LogPath() string { return filepath.Join(b.dir, "broker.log") }

// PID is the JVM's process id, which is also its process group id.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// StartDuration is how long Start took, from its call to the first
// successful produce (including EnsureJars, which is instant once cached).
func (b *Broker) StartDuration() time.Duration { return b.startDur }

// Start runs a Kafka broker on the local JDK and returns once a franz-go
// client has created ReadyTopic on it and produced a record to it.
//
// The broker is one KRaft node that is both broker and controller, with
// PLAINTEXT and CONTROLLER listeners on free random ports of 127.0.0.1, a
// fresh log folder, replication factor 1 for every internal topic,
// auto-created topics of one partition and no initial rebalance delay. It
// calls EnsureJars first, so the first call may run Maven.
//
// If the broker is not ready within opts.StartTimeout (or ctx ends, or the
// JVM exits), Start kills it, removes its folder and returns an error that
// ends with the last 40 lines of its log. A failure to bind a port that
// another process took after it was picked is retried with new ports, up to
// three times. ctx matters only until Start returns.
//
// Unless opts.Detached is set, the JVM is its own process group (so a
// terminal's Ctrl-C does not reach it; call Stop) and gets SIGKILL through
// the Linux parent-death signal if this process dies without calling Stop.
// Its folder is then left behind in opts.ParentDir.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	began := time.Now()
	libs, err := EnsureJars(ctx, opts.Home)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		b, err := startOnce(ctx, libs, opts)
		if err == nil {
			b.startDur = time.Since(began)
			if opts.Logf != nil {
				opts.Logf("kafkalocal: Kafka %s broker ready at %s in %.1fs (log %s)",
					Version, b.addr, b.startDur.Seconds(), b.LogPath())
			}
			return b, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return nil, err
		}
	}
}

var errPortTaken = errors.New("a chosen port was taken before the broker bound it")

func startOnce(ctx context.Context, libs string, opts Options) (_ *Broker, err error) {
	dir, err := os.MkdirTemp(opts.ParentDir, "kafkalocal-")
	if err != nil {
		return nil, fmt.Errorf("kafkalocal: create broker folder: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	ctrl := "127.0.0.1:" + strconv.Itoa(ports[1])

	props := map[string]string{
		"process.roles":                       "broker,controller",
		"node.id":                             "1",
		"controller.quorum.bootstrap.servers": ctrl,
		"listeners":                           "PLAINTEXT://" + addr + ",CONTROLLER://" + ctrl,
		"advertised.listeners":                "PLAINTEXT://" + addr,
		"controller.listener.names":           "CONTROLLER",
		"listener.security.protocol.map":      "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"log.dirs":                            filepath.Join(dir, "data"),
		"num.partitions":                      "1",
		"auto.create.topics.enable":           "true",
		"group.initial.rebalance.delay.ms":    "0",

		"offsets.topic.replication.factor":                 "1",
		"offsets.topic.num.partitions":                     "1",
		"transaction.state.log.replication.factor":         "1",
		"transaction.state.log.min.isr":                    "1",
		"transaction.state.log.num.partitions":             "1",
		"share.coordinator.state.topic.replication.factor": "1",
		"share.coordinator.state.topic.min.isr":            "1",
		"share.coordinator.state.topic.num.partitions":     "1",
	}
	for k, v := range opts.Properties {
		props[k] = v
	}
	propsPath := filepath.Join(dir, "server.properties")
	if err := os.WriteFile(propsPath, []byte(renderProperties(props)), 0o644); err != nil {
		return nil, fmt.Errorf("kafkalocal: write %s: %w", propsPath, err)
	}
	log4jPath := filepath.Join(dir, "log4j2.properties")
	if err := os.WriteFile(log4jPath, []byte(log4jConfig), 0o644); err != nil {
		return nil, fmt.Errorf("kafkalocal: write %s: %w", log4jPath, err)
	}

	java := javaPath()
	cp := filepath.Join(libs, "*")
	logProp := "-Dlog4j2.configurationFile=" + log4jPath
	// The formatter is short-lived: the C1 compiler alone starts it faster.
	format := exec.CommandContext(ctx, java, "-XX:TieredStopAtLevel=1", logProp, "-cp", cp, "kafka.tools.StorageTool",
		"format", "-t", newClusterID(), "-c", propsPath, "--standalone")
	if out, err := format.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kafkalocal: %s kafka.tools.StorageTool format -c %s failed: %w\n%s",
			java, propsPath, err, lastLines(string(out), 40))
	}

	heap := opts.Heap
	if heap == "" {
		heap = "512m"
	}
	logPath := filepath.Join(dir, "broker.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kafkalocal: create broker log: %w", err)
	}
	defer logFile.Close() // the JVM has its own copy of the descriptor
	cmd := exec.Command(java, "-Xmx"+heap, "-Djava.awt.headless=true", logProp,
		"-cp", cp, "kafka.Kafka", propsPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if opts.Detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	b := &Broker{addr: addr, dir: dir, cmd: cmd, exited: make(chan struct{})}
	if err := b.launch(!opts.Detached); err != nil {
		return nil, fmt.Errorf("kafkalocal: start %s kafka.Kafka: %w", java, err)
	}

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	readyCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		select {
		case <-b.exited:
			cancel()
		case <-readyCtx.Done():
		}
	}()
	if err := WaitReady(readyCtx, addr); err != nil {
		why := fmt.Sprintf("not ready within %s: %v", timeout, err)
		select {
		case <-b.exited:
			why = fmt.Sprintf("the JVM exited (%v) before the broker was ready", b.waitErr)
		default:
			if ctx.Err() != nil {
				why = fmt.Sprintf("start abandoned: %v", ctx.Err())
			}
		}
		b.kill()
		tail := tailFile(logPath, 40)
		err = fmt.Errorf("kafkalocal: broker %s (folder %s): %s\n--- last lines of %s ---\n%s",
			addr, dir, why, logPath, tail)
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, err
	}
	return b, nil
}

// launch starts the JVM and reaps it in a goroutine. With Pdeathsig, that
// goroutine holds its OS thread for the JVM's whole life: Linux sends the
// parent-death signal when the forking *thread* exits, and the Go runtime
// may end a thread that another goroutine locked and left locked. Held
// here, the thread ends only with this process.
func (b *Broker) launch(lockThread bool) error {
	started := make(chan error, 1)
	go func() {
		if lockThread {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		if err := b.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		b.waitErr = b.cmd.Wait()
		close(b.exited)
	}()
	return <-started
}

// kill ends the JVM's process group at once and waits until it is reaped.
func (b *Broker) kill() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.exited
}

// Stop ends the broker: SIGTERM to its process group, up to 10 s for a clean
// shutdown, then SIGKILL; then it removes Dir. It waits until the JVM has
// exited and is safe to call more than once and concurrently; later calls
// return the first call's result.
func (b *Broker) Stop() error {
	b.stopOnce.Do(func() {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			b.kill()
		}
		if err := os.RemoveAll(b.dir); err != nil {
			b.stopErr = fmt.Errorf("kafkalocal: remove broker folder: %w", err)
		}
	})
	return b.stopErr
}

// StopProcess stops a broker that another process started with
// Options.Detached, given its PID and Dir: SIGTERM to its process group, up
// to 10 s for a clean shutdown, then SIGKILL; then it removes dir. It only
// signals pid if that process is still a kafka.Kafka JVM whose
// server.properties is in dir, so a stale pid that now belongs to another
// program is left alone. It returns once the broker is gone.
func StopProcess(pid int, dir string) error {
	if pid > 0 && isBroker(pid, dir) {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		if !waitGone(pid, dir, 10*time.Second) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			if !waitGone(pid, dir, 5*time.Second) {
				return fmt.Errorf("kafkalocal: broker pid %d survived SIGKILL", pid)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("kafkalocal: remove broker folder: %w", err)
	}
	return nil
}

// Running reports whether pid is a live broker JVM whose configuration is in
// dir, as StopProcess checks it.
func Running(pid int, dir string) bool { return pid > 0 && isBroker(pid, dir) }

// isBroker reads /proc/pid/cmdline: a zombie or a vanished process has none.
func isBroker(pid int, dir string) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(raw), "\x00")
	hasMain, hasProps := false, false
	for _, a := range args {
		hasMain = hasMain || a == "kafka.Kafka"
		hasProps = hasProps || a == filepath.Join(dir, "server.properties")
	}
	return hasMain && hasProps
}

func waitGone(pid int, dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for isBroker(pid, dir) {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// WaitReady returns nil once a client can create ReadyTopic on the broker at
// addr (or finds it there) and produce a record to it. It retries until ctx
// ends and then returns ctx's error with the last failure.
func WaitReady(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.DialTimeout(2*time.Second),
	)
	if err != nil {
		return fmt.Errorf("kafkalocal: client for %s: %w", addr, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := adm.CreateTopic(attempt, 1, 1, nil, ReadyTopic)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			err = cl.ProduceSync(attempt, &kgo.Record{Topic: ReadyTopic, Value: []byte("ready")}).FirstErr()
		} else {
			err = fmt.Errorf("create topic %s: %w", ReadyTopic, err)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// log4jConfig keeps the broker log short: warnings, plus the line that says
// the server started.
const log4jConfig = `status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
`

func renderProperties(props map[string]string) string {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by capirelay internal/kafkalocal.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, props[k])
	}
	return b.String()
}

// javaPath prefers $JAVA_HOME/bin/java, then java on PATH.
func javaPath() string {
	if h := os.Getenv("JAVA_HOME"); h != "" {
		if p := filepath.Join(h, "bin", "java"); isExecutable(p) {
			return p
		}
	}
	return "java"
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// newClusterID returns a random KRaft cluster id: 16 bytes in unpadded
// URL-safe base64, not starting with '-', as kafka.tools.StorageTool
// random-uuid makes them.
func newClusterID() string {
	for {
		var u [16]byte
		_, _ = rand.Read(u[:])
		if id := base64.RawURLEncoding.EncodeToString(u[:]); id[0] != '-' {
			return id
		}
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kafkalocal: find a free port on 127.0.0.1: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tailFile(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return lastLines(string(bytes.ToValidUTF8(raw, []byte("?"))), n)
}
