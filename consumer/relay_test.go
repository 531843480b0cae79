package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
	"github.com/capirelay/capirelay/internal/secret"
)

func TestMain(m *testing.M) {
	panicOnViolation = true // a misused settle token fails the test run
	kafkatest.Main(m)
}

const (
	simKey   = "sk-sim-relay-test"
	simPixel = "px_test"
)

// testValue is the record shape of these tests.
type testValue struct {
	ID   string `json:"id"`
	TS   int64  `json:"ts"`             // event time, Unix ms
	Kind string `json:"kind,omitempty"` // "", "two" (two events), "skip" (no event), "badcountry"
}

// testMapper maps testValue records: missing id → mapping error, broken JSON
// → decode error, kind "two" → two events, "skip" → none, "badcountry" → an
// event that fails local validation.
var testMapper = MapperFunc(func(_ context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error) {
	var v testValue
	if err := json.Unmarshal(rec.Value, &v); err != nil {
		return dst, &RecordError{Class: ClassDecode, Err: fmt.Errorf("%s/%d@%d: value is not JSON: %w", rec.Topic, rec.Partition, rec.Offset, err)}
	}
	if v.ID == "" {
		return dst, &RecordError{Class: ClassMapping, Rule: "lead", Err: fmt.Errorf("%s/%d@%d: rule \"lead\" field \"id\": value.id is missing", rec.Topic, rec.Partition, rec.Offset)}
	}
	if v.Kind == "skip" {
		return dst, nil
	}
	ev := capi.Event{ID: v.ID, Type: capi.LeadCreated, TimestampMS: v.TS, ActionSource: capi.SourceOffline,
		Data: capi.Data{Type: capi.DataCustomerAction}}
	if v.Kind == "badcountry" {
		ev.User.Countries = []string{"XX"}
	}
	dst = append(dst, Mapped{Rule: "lead", Event: ev})
	if v.Kind == "two" {
		ev2 := ev
		ev2.Type = capi.RegistrationCompleted
		dst = append(dst, Mapped{Rule: "registration", Event: ev2})
	}
	return dst, nil
})

type harness struct {
	t       *testing.T
	brokers []string
	sim     *capisim.Server
	api     *capi.Client
	adm     *kadm.Client
}

