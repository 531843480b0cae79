package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/consumer"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

func TestMain(m *testing.M) {
	code := kafkatest.Run(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// relayBinary builds the capirelay binary once per test binary, as `make
// build` does.
func relayBinary(t *testing.T) string { return relayBinaryTB(t) }

func relayBinaryTB(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "capirelay-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "capirelay")
		out, err := exec.Command("go", "build", "-trimpath", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

const (
	binKey   = "sk-binary-test-key-0123"
	binPixel = "px_bin"
)

// binEnv is a real broker, topics, a simulator and a config file for the
// binary.
type binEnv struct {
	t       *testing.T
	brokers []string
	topic   string
	dlq     string
	group   string
	sim     *capisim.Server
	config  string
	adm     *kadm.Client
}

func newBinEnv(t *testing.T, partitions int, sim capisim.Options, relayYAML string) *binEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary against a broker")
	}
	e := &binEnv{t: t, brokers: kafkatest.Brokers(t), topic: kafkatest.Topic(t, partitions), dlq: kafkatest.Topic(t, 1), group: kafkatest.GroupID(t)}
	var simURL string
	e.sim, simURL = newTestSim(t, sim)
	e.adm = kadm.NewClient(kafkatest.Client(t))
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  dead_letter_topic: %s
  instance_id_env: CAPIRELAY_TEST_INSTANCE
  session_timeout: 6s
api:
  base_url: %s
  key_env: CAPIRELAY_TEST_API_KEY
  pixel: %s
  initial_backoff: 20ms
  max_backoff: 200ms
relay:
  listen: "off"
  log_format: text
  log_level: info
  commit_interval: 100ms
%s
topics:
  - topic: %s
    format: json
    rules:
      - name: lead
        event:
          type: lead_created
          action_source: offline
          id: value.id
          timestamp: time.epoch_millis(value.ts)
`, strings.Join(e.brokers, ","), e.group, e.dlq, simURL, binPixel, relayYAML, e.topic)
	e.config = filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *binEnv) start(logName string) (*exec.Cmd, *os.File) {
	e.t.Helper()
	cmd := exec.Command(relayBinary(e.t), "run", "--config", e.config)
	cmd.Env = append(os.Environ(), "CAPIRELAY_TEST_API_KEY="+binKey, "CAPIRELAY_TEST_INSTANCE=relay-1")
	logf, err := os.Create(filepath.Join(e.t.TempDir(), logName))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd, logf
}

type produced struct {
	good map[string]bool // ids of good records
	bad  map[string]bool // "partition@offset" of bad records
	ends map[int32]int64
}

func (e *binEnv) produce(n, badEvery, partitions int) produced {
	e.t.Helper()
	cl := kafkatest.Client(e.t, kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	p := produced{good: map[string]bool{}, bad: map[string]bool{}, ends: map[int32]int64{}}
	recs := make([]*kgo.Record, n)
	isBad := make([]bool, n)
	ts := time.Now().UnixMilli()
	for i := range recs {
		id := "c-" + strconv.Itoa(i)
		v, _ := json.Marshal(map[string]any{"id": id, "ts": ts})
		if badEvery > 0 && i%badEvery == badEvery-1 {
			v = []byte(`{"id": "` + id + `", broken`)
			isBad[i] = true
		} else {
			p.good[id] = true
		}
		recs[i] = &kgo.Record{Topic: e.topic, Value: v}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	for i, r := range recs {
		if isBad[i] {
			p.bad[fmt.Sprintf("%d@%d", r.Partition, r.Offset)] = true
		}
		if r.Offset+1 > p.ends[r.Partition] {
			p.ends[r.Partition] = r.Offset + 1
		}
	}
	return p
}

func (e *binEnv) committed() map[int32]int64 {
	e.t.Helper()
	return committedOffsets(e.t, e.adm, e.group, e.topic)
}

func (e *binEnv) atEnd(p produced) bool {
	c := e.committed()
	for part, end := range p.ends {
		if c[part] != end {
			return false
		}
	}
	return true
}

// dlqRecords reads the whole dead-letter topic.
func (e *binEnv) dlqRecords() []*kgo.Record {
	e.t.Helper()
	ends, err := e.adm.ListEndOffsets(context.Background(), e.dlq)
	if err != nil {
		e.t.Fatal(err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl := kafkatest.Client(e.t, kgo.ConsumeTopics(e.dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of %d dead-letter records", len(out), want)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// waitLog waits until the process log holds s (the process is up and has
// installed its signal handlers).
func waitLog(t *testing.T, f *os.File, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(f.Name())
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log never showed %q:\n%s", s, logTail(f))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func logTail(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// Crash safety: the real binary is killed with SIGKILL at random moments,
// at least five times, during a run of 50,000 records, and restarted each
// time. At the end every good record's event is accepted at least once and
// every bad record is dead-lettered at least once.
func TestBinaryCrashSafety(t *testing.T) {
	const n, badEvery, partitions = 50000, 1000, 4
	// Slow the API down (latency, small batches) so the kills land mid-run.
	e := newBinEnv(t, partitions, capisim.Options{Latency: 100 * time.Millisecond},
		"  max_batch_events: 200\n  concurrency: 2\n  linger: 20ms")
	p := e.produce(n, badEvery, partitions)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, midRun := 0, 0
	for midRun < 5 && kills < 15 && !e.atEnd(p) {
		cmd, logf := e.start(fmt.Sprintf("run-%d.log", kills))
		// Kill at a random moment once the process is up (a loaded machine
		// can take seconds to start it), while it works.
		waitLog(t, logf, "capirelay starting")
		wait := time.Duration(300+rng.IntN(1500)) * time.Millisecond
		time.Sleep(wait)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
		if !e.atEnd(p) {
			midRun++ // the backlog was not done: this kill landed mid-run
		}
		t.Logf("kill %d after %v: %d events accepted so far, committed %v", kills, wait, len(e.sim.Events()), e.committed())
		if len(e.sim.Events()) == 0 && kills == 6 {
			t.Fatalf("no progress after 6 runs; last log:\n%s", logTail(logf))
		}
	}
	if midRun < 5 {
		t.Fatalf("only %d of %d kills landed before the backlog was done; the test needs 5", midRun, kills)
	}
	cmd, logf := e.start("final.log")
	waitLog(t, logf, "capirelay starting")
	deadline := time.Now().Add(3 * time.Minute)
	for !e.atEnd(p) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("offsets not at the end after the last restart (committed %v, want %v); log:\n%s", e.committed(), p.ends, logTail(logf))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final run exit: %v\n%s", err, logTail(logf))
	}
	accepted := map[string]int{}
	for _, ev := range e.sim.Events() {
		accepted[ev.ID]++
	}
	missing := 0
	for id := range p.good {
		if accepted[id] == 0 {
			missing++
		}
	}
	dead := map[string]int{}
	for _, r := range e.dlqRecords() {
		part, _ := consumer.HeaderValue(r, consumer.HeaderSourcePartition)
		off, _ := consumer.HeaderValue(r, consumer.HeaderSourceOffset)
		dead[part+"@"+off]++
	}
	deadMissing := 0
	for k := range p.bad {
		if dead[k] == 0 {
			deadMissing++
		}
	}
	st := e.sim.Stats()
	dlqDup := 0
	for _, c := range dead {
		dlqDup += c - 1
	}
	t.Logf("crash safety: %d kills (%d mid-run); %d good records, %d accepted (distinct), %d duplicates ignored by the API; %d bad records, %d dead-letter records (%d duplicates)",
		kills, midRun, len(p.good), len(accepted), st.DuplicatesIgnored, len(p.bad), len(e.dlqRecords()), dlqDup)
	if missing != 0 || deadMissing != 0 {
		t.Fatalf("LOST: %d good records never accepted, %d bad records never dead-lettered", missing, deadMissing)
	}
	if len(p.bad) != n/badEvery {
		t.Fatalf("test bug: %d bad records", len(p.bad))
	}
}

// SIGTERM: the relay stops fetching, drains, commits exactly the settled
// prefix and exits 0 within the drain deadline.
func TestBinarySIGTERMDrains(t *testing.T) {
	e := newBinEnv(t, 1, capisim.Options{Latency: 100 * time.Millisecond},
		"  max_batch_events: 100\n  concurrency: 2\n  linger: 20ms\n  drain_timeout: 20s")
	p := e.produce(20000, 0, 1)
	cmd, logf := e.start("run.log")
	deadline := time.Now().Add(60 * time.Second)
	for len(e.sim.Events()) < 1000 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no progress; log:\n%s", logTail(logf))
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v (want 0)\n%s", err, logTail(logf))
	}
	if took > 20*time.Second {
		t.Fatalf("took %v to exit, more than the 20s drain deadline", took)
	}
	accepted := map[string]bool{}
	for _, ev := range e.sim.Events() {
		accepted[ev.ID] = true
	}
	// Records were produced in id order to one partition: the settled prefix
	// is the run of accepted ids from c-0.
	prefix := int64(0)
	for accepted["c-"+strconv.FormatInt(prefix, 10)] {
		prefix++
	}
	c := e.committed()[0]
	t.Logf("SIGTERM: exited 0 in %v; %d events accepted, settled prefix %d, committed %d (of %d)", took, len(accepted), prefix, c, p.ends[0])
	if c != prefix {
		t.Fatalf("committed %d, want the settled prefix %d", c, prefix)
	}
	if c == p.ends[0] {
		t.Fatalf("the whole backlog was done before SIGTERM: the test did not exercise a drain")
	}
}

type runningBench struct{ *exec.Cmd }

func newCommand(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }
