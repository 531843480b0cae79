package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/consumer"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// syncBuffer is a log sink safe for the relay's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// liveRelay is `run` in this process: the relay of a config file, running,
// and the reloader of its rules.
type liveRelay struct {
	s       *setup
	relay   *consumer.Relay
	adapter *mapperAdapter
	reg     *prometheus.Registry
	log     *syncBuffer
	r       *reloader
}

func startLive(t *testing.T, path string) *liveRelay {
	t.Helper()
	l := &liveRelay{reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	m := consumer.NewMetrics(l.reg)
	var err error
	if l.s, err = loadSetup(path, m); err != nil {
		t.Fatal(err)
	}
	logger := newLogger(l.log, "text", "info")
	if l.relay, l.adapter, err = l.s.newRelay(logger, m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.relay.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	l.r = &reloader{path: path, cur: l.s, adapter: l.adapter, relay: l.relay, m: m, log: logger}
	return l
}

// gauge returns the value of the gauge name (-1 when it is not registered).
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// jsonTopic is a topics entry (without the `topics:` line) for a JSON topic.
func jsonTopic(topic string) string {
	return fmt.Sprintf(`  - topic: %s
    format: json
    rules:
      - name: lead-%[1]s
        event:
          type: lead_created
          action_source: offline
          id: value.id
          timestamp: time.epoch_millis(value.ts)
`, topic)
}

// A config whose rules consume the dead-letter topic is refused by `check`,
// at start, and by a reload, with the topic's position; a reload whose
// topics cannot be changed leaves the previous rules in force, as its log
// and metric say.
func TestDeadLetterTopicAsRulesTopic(t *testing.T) {
	cfg := `kafka:
  brokers: [localhost:9092]
  dead_letter_topic: capirelay.dlq
topics:
` + jsonTopic("orders") + jsonTopic("capirelay.dlq")
	path := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, path, cfg)
	want := path + `:14:12: field "topic": "capirelay.dlq" is kafka.dead_letter_topic`
	code, out := runCmd(t, "check", "--config", path)
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("check: exit %d, want 1 and %q:\n%s", code, want, out)
	}
	if _, err := parseSetup(path); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("start: want %q, got %v", want, err)
	}
}

// A reload that adds the dead-letter topic to the rules is refused: the
// previous rules stay live, as the log and the metric say.
func TestReloadRefusesDeadLetterTopic(t *testing.T) {
	e := newOpsEnv(t, 1)
	head := e.sections() + "topics:\n"
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path, head+jsonTopic(e.topic))
	l := startLive(t, path)
	writeConfig(t, path, head+jsonTopic(e.topic)+jsonTopic(e.dlq))
	l.r.reload(context.Background(), "test")
	if got := l.adapter.rules.cur.Load(); got != l.s.mapper {
		t.Errorf("the refused rules are live: topics %v", got.Topics())
	}
	if ok := gauge(t, l.reg, "capirelay_rules_last_reload_success"); ok != 0 {
		t.Errorf("last_reload_success %v, want 0", ok)
	}
	if log := l.log.String(); !strings.Contains(log, "previous rules stay in force") || !strings.Contains(log, "is kafka.dead_letter_topic") {
		t.Errorf("log:\n%s", log)
	}
}

// A reload whose topics change fails after the new rules were installed
// puts the previous rules back.
func TestReloadUndoesRulesWhenTopicsCannotChange(t *testing.T) {
	e := newOpsEnv(t, 1)
	other := kafkatest.Topic(t, 1)
	head := e.sections() + "topics:\n"
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path, head+jsonTopic(e.topic))
	s, err := loadSetup(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A relay without a group (as replay builds) cannot change its topics.
	ccfg := s.consumerConfig(nil)
	ccfg.Group, ccfg.Partitions = "", map[string]map[int32]int64{e.topic: {0: 0}}
	a := s.newAdapter()
	deps := s.deps(a)
	deps.Logger = newLogger(io.Discard, "text", "error")
	relay, err := consumer.New(ccfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer func() { _ = relay.Run(ctx, nil) }() // closes its clients
	m := consumer.NewMetrics(prometheus.NewRegistry())
	var log syncBuffer
	r := &reloader{path: path, cur: s, adapter: a, relay: relay, m: m, log: newLogger(&log, "text", "info")}
	writeConfig(t, path, head+jsonTopic(e.topic)+jsonTopic(other))
	r.reload(context.Background(), "test")
	if !strings.Contains(log.String(), "changing topics failed") {
		t.Fatalf("want the topic change to fail:\n%s", log.String())
	}
	if got := a.rules.cur.Load(); got != s.mapper {
		t.Errorf("the failed reload's rules are live: topics %v", got.Topics())
	}
	if p := a.rules.prev.Load(); p != nil {
		t.Errorf("previous rules %v, want none", p.Topics())
	}
}