func newHarness(t *testing.T, simOpts capisim.Options) *harness {
	t.Helper()
	simOpts.APIKey = simKey
	simOpts.Pixels = []string{simPixel}
	sim, err := capisim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	api, err := capi.NewClient(capi.Config{BaseURL: srv.URL, APIKey: secret.New(simKey),
		Retry: capi.RetryPolicy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	brokers := kafkatest.Brokers(t)
	adm := kadm.NewClient(kafkatest.Client(t))
	return &harness{t: t, brokers: brokers, sim: sim, api: api, adm: adm}
}

func newAdmFor(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

type relayRun struct {
	r      *Relay
	cancel context.CancelFunc // ctx of Run: SIGTERM
	force  context.CancelFunc // force of Run: a second SIGTERM
	done   chan error
	once   sync.Once
}

// start runs a relay with mapper (testMapper when nil) and the harness's
// other collaborators.
func (h *harness) start(cfg Config, mapper Mapper, opts ...kgo.Opt) *relayRun {
	h.t.Helper()
	return h.startDeps(cfg, Deps{Mapper: mapper}, opts...)
}

// startDeps runs a relay with deps, filling in what is unset: testMapper (one
// per worker), the simulator's client, a default validator, the simulator's
// pixel and a logger. Short test defaults apply to cfg's zero durations.
func (h *harness) startDeps(cfg Config, deps Deps, opts ...kgo.Opt) *relayRun {
	h.t.Helper()
	cfg.Connection = append([]kgo.Opt{kgo.SeedBrokers(h.brokers...)}, opts...)
	if cfg.Linger == 0 {
		cfg.Linger = 20 * time.Millisecond
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 100 * time.Millisecond
	}
	if cfg.DeadLetterRetry == 0 {
		cfg.DeadLetterRetry = 50 * time.Millisecond
	}
	if deps.Mapper == nil {
		deps.Mapper = testMapper
	}
	if deps.NewMapper == nil {
		mapper := deps.Mapper
		deps.NewMapper = func() Mapper { return mapper }
	}
	if deps.API == nil {
		deps.API = h.api
	}
	if deps.Validator == nil {
		deps.Validator = &capi.Validator{}
	}
	if deps.DefaultPixel == "" {
		deps.DefaultPixel = simPixel
	}
	if deps.Logger == nil {
		level := slog.LevelError
		if testing.Verbose() {
			level = slog.LevelInfo
		}
		deps.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	r, err := New(cfg, deps)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	force, forceCancel := context.WithCancel(context.Background())
	run := &relayRun{r: r, cancel: cancel, force: forceCancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx, force) }()
	h.t.Cleanup(func() { run.stop(h.t); forceCancel() })
	return run
}

// stopWithin cancels Run's context (and force too when forced), waits at most
// limit for Run to return and reports how long it took; it fails the test if
// Run did not return in time.
func (run *relayRun) stopWithin(t *testing.T, limit time.Duration, forced bool) time.Duration {
	t.Helper()
	var took time.Duration
	run.once.Do(func() {
		start := time.Now()
		run.cancel()
		if forced {
			run.force()
		}
		select {
		case err := <-run.done:
			took = time.Since(start)
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(limit):
			t.Fatalf("Run did not return within %v of the shutdown", limit)
		}
	})
	return took
}

func (run *relayRun) stop(t *testing.T) {
	t.Helper()
	run.once.Do(func() {
		run.cancel()
		select {
		case err := <-run.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("relay did not stop within 60s")
		}
	})
}

func (h *harness) produce(topic string, partition int32, values ...any) {
	h.t.Helper()
	cl := h.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		var b []byte
		switch x := v.(type) {
		case []byte:
			b = x
		default:
			b, _ = json.Marshal(x)
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: b, Key: []byte("k" + strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// committed returns the group's committed offsets for topic.
func (h *harness) committed(group, topic string) map[int32]int64 {
	h.t.Helper()
	offs, err := h.adm.FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) || kerr.IsRetriable(err) {
		return map[int32]int64{} // no group yet, or the coordinator is still loading
	}
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

func (h *harness) endOffsets(topic string) map[int32]int64 {
	h.t.Helper()
	ends, err := h.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) acceptedIDs() map[string]int {
	out := map[string]int{}
	for _, e := range h.sim.Events() {
		out[e.Type+"/"+e.ID]++
	}
	return out
}

// readDLQ returns every record of the dead-letter topic.
func (h *harness) readDLQ(topic string, want int) []*kgo.Record {
	h.t.Helper()
	cl := h.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("dead-letter topic has %d records, want %d", len(out), want)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func now() int64 { return time.Now().UnixMilli() }

func TestRelayAllAcceptedAndCommitted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{})
	topics := []string{kafkatest.Topic(t, 6), kafkatest.Topic(t, 6)}
	dlq := kafkatest.Topic(t, 1)
	group := kafkatest.GroupID(t)
	const perPartition = 300
	want := map[string]int{}
	for ti, topic := range topics {
		for p := int32(0); p < 6; p++ {
			vals := make([]any, perPartition)
			for i := range vals {
				id := fmt.Sprintf("t%d-p%d-%d", ti, p, i)
				kind := ""
				switch i % 50 {
				case 7:
					kind = "two"
					want["registration_completed/"+id] = 1
				case 9:
					kind = "skip"
				}
				if kind != "skip" {
					want["lead_created/"+id] = 1
				}
				vals[i] = testValue{ID: id, TS: now(), Kind: kind}
			}
			h.produce(topic, p, vals...)
		}
	}
	run := h.start(Config{Group: group, Topics: topics, DeadLetterTopic: dlq}, nil)
	waitFor(t, "every event accepted", 60*time.Second, func() bool { return len(h.sim.Events()) >= len(want) })
	for _, topic := range topics {
		waitFor(t, "offsets committed at the end of "+topic, 30*time.Second, func() bool {
			c, e := h.committed(group, topic), h.endOffsets(topic)
			for p := int32(0); p < 6; p++ {
				if c[p] != e[p] {
					return false
				}
			}
			return true
		})
	}
	run.stop(t)
	got := h.acceptedIDs()
	if len(got) != len(want) {
		t.Fatalf("accepted %d distinct events, want %d", len(got), len(want))
	}
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("event %s accepted %d times", id, got[id])
		}
	}
	if st := h.sim.Stats(); st.BatchesRejected != 0 {
		t.Fatalf("simulator rejected %d batches", st.BatchesRejected)
	}
	t.Logf("%d events over 2×6 partitions accepted; offsets at the end; sim stats %+v", len(want), h.sim.Stats())
}

func TestRelayDeadLettersBadRecords(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	old := time.Now().Add(-8 * 24 * time.Hour).UnixMilli()
	h.produce(topic, 0,
		testValue{ID: "good-1", TS: now()},
		[]byte(`{"id": broken`),                                     // decode
		testValue{TS: now()},                                        // mapping: no id
		testValue{ID: "bad-country", TS: now(), Kind: "badcountry"}, // validation
		testValue{ID: "too-old", TS: old},                           // expired
		testValue{ID: "good-2", TS: now()},
	)
	h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq}, nil)
	waitFor(t, "offsets committed", 30*time.Second, func() bool { return h.committed(group, topic)[0] == 6 })
	got := h.acceptedIDs()
	if len(got) != 2 || got["lead_created/good-1"] != 1 || got["lead_created/good-2"] != 1 {
		t.Fatalf("accepted %v", got)
	}
	recs := h.readDLQ(dlq, 4)
	wantClass := map[int64]string{1: ClassDecode, 2: ClassMapping, 3: ClassValidation, 4: ClassExpired}
	for _, rec := range recs {
		off, _ := HeaderValue(rec, HeaderSourceOffset)
		o, _ := strconv.ParseInt(off, 10, 64)
		class, _ := HeaderValue(rec, HeaderClass)
		msg, _ := HeaderValue(rec, HeaderMessage)
		if class != wantClass[o] {
			t.Errorf("offset %d: class %q, want %q (message %q)", o, class, wantClass[o], msg)
		}
		if st, _ := HeaderValue(rec, HeaderSourceTopic); st != topic {
			t.Errorf("source topic header %q", st)
		}
		if p, _ := HeaderValue(rec, HeaderSourcePartition); p != "0" {
			t.Errorf("source partition header %q", p)
		}
		if a, _ := HeaderValue(rec, HeaderAttempt); a != "1" {
			t.Errorf("attempt header %q", a)
		}
		if _, ok := HeaderValue(rec, HeaderSourceTimestamp); !ok {
			t.Error("no source timestamp header")
		}
		if msg == "" {
			t.Errorf("offset %d: empty message", o)
		}
		if rec.Headers[0].Key != "origin" || string(rec.Headers[0].Value) != "test" || string(rec.Key) != "k"+strconv.FormatInt(o, 10) {
			t.Errorf("offset %d: original key/headers not kept: key %q headers %v", o, rec.Key, rec.Headers)
		}
		switch wantClass[o] {
		case ClassDecode:
			if string(rec.Value) != `{"id": broken` {
				t.Errorf("value not kept byte for byte: %q", rec.Value)
			}
		case ClassMapping, ClassValidation:
			if r, _ := HeaderValue(rec, HeaderRule); r != "lead" {
				t.Errorf("offset %d: rule header %q", o, r)
			}
		case ClassExpired:
			if !strings.Contains(msg, "older than the event-age window") {
				t.Errorf("expired message %q", msg)
			}
		}
	}
}

// An event that passes local validation but that the API refuses (here: a
// local window wider than the API's) is isolated and dead-lettered alone.
func TestRelayIsolatesAPIRejection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	vals := make([]any, 1000)
	for i := range vals {
		vals[i] = testValue{ID: fmt.Sprintf("ev-%d", i), TS: now()}
	}
	vals[613] = testValue{ID: "ev-613", TS: time.Now().Add(-8 * 24 * time.Hour).UnixMilli()}
	h.produce(topic, 0, vals...)
	cfg := Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, Linger: 2 * time.Second}
	run := h.startDeps(cfg, Deps{Validator: &capi.Validator{MaxAge: 30 * 24 * time.Hour}})
	waitFor(t, "offsets committed", 30*time.Second, func() bool { return h.committed(group, topic)[0] == 1000 })
	run.stop(t)
	if got := len(h.acceptedIDs()); got != 999 {
		t.Fatalf("accepted %d, want 999", got)
	}
	recs := h.readDLQ(dlq, 1)
	if len(recs) != 1 {
		t.Fatalf("dead-lettered %d", len(recs))
	}
	rec := recs[0]
	if off, _ := HeaderValue(rec, HeaderSourceOffset); off != "613" {
		t.Fatalf("dead-lettered offset %s", off)
	}
	if c, _ := HeaderValue(rec, HeaderClass); c != ClassRejected {
		t.Fatalf("class %s", c)
	}
	if st, _ := HeaderValue(rec, HeaderAPIStatus); st != "400" {
		t.Fatalf("api status %q", st)
	}
	if body, _ := HeaderValue(rec, HeaderAPIBody); body == "" || strings.Contains(body, simKey) {
		t.Fatalf("api body %q", body)
	}
	t.Logf("1 rejected in 1000: sim stats %+v", h.sim.Stats())
}

