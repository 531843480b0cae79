package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Section errors name file:line:col of the offending key and say why.
func TestSectionDiagnostics(t *testing.T) {
	cfg := `kafka:
  brokers: [localhost:9092]
  dead_letter_topic: dlq
  start: oldest
  sasl: {mechanism: GSSAPI}
  tls: {ca_fil: x}
api:
  key_env: K
  key_file: /k
  isolation: bisect
relay:
  log_format: xml
  max_batch_events: 5000
  linger: soon
topics:
  - topic: t
    format: json
    rules:
      - name: r
        event: {type: lead_created, action_source: offline, id: value.id, timestamp: record}
`
	path := filepath.Join(t.TempDir(), "c.yaml")
	expect := func(wants ...string) {
		t.Helper()
		_, err := parseSetup(path)
		if err == nil {
			t.Fatal("want errors")
		}
		for _, want := range wants {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("missing %q in:\n%s", want, err)
			}
		}
	}
	writeConfig(t, path, cfg)
	if _, err := parseSetup(path); err != nil && strings.Contains(err.Error(), "seed broker is required") {
		t.Fatalf("a section with a key error must not also get misleading value errors:\n%s", err)
	}
	expect(path+`:6:9: field "kafka.tls": unknown key "ca_fil"`, path+`:14:11: field "relay.linger": cannot unmarshal`)
	// With the key and type errors fixed, the value checks report.
	writeConfig(t, path, strings.NewReplacer("ca_fil", "ca_file", "linger: soon", "linger: 1s").Replace(cfg))
	expect(
		path+`:4:10: field "kafka.start": must be earliest or latest, got "oldest"`,
		path+`:5:9: field "kafka.sasl.mechanism": must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "GSSAPI"`,
		path+`:8:3: field "api": set exactly one of key_env and key_file`,
		path+`:10:14: field "api.isolation": must be split or probe, got "bisect"`,
		path+`:12:15: field "relay.log_format": must be json or text, got "xml"`,
		path+`:13:21: field "relay.max_batch_events": must be 1 to 1000`,
	)
}

// `check` reports the errors of the kafka, api, relay and schema_registry
// sections with file:line:col, as `run` does, and exits 1.
func TestCheckSections(t *testing.T) {
	cfg := `kafka:
  brokers: [localhost:9092]
  dead_letter_topic: dlq
  start: oldest
  partitions: 3
api:
  key_env: K
  isolation: bisect
relay:
  log_format: xml
schema_registry:
  urls: [http://localhost:8081]
  timout: 1s
topics:
  - topic: t
    format: json
    rules:
      - name: r
        event: {type: lead_created, action_source: offline, id: value.id, timestamp: record}
`
	path := filepath.Join(t.TempDir(), "c.yaml")
	expect := func(errs int, wants ...string) {
		t.Helper()
		code, out := runCmd(t, "check", "--config", path)
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		rest := out
		for _, w := range append(wants, fmt.Sprintf("FAIL %s: %d errors", path, errs)) {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Fatalf("check output lacks %q (in order):\n%s", w, out)
			}
			rest = rest[i+len(w):]
		}
	}
	writeConfig(t, path, cfg)
	expect(2,
		path+`:5:3: field "kafka": unknown key "partitions"`,
		path+`:13:3: field "schema_registry": unknown key "timout"`,
	)
	// With the keys fixed, the value checks report.
	writeConfig(t, path, strings.NewReplacer("  partitions: 3\n", "", "timout", "timeout").Replace(cfg))
	expect(3,
		path+`:4:10: field "kafka.start": must be earliest or latest, got "oldest"`,
		path+`:7:14: field "api.isolation": must be split or probe, got "bisect"`,
		path+`:9:15: field "relay.log_format": must be json or text, got "xml"`,
	)
}

// At start, skipping certificate verification is warned about for the
// registry as for the brokers, and the drain deadline logged on a signal is
// the effective one (the default when drain_timeout is not set).
func TestStartWarningsAndDrainDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(`kafka:
  brokers: [localhost:9092]
  dead_letter_topic: dlq
  tls: {insecure_skip_verify: true}
api: {key_env: K}
schema_registry:
  urls: [https://localhost:8081]
  tls: {insecure_skip_verify: true}
topics:
  - topic: t
    format: json
    rules:
      - name: r
        event: {type: lead_created, action_source: offline, id: value.id, timestamp: record}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := parseSetup(path)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s.warnStart(newLogger(&log, "text", "info"))
	for _, want := range []string{"kafka.tls.insecure_skip_verify is set", "schema_registry.tls.insecure_skip_verify is set"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("no warning %q in:\n%s", want, log.String())
		}
	}
	if d := s.consumerConfig(nil).DrainTimeout; d != 30*time.Second {
		t.Errorf("drain deadline %v, want the 30s default", d)
	}
}
