package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/consumer"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// opsEnv is a real broker, a topic, a dead-letter topic, the simulator and a
// config writer for the in-process tool tests.
type opsEnv struct {
	t       *testing.T
	brokers []string
	topic   string
	dlq     string
	group   string
	sim     *capisim.Server
	simURL  string
	adm     *kadm.Client
}

func newOpsEnv(t *testing.T, partitions int) *opsEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a broker")
	}
	e := &opsEnv{t: t, brokers: kafkatest.Brokers(t), topic: kafkatest.Topic(t, partitions), dlq: kafkatest.Topic(t, 1), group: kafkatest.GroupID(t)}
	e.sim, e.simURL = newTestSim(t, capisim.Options{})
	e.adm = kadm.NewClient(kafkatest.Client(t))
	t.Setenv("CAPIRELAY_TEST_API_KEY", binKey)
	return e
}

// sections returns the kafka, api and relay sections (flow style, the ops
// endpoint off) of a config for this environment, to be followed by topics.
func (e *opsEnv) sections() string {
	return fmt.Sprintf(`kafka: {brokers: [%s], group: %s, dead_letter_topic: %s}
api: {base_url: %q, key_env: CAPIRELAY_TEST_API_KEY, pixel: %s}
relay: {listen: "off"}
`, strings.Join(e.brokers, ","), e.group, e.dlq, e.simURL, binPixel)
}

// config writes a config whose single rule takes the event id from idExpr.
func (e *opsEnv) config(idExpr string) string {
	e.t.Helper()
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  dead_letter_topic: %s
api:
  base_url: %s
  key_env: CAPIRELAY_TEST_API_KEY
  pixel: %s
  initial_backoff: 20ms
  max_backoff: 200ms
relay:
  listen: "off"
  commit_interval: 100ms
  linger: 20ms
topics:
  - topic: %s
    format: json
    rules:
      - name: lead
        event:
          type: lead_created
          action_source: offline
          id: %s
          timestamp: time.epoch_millis(value.ts)
`, strings.Join(e.brokers, ","), e.group, e.dlq, e.simURL, binPixel, e.topic, idExpr)
	path := filepath.Join(e.t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// produceAt produces records with the given record (and event) times.
func (e *opsEnv) produceAt(times []time.Time, value func(i int, ts time.Time) []byte) {
	e.t.Helper()
	cl := kafkatest.Client(e.t)
	recs := make([]*kgo.Record, len(times))
	for i, ts := range times {
		recs[i] = &kgo.Record{Topic: e.topic, Timestamp: ts, Value: value(i, ts)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

func jsonValue(i int, ts time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"id": "r-" + strconv.Itoa(i), "ts": ts.UnixMilli()})
	return b
}

func (e *opsEnv) run(cmd func([]string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := cmd(args, &out, &errb)
	return code, out.String() + errb.String()
}

func replayCmd(args []string, out, errb *bytes.Buffer) int { return runReplay(args, out, errb) }
func dlqCmd(args []string, out, errb *bytes.Buffer) int    { return runDLQ(args, out, errb) }

func readReport(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// A topic whose records span 9 days: --from 9d sends exactly the events
// inside the window (7 days minus the 1h margin), reports the rest as
// expired, states the cutoff; a second identical replay adds nothing new.
func TestReplayWindowAndIdempotence(t *testing.T) {
	e := newOpsEnv(t, 2)
	now := time.Now()
	// Record times ascend, as in a real log. Two recent records carry an
	// event time 8 days back (late events): read, then counted as expired.
	var times []time.Time
	for h := 9 * 24; h >= 0; h -= 4 {
		times = append(times, now.Add(-time.Duration(h)*time.Hour-30*time.Minute))
	}
	late := map[int]bool{len(times) - 2: true, len(times) - 5: true}
	inside, beforeFrom := 0, 0
	for i, ts := range times {
		if now.Sub(ts) < 7*24*time.Hour-time.Hour-time.Minute && !late[i] {
			inside++
		}
		if now.Sub(ts) > 9*24*time.Hour {
			beforeFrom++ // older than --from 9d: not part of the replay at all
		}
	}
	e.produceAt(times, func(i int, ts time.Time) []byte {
		if late[i] {
			ts = now.Add(-8 * 24 * time.Hour)
		}
		return jsonValue(i, ts)
	})
	cfg := e.config("value.id")
	report := filepath.Join(t.TempDir(), "report.json")
	code, out := e.run(replayCmd, "--config", cfg, "--from", "9d", "--report", report)
	if code != 0 {
		t.Fatalf("replay exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "clamped to the cutoff") || !strings.Contains(out, "window cutoff:") {
		t.Fatalf("output must state the clamp and the cutoff:\n%s", out)
	}
	var rep replayReport
	readReport(t, report, &rep)
	tr := rep.Topics[e.topic]
	accepted := len(e.sim.Events())
	t.Logf("9 days of records: %d inside the window; replay accepted %d, expired %d (skipped before cutoff %d), cutoff %s",
		inside, accepted, tr.Expired, tr.SkippedBeforeCutoff, rep.Cutoff.Format(time.RFC3339))
	if accepted != inside || tr.Accepted != int64(inside) {
		t.Fatalf("accepted %d (report %d), want exactly the %d events inside the window", accepted, tr.Accepted, inside)
	}
	if want := int64(len(times) - beforeFrom - inside); tr.Expired != want || !rep.Clamped {
		t.Fatalf("expired %d, want %d; clamped %v", tr.Expired, want, rep.Clamped)
	}
	if want := int64(len(times) - beforeFrom - inside - len(late)); tr.SkippedBeforeCutoff != want {
		t.Fatalf("skipped before the cutoff %d, want %d (the late events are read, then expired)", tr.SkippedBeforeCutoff, want)
	}
	wantCutoff := now.Add(-7*24*time.Hour + time.Hour)
	if d := rep.Cutoff.Sub(wantCutoff); d < -time.Minute || d > time.Minute {
		t.Fatalf("cutoff %v, want about %v", rep.Cutoff, wantCutoff)
	}
	// Again: same ids, so the API ignores them all.
	code, out = e.run(replayCmd, "--config", cfg, "--from", "9d")
	if code != 0 {
		t.Fatalf("second replay exit %d:\n%s", code, out)
	}
	if n := len(e.sim.Events()); n != inside {
		t.Fatalf("second replay added accepted events: %d, want %d", n, inside)
	}
	if d := e.sim.Stats().DuplicatesIgnored; d != int64(inside) {
		t.Fatalf("duplicates ignored %d, want %d", d, inside)
	}
}

func TestReplayValidateOnlySavesNothing(t *testing.T) {
	e := newOpsEnv(t, 1)
	now := time.Now()
	e.produceAt([]time.Time{now.Add(-time.Hour), now.Add(-2 * time.Hour), now.Add(-3 * time.Hour)}, jsonValue)
	code, out := e.run(replayCmd, "--config", e.config("value.id"), "--from", "1d", "--validate-only")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	st := e.sim.Stats()
	if len(e.sim.Events()) != 0 || st.ValidateOnlyEvents != 3 {
		t.Fatalf("validate-only replay: %d events stored, %d validated; want 0 and 3", len(e.sim.Events()), st.ValidateOnlyEvents)
	}
	if !strings.Contains(out, "validate_only") {
		t.Fatalf("output should say validate_only:\n%s", out)
	}
}

// A replay beside a live relay on the same topic never moves the live
// group's offsets and creates no group of its own.
func TestReplayBesideLiveRelay(t *testing.T) {
	e := newOpsEnv(t, 2)
	now := time.Now()
	times := make([]time.Time, 200)
	for i := range times {
		times[i] = now.Add(-time.Duration(i) * time.Minute)
	}
	e.produceAt(times, jsonValue)
	cfg := e.config("value.id")
	_, stop := startRelay(t, cfg)
	defer stop()
	committed := func() map[int32]int64 { return committedOffsets(t, e.adm, e.group, e.topic) }
	deadline := time.Now().Add(30 * time.Second)
	for c := committed(); c[0]+c[1] != 200; c = committed() {
		if time.Now().After(deadline) {
			t.Fatalf("live relay did not commit to the end: %v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := committed()
	groupsBefore, err := e.adm.ListGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code, out := e.run(replayCmd, "--config", cfg, "--from", "1d")
	if code != 0 {
		t.Fatalf("replay exit %d:\n%s", code, out)
	}
	after := committed()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the replay moved the live group's offsets: %v → %v", before, after)
	}
	groupsAfter, err := e.adm.ListGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(groupsAfter.Groups()) != len(groupsBefore.Groups()) {
		t.Fatalf("the replay created a group: %v → %v", groupsBefore.Groups(), groupsAfter.Groups())
	}
	if d := e.sim.Stats().DuplicatesIgnored; d != 200 {
		t.Fatalf("the replay's 200 events should all be duplicates of the live relay's, got %d", d)
	}
}

// Records dead-lettered by a broken rule are accepted once the rule is fixed
// and `dlq redrive` runs; a record that still fails is dead-lettered again
// with its attempt count raised.
func TestDLQRedriveAfterFix(t *testing.T) {
	e := newOpsEnv(t, 1)
	now := time.Now()
	e.produceAt([]time.Time{now, now, now, now}, func(i int, ts time.Time) []byte {
		if i == 3 {
			return []byte(`{"id": "r-3", "ts": ` + strconv.FormatInt(ts.UnixMilli(), 10) + `, broken`)
		}
		return jsonValue(i, ts)
	})
	broken := e.config("value.order_id") // the bug: records carry "id"
	relay, stop := startRelay(t, broken)
	deadline := time.Now().Add(30 * time.Second)
	for relay.Progress().DeadLettered < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("not dead-lettered: %+v", relay.Progress())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	fixed := e.config("value.id")
	report := filepath.Join(t.TempDir(), "redrive.json")
	code, out := e.run(dlqCmd, "redrive", "--config", fixed, "--report", report)
	if code != 0 {
		t.Fatalf("redrive exit %d:\n%s", code, out)
	}
	got := map[string]bool{}
	for _, ev := range e.sim.Events() {
		got[ev.ID] = true
	}
	if len(got) != 3 || !got["r-0"] || !got["r-1"] || !got["r-2"] {
		t.Fatalf("accepted after redrive: %v", got)
	}
	var rep redriveReport
	readReport(t, report, &rep)
	if rep.ByClass["mapping"].Accepted != 3 || rep.ByClass["decode"].DeadLettered != 1 {
		t.Fatalf("redrive report %+v\n%s", rep.ByClass, out)
	}
	// The DLQ now holds the 4 first dead letters and the failed-again one.
	cl := kafkatest.Client(t, kgo.ConsumeTopics(e.dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	for len(recs) < 5 && rctx.Err() == nil {
		recs = append(recs, cl.PollFetches(rctx).Records()...)
	}
	if len(recs) != 5 {
		t.Fatalf("dead-letter topic holds %d records, want 5", len(recs))
	}
	again := recs[4]
	attempt, _ := consumer.HeaderValue(again, consumer.HeaderAttempt)
	src, _ := consumer.HeaderValue(again, consumer.HeaderSourceTopic)
	off, _ := consumer.HeaderValue(again, consumer.HeaderSourceOffset)
	if attempt != "2" || src != e.topic || off != "3" {
		t.Fatalf("failed-again record: attempt %q source %s@%s, want attempt 2 from %s@3", attempt, src, off, e.topic)
	}
	for _, h := range again.Headers {
		if h.Key == consumer.HeaderAttempt && string(h.Value) == "1" {
			t.Fatalf("the old attempt header was carried over: %v", again.Headers)
		}
	}
	// Running the redrive again resumes where it stopped: only the new dead
	// letter is left, and it fails again (attempt 3).
	code, out = e.run(dlqCmd, "redrive", "--config", fixed)
	if code != 0 {
		t.Fatalf("second redrive exit %d:\n%s", code, out)
	}
	if n := len(e.sim.Events()); n != 3 {
		t.Fatalf("second redrive changed accepted events: %d", n)
	}
}

// startRelay runs the live relay of the config file in this process; stop
// drains it and waits for it to return.
func startRelay(tb testing.TB, cfgPath string) (*consumer.Relay, func()) {
	tb.Helper()
	s, err := loadSetup(cfgPath, nil)
	if err != nil {
		tb.Fatal(err)
	}
	relay, _, err := s.newRelay(newLogger(os.Stderr, "text", "error"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx, nil) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("relay: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return relay, stop
}

// With --to before the window's cutoff, the clamp skips only the records
// between --from and --to: those after --to are not part of the replay and
// are not counted as expired.
func TestReplayToBeforeCutoff(t *testing.T) {
	e := newOpsEnv(t, 1)
	now := time.Now()
	var times []time.Time
	for h := 9 * 24; h >= 0; h -= 4 {
		times = append(times, now.Add(-time.Duration(h)*time.Hour-30*time.Minute))
	}
	e.produceAt(times, jsonValue)
	inRange := 0
	for _, ts := range times {
		if age := now.Sub(ts); age < 9*24*time.Hour && age > 8*24*time.Hour {
			inRange++
		}
	}
	report := filepath.Join(t.TempDir(), "report.json")
	code, out := e.run(replayCmd, "--config", e.config("value.id"), "--from", "9d", "--to", "8d", "--report", report)
	if code != 0 {
		t.Fatalf("replay exit %d:\n%s", code, out)
	}
	var rep replayReport
	readReport(t, report, &rep)
	tr := rep.Topics[e.topic]
	if !rep.Clamped || tr.SkippedBeforeCutoff != int64(inRange) || tr.Expired != int64(inRange) || tr.Records != 0 || len(e.sim.Events()) != 0 {
		t.Fatalf("clamped %v, skipped %d, expired %d, records %d, accepted %d; want clamped, %d skipped and expired, nothing read or sent",
			rep.Clamped, tr.SkippedBeforeCutoff, tr.Expired, tr.Records, len(e.sim.Events()), inRange)
	}
}