func TestRelayAPIOutageCommitsNothingPast(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{FailRate: 1})
	topic, dlq, group := kafkatest.Topic(t, 2), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	for p := int32(0); p < 2; p++ {
		vals := make([]any, 200)
		for i := range vals {
			vals[i] = testValue{ID: fmt.Sprintf("o-%d-%d", p, i), TS: now()}
		}
		h.produce(topic, p, vals...)
	}
	h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq}, nil)
	waitFor(t, "the relay to hit the outage", 20*time.Second, func() bool { return h.sim.Stats().RequestsByStatus[503] >= 5 })
	time.Sleep(500 * time.Millisecond) // several commit intervals
	if c := h.committed(group, topic); len(c) != 0 {
		t.Fatalf("committed %v during the outage", c)
	}
	if ends := h.endOffsets(dlq); ends[0] != 0 {
		t.Fatalf("dead-lettered %d records during the outage", ends[0])
	}
	if err := h.sim.SetFaults(capisim.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "catch-up", 30*time.Second, func() bool {
		c := h.committed(group, topic)
		return c[0] == 200 && c[1] == 200
	})
	if got := len(h.acceptedIDs()); got != 400 {
		t.Fatalf("accepted %d, want 400", got)
	}
	if ends := h.endOffsets(dlq); ends[0] != 0 {
		t.Fatalf("dead-lettered %d records", ends[0])
	}
}

func TestRelayAuthFailureNotReadyThenResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{AuthFailRate: 1})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	vals := make([]any, 50)
	for i := range vals {
		vals[i] = testValue{ID: fmt.Sprintf("a-%d", i), TS: now()}
	}
	h.produce(topic, 0, vals...)
	run := h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, ConfigRetryInterval: 300 * time.Millisecond}, nil)
	waitFor(t, "a 401", 20*time.Second, func() bool { return h.sim.Stats().RequestsByStatus[401] >= 1 })
	waitFor(t, "not ready", 5*time.Second, func() bool { return !run.r.Ready() })
	time.Sleep(time.Second)
	n401 := h.sim.Stats().RequestsByStatus[401]
	if n401 > 10 {
		t.Fatalf("retry storm: %d requests answered 401 in about a second", n401)
	}
	if c := h.committed(group, topic); len(c) != 0 {
		t.Fatalf("committed %v while unauthorized", c)
	}
	if err := h.sim.SetFaults(capisim.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resume", 20*time.Second, func() bool { return h.committed(group, topic)[0] == 50 })
	waitFor(t, "ready again", 5*time.Second, run.r.Ready)
	if got := len(h.acceptedIDs()); got != 50 {
		t.Fatalf("accepted %d", got)
	}
	if ends := h.endOffsets(dlq); ends[0] != 0 {
		t.Fatalf("dead-lettered %d records because of a config fault", ends[0])
	}
	t.Logf("401s while unauthorized: %d", n401)
}

// A second relay joins mid-run and later leaves: every event is accepted at
// least once and the offsets end at the end.
func TestRelayRebalance(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{Latency: 5 * time.Millisecond})
	topic, dlq, group := kafkatest.Topic(t, 6), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	produceN := func(round int) {
		for p := int32(0); p < 6; p++ {
			vals := make([]any, 500)
			for i := range vals {
				vals[i] = testValue{ID: fmt.Sprintf("r%d-%d-%d", round, p, i), TS: now()}
			}
			h.produce(topic, p, vals...)
		}
	}
	produceN(0)
	cfg := Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, MaxBatchEvents: 100}
	h.start(cfg, nil)
	waitFor(t, "progress", 30*time.Second, func() bool { return len(h.sim.Events()) > 300 })
	second := h.start(cfg, nil)
	produceN(1)
	waitFor(t, "progress after join", 30*time.Second, func() bool { return len(h.sim.Events()) > 3500 })
	second.stop(t)
	produceN(2)
	waitFor(t, "offsets at the end", 60*time.Second, func() bool {
		c, e := h.committed(group, topic), h.endOffsets(topic)
		for p := int32(0); p < 6; p++ {
			if c[p] != e[p] {
				return false
			}
		}
		return true
	})
	got := h.acceptedIDs()
	if len(got) != 3*6*500 {
		t.Fatalf("accepted %d distinct events, want %d", len(got), 3*6*500)
	}
	st := h.sim.Stats()
	t.Logf("rebalance: %d distinct accepted, %d duplicates ignored", len(got), st.DuplicatesIgnored)
}

