package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/internal/kafkatest"
)

// A reload that adds the config's first Avro topic: its records are decoded
// through the configured registry and relayed, not dead-lettered for want
// of a decoder.
func TestReloadAddsFirstAvroTopic(t *testing.T) {
	e := newOpsEnv(t, 1)
	avroTopic := kafkatest.Topic(t, 1)
	reg := srfake.New()
	t.Cleanup(reg.Close)
	d, err := registerDemoSchemas(reg, avroTopic+"-value")
	if err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf(`kafka: {brokers: [%s], group: %s, dead_letter_topic: %s}
api: {base_url: %q, key_env: CAPIRELAY_TEST_API_KEY, pixel: %s}
relay: {listen: "off", commit_interval: 100ms, linger: 20ms}
schema_registry: {urls: [%q], timeout: 2s}
`, strings.Join(e.brokers, ","), e.group, e.dlq, e.simURL, binPixel, reg.URL())
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path, head+"topics:\n"+jsonTopic(e.topic))
	l := startLive(t, path)

	rng := mrand.New(mrand.NewPCG(7, 8))
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		o := demoOrder(rng, fmt.Sprintf("reload_avro_%02d", i), time.Now().Add(-time.Minute), 1)
		o["status"] = "paid"
		b, err := encodeAvro(d.v1, d.id1, o)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: avroTopic, Value: b})
	}
	if err := kafkatest.Client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	writeConfig(t, path, head+strings.TrimRight(avroRules(t, avroTopic, avroTopic+"-value"), "\n")+"\n"+jsonTopic(e.topic))
	l.r.reload(context.Background(), "test")
	if ok := gauge(t, l.reg, "capirelay_rules_last_reload_success"); ok != 1 {
		t.Fatalf("reload failed (last_reload_success %v):\n%s", ok, l.log)
	}
	eventually(t, "the Avro records settled", func() bool { return l.relay.Progress().Settled >= 10 })
	if p := l.relay.Progress(); p.Accepted != 10 || p.DeadLettered != 0 {
		t.Fatalf("after the reload: %+v; want the 10 Avro orders accepted, none dead-lettered\n%s", p, l.log)
	}
}

// A reload that adds an Avro topic to a relay started without a schema
// registry is refused (the registry needs a restart): the previous rules
// stay, as the log and the metric say.
func TestReloadAvroTopicWithoutRegistry(t *testing.T) {
	e := newOpsEnv(t, 1)
	avroTopic := kafkatest.Topic(t, 1)
	head := e.sections()
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeConfig(t, path, head+"topics:\n"+jsonTopic(e.topic))
	l := startLive(t, path)
	writeConfig(t, path, head+"schema_registry: {urls: [\"http://127.0.0.1:1\"]}\n"+
		strings.TrimRight(avroRules(t, avroTopic, avroTopic+"-value"), "\n")+"\n"+jsonTopic(e.topic))
	l.r.reload(context.Background(), "test")
	if got := l.adapter.rules.cur.Load(); got != l.s.mapper {
		t.Errorf("the refused rules are live: topics %v", got.Topics())
	}
	if ok := gauge(t, l.reg, "capirelay_rules_last_reload_success"); ok != 0 {
		t.Errorf("last_reload_success %v, want 0", ok)
	}
	if log := l.log.String(); !strings.Contains(log, "previous rules stay in force") || !strings.Contains(log, "started without schema_registry.urls") {
		t.Errorf("log:\n%s", log)
	}
}

// A schema_registry change is reported like the other sections that need a
// restart.
func TestSameSectionsRegistry(t *testing.T) {
	a, b := &setup{}, &setup{}
	a.registry.URLs, b.registry.URLs = []string{"http://a:8081"}, []string{"http://b:8081"}
	if sameSections(a, b) {
		t.Fatal("a schema_registry change is not seen")
	}
	b.registry.URLs = a.registry.URLs
	if !sameSections(a, b) {
		t.Fatal("equal sections differ")
	}
}