func TestRelayDrainOnShutdown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{Latency: 200 * time.Millisecond})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	vals := make([]any, 300)
	for i := range vals {
		vals[i] = testValue{ID: fmt.Sprintf("d-%d", i), TS: now()}
	}
	h.produce(topic, 0, vals...)
	run := h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, MaxBatchEvents: 50, Concurrency: 2}, nil)
	waitFor(t, "first request", 20*time.Second, func() bool {
		return h.sim.Stats().EventsReceived > 0 || h.sim.Stats().RequestsByStatus[200] > 0 || len(h.sim.Events()) > 0
	})
	start := time.Now()
	run.stop(t)
	took := time.Since(start)
	accepted := len(h.acceptedIDs())
	c := h.committed(group, topic)[0]
	t.Logf("shutdown took %v; %d accepted, committed %d", took, accepted, c)
	if c == 0 || int(c) > accepted {
		t.Fatalf("committed %d with %d accepted: the commit must cover exactly the settled prefix", c, accepted)
	}
	if int(c) != accepted {
		// Accepted events are settled in order here (one partition, batches
		// sent in order with in-order completion is not guaranteed), so
		// allow the settled prefix to be shorter only by what is in flight.
		t.Logf("settled prefix %d < accepted %d (out-of-order completion)", c, accepted)
	}
}

func (h *harness) client(opts ...kgo.Opt) *kgo.Client {
	h.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(h.brokers...)}, opts...)...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(cl.Close)
	return cl
}

// TestRelayShutdownDuringTransientMappingError: a record whose mapping keeps
// failing transiently (a Schema Registry outage, say) holds the commit
// before it and is never dead-lettered; on shutdown the relay gives it up
// at once instead of waiting out the drain deadline for a record that cannot
// settle in this run, and still commits nothing past it.
func TestRelayShutdownDuringTransientMappingError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	vals := make([]any, 20)
	for i := range vals {
		vals[i] = testValue{ID: fmt.Sprintf("s-%d", i), TS: now()}
	}
	h.produce(topic, 0, vals...)
	var attempts atomic.Int32
	mapper := MapperFunc(func(ctx context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error) {
		if rec.Offset == 10 {
			attempts.Add(1)
			return dst, fmt.Errorf("schema registry: unreachable (%w)", ErrTransient)
		}
		return testMapper(ctx, rec, dst)
	})
	const drain = 30 * time.Second
	run := h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, DrainTimeout: drain}, mapper)
	waitFor(t, "the 19 other records accepted", 30*time.Second, func() bool { return len(h.acceptedIDs()) == 19 })
	waitFor(t, "the commit held before the failing record", 30*time.Second, func() bool { return h.committed(group, topic)[0] == 10 })
	waitFor(t, "the failing record retried", 10*time.Second, func() bool { return attempts.Load() >= 2 })
	start := time.Now()
	run.stop(t)
	took := time.Since(start)
	t.Logf("shutdown took %v after %d attempts at the failing record", took, attempts.Load())
	if took > drain/3 {
		t.Errorf("shutdown took %v: the drain waited for a record that could not settle (deadline %v)", took, drain)
	}
	if c := h.committed(group, topic)[0]; c != 10 {
		t.Errorf("committed %d after shutdown, want 10 (never past the unsettled record)", c)
	}
	if n := h.endOffsets(dlq)[0]; n != 0 {
		t.Errorf("%d dead letters for a transient failure", n)
	}
}

// TestRelayShutdownDuringAPIHang: a SIGTERM while the API answers no request.
// The only sender is stuck in Send, the send queue is full and a mapping
// worker (or the linger loop) waits for room in it. The drain must still end
// at DrainTimeout, or at once when force is cancelled; nothing is committed
// past the unsettled records.
func TestRelayShutdownDuringAPIHang(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		drain  time.Duration
		forced bool
		limit  time.Duration
	}{
		{"drain deadline", time.Second, false, 6 * time.Second},
		{"forced", time.Minute, true, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, capisim.Options{HangRate: 1})
			topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
			vals := make([]any, 50)
			for i := range vals {
				vals[i] = testValue{ID: fmt.Sprintf("h-%d", i), TS: now()}
			}
			h.produce(topic, 0, vals...)
			run := h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq,
				DrainTimeout: tc.drain, Concurrency: 1, MaxBatchEvents: 1}, nil)
			waitFor(t, "every record read", 20*time.Second, func() bool { return run.r.Progress().Consumed == 50 })
			waitFor(t, "a request hanging", 20*time.Second, func() bool { return h.sim.Stats().Hung >= 1 })
			time.Sleep(200 * time.Millisecond) // several linger periods: the send queue is full
			took := run.stopWithin(t, tc.limit, tc.forced)
			t.Logf("shutdown took %v (drain timeout %v, forced %v)", took, tc.drain, tc.forced)
			if c := h.committed(group, topic); c[0] != 0 {
				t.Errorf("committed %v although nothing was accepted", c)
			}
			if n := h.endOffsets(dlq)[0]; n != 0 {
				t.Errorf("%d dead letters during an outage", n)
			}
		})
	}
}

// TestRelayShutdownWhileMappingWorkersWait: the mapping workers wait for room
// in a full send queue (the API answers nothing) while the poll loop keeps
// reading: the jobs for them must never block the poll loop, which would then
// ignore the shutdown (and hold rebalances: AllowRebalance is not reached).
// Only the unsettled-record bound may stop reading, and it watches ctx.
func TestRelayShutdownWhileMappingWorkersWait(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{HangRate: 1})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	const n = 200
	vals := make([]any, n)
	for i := range vals {
		vals[i] = testValue{ID: fmt.Sprintf("w-%d", i), TS: now()}
	}
	h.produce(topic, 0, vals...)
	// PollRecords 5: room for far fewer queued jobs than unsettled records.
	run := h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq,
		DrainTimeout: time.Second, Concurrency: 1, MaxBatchEvents: 1, PollRecords: 5}, nil)
	waitFor(t, "a request hanging", 20*time.Second, func() bool { return h.sim.Stats().Hung >= 1 })
	time.Sleep(500 * time.Millisecond) // the poll loop reads on while the workers wait
	t.Logf("%d of %d records read before the shutdown", run.r.Progress().Consumed, n)
	took := run.stopWithin(t, 6*time.Second, false)
	t.Logf("shutdown took %v (drain timeout 1s)", took)
	if c := h.committed(group, topic); c[0] != 0 {
		t.Errorf("committed %v although nothing was accepted", c)
	}
}

// TestRelayRevokeDuringAPIHang: while the API answers nothing, the linger loop
// (or a mapping worker) holds the batch lock waiting for room in the full send
// queue. Giving up partitions, on a rebalance or when rules drop a topic, must
// still take about RevokeTimeout, not wait for that lock.
func TestRelayRevokeDuringAPIHang(t *testing.T) {
	t.Parallel()
	const revoke = time.Second
	setup := func(t *testing.T, topics []string, partitions int32) (*harness, *relayRun, string) {
		h := newHarness(t, capisim.Options{HangRate: 1})
		dlq, group := kafkatest.Topic(t, 1), kafkatest.GroupID(t)
		for _, topic := range topics {
			for p := range partitions {
				vals := make([]any, 20)
				for i := range vals {
					vals[i] = testValue{ID: fmt.Sprintf("%s-%d-%d", topic, p, i), TS: now()}
				}
				h.produce(topic, p, vals...)
			}
		}
		run := h.start(Config{Group: group, Topics: topics, DeadLetterTopic: dlq, DrainTimeout: time.Second,
			Concurrency: 1, MaxBatchEvents: 1, RevokeTimeout: revoke, RebalanceTimeout: 20 * time.Second}, nil)
		waitFor(t, "every record read", 20*time.Second, func() bool {
			return run.r.Progress().Consumed == int64(len(topics))*int64(partitions)*20
		})
		waitFor(t, "a request hanging", 20*time.Second, func() bool { return h.sim.Stats().Hung >= 1 })
		time.Sleep(200 * time.Millisecond) // several linger periods: the send queue is full
		return h, run, group
	}
	t.Run("rebalance", func(t *testing.T) {
		t.Parallel()
		topic := kafkatest.Topic(t, 2)
		h, run, group := setup(t, []string{topic}, 2)
		assigned := make(chan time.Time, 1)
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		second := h.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				if len(a[topic]) > 0 {
					select {
					case assigned <- time.Now():
					default:
					}
				}
			}))
		go func() {
			for ctx.Err() == nil {
				second.PollFetches(ctx)
			}
		}()
		select {
		case at := <-assigned:
			took := at.Sub(start)
			t.Logf("the joining member got a partition after %v (RevokeTimeout %v, rebalance timeout 20s)", took, revoke)
			if took > revoke+5*time.Second {
				t.Errorf("rebalance took %v: the revocation did not honour RevokeTimeout %v", took, revoke)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the joining member got no partition within 30s")
		}
		cancel()
		run.stopWithin(t, 10*time.Second, false)
		if c := h.committed(group, topic); c[0] != 0 || c[1] != 0 {
			t.Errorf("committed %v although nothing was accepted", c)
		}
	})
	t.Run("topic removed", func(t *testing.T) {
		t.Parallel()
		keep, drop := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1)
		h, run, group := setup(t, []string{keep, drop}, 1)
		type result struct {
			removed []string
			err     error
			took    time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			_, removed, err := run.r.SetTopics(context.Background(), []string{keep})
			done <- result{removed, err, time.Since(start)}
		}()
		select {
		case res := <-done:
			t.Logf("SetTopics took %v (RevokeTimeout %v)", res.took, revoke)
			if res.err != nil || len(res.removed) != 1 || res.removed[0] != drop {
				t.Errorf("SetTopics: removed %v, err %v", res.removed, res.err)
			}
			if res.took > revoke+5*time.Second {
				t.Errorf("SetTopics took %v: the removal did not honour RevokeTimeout %v", res.took, revoke)
			}
		case <-time.After(revoke + 10*time.Second):
			t.Errorf("SetTopics did not return within %v", revoke+10*time.Second)
		}
		run.stopWithin(t, 10*time.Second, false)
		if c := h.committed(group, drop); c[0] != 0 {
			t.Errorf("committed %v although nothing was accepted", c)
		}
	})
}

// TestRelayMetricLabels: accepted and filtered counts carry the topic of the
// record that was mapped, which for a redrive (Unwrap) is the source topic
// named in the dead-letter headers, not the polled topic; consumed counts
// carry the polled topic. Records of two source topics interleave.
func TestRelayMetricLabels(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{})
	polled, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	cl := h.client()
	want := map[string]map[string]float64{} // metric -> topic -> count
	count := func(metric, topic string) {
		if want[metric] == nil {
			want[metric] = map[string]float64{}
		}
		want[metric][topic]++
	}
	var recs []*kgo.Record
	for i := range 40 {
		src := []string{"orders-a", "orders-b"}[i%2]
		if i%5 == 0 {
			src = "orders-a" // a run of one topic now and then
		}
		v := testValue{ID: fmt.Sprintf("m-%d", i), TS: now()}
		if i%3 == 0 {
			v.Kind = "skip"
			count("capirelay_records_filtered_total", src)
		} else {
			count("capirelay_events_accepted_total", src)
		}
		count("capirelay_records_consumed_total", polled)
		b, _ := json.Marshal(v)
		recs = append(recs, &kgo.Record{Topic: polled, Value: b, Headers: []kgo.RecordHeader{
			{Key: HeaderSourceTopic, Value: []byte(src)}, {Key: HeaderClass, Value: []byte(ClassRejected)}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	run := h.startDeps(Config{Group: group, Topics: []string{polled}, DeadLetterTopic: dlq},
		Deps{Unwrap: Unwrap, Metrics: NewMetrics(reg)})
	waitFor(t, "commit to the end", 30*time.Second, func() bool { return h.committed(group, polled)[0] == 40 })
	run.stop(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for _, mf := range mfs {
		if want[mf.GetName()] == nil {
			continue
		}
		got[mf.GetName()] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" && m.GetCounter().GetValue() != 0 {
					got[mf.GetName()][l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counters by topic:\n got %v\nwant %v", got, want)
	}
	t.Logf("counters by topic: %v", got)
}
