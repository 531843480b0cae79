package main

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// TestRelayTransientRegistryOutageJSONTopicFlows: the Schema Registry is down
// for an Avro topic while a JSON topic has a backlog. The Avro records are
// parked off the mapping workers (their partitions paused), so the JSON topic
// is relayed in full during the outage — also with one mapping worker (make
// test runs this with -cpu 1: GOMAXPROCS=1, the default worker count). Once
// the registry is back the Avro topic catches up; nothing is dead-lettered.
func TestRelayTransientRegistryOutageJSONTopicFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a broker")
	}
	t.Logf("GOMAXPROCS %d (mapping workers)", runtime.GOMAXPROCS(0))
	brokers := kafkatest.Brokers(t)
	avroTopic, jsonTopic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 2), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	reg := srfake.New()
	t.Cleanup(reg.Close)
	var down atomic.Bool
	var refused atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			refused.Add(1)
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	subject := avroTopic + "-value"
	d, err := registerDemoSchemas(reg, subject)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(7, 8))
	now := time.Now()
	const nAvro, nJSON = 20, 200
	var recs, jsonRecs []*kgo.Record
	for i := range nAvro {
		o := demoOrder(rng, fmt.Sprintf("avro_%02d", i), now.Add(-time.Minute), 2)
		o["status"] = "paid"
		b, err := encodeAvro(d.v1, d.id1, o)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: avroTopic, Value: b})
	}
	for i := range nJSON {
		o := demoOrder(rng, fmt.Sprintf("json_%03d", i), now.Add(-time.Minute), 2)
		o["status"] = "paid"
		b, _ := json.Marshal(o)
		jsonRecs = append(jsonRecs, &kgo.Record{Topic: jsonTopic, Value: b})
	}
	produce := func(recs []*kgo.Record) {
		t.Helper()
		if err := kafkatest.Client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(recs)

	ex, err := os.ReadFile("../../deploy/examples/web-shop/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	jsonRules := strings.Replace(string(ex), "topic: shop.orders", "topic: "+jsonTopic, 1)
	jsonRules = jsonRules[strings.Index(jsonRules, "topics:"):]
	avroEntry := strings.Replace(strings.TrimPrefix(avroRules(t, avroTopic, subject), "topics:\n"), "name: order-created", "name: avro-order-created", 1)
	sim, simURL := newTestSim(t, capisim.Options{})
	t.Setenv("CAPIRELAY_TEST_API_KEY", binKey)
	cfg := fmt.Sprintf(`kafka: {brokers: [%s], group: %s, dead_letter_topic: %s}
api: {base_url: %q, key_env: CAPIRELAY_TEST_API_KEY, pixel: %s}
relay: {listen: "off", commit_interval: 100ms, linger: 20ms}
schema_registry: {urls: [%q], timeout: 1s}
%s
%s`, strings.Join(brokers, ","), group, dlq, simURL, binPixel, proxy.URL, strings.TrimRight(jsonRules, "\n"), avroEntry)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	relay, stop := startRelay(t, path)
	adm := kadm.NewClient(kafkatest.Client(t))
	committed := func(topic string) int64 { return sumOffsets(committedOffsets(t, adm, group, topic)) }
	// The JSON backlog arrives once the Avro records meet the outage.
	eventually(t, "the relay to meet the registry outage", func() bool { return refused.Load() >= 2 })
	produce(jsonRecs)
	eventually(t, "the JSON topic relayed during the registry outage", func() bool { return committed(jsonTopic) == nJSON })
	if c := committed(avroTopic); c != 0 {
		t.Fatalf("the Avro topic committed %d during the outage", c)
	}
	if n := len(sim.Events()); n != nJSON {
		t.Fatalf("%d events accepted during the outage, want the JSON topic's %d", n, nJSON)
	}
	down.Store(false)
	eventually(t, "the Avro topic relayed after the outage", func() bool { return committed(avroTopic) == nAvro })
	stop()
	if p := relay.Progress(); p.Accepted != nAvro+nJSON || p.DeadLettered != 0 {
		t.Fatalf("after the outage: %+v; want %d accepted, none dead-lettered", p, nAvro+nJSON)
	}
	t.Logf("registry refused %d requests during the outage", refused.Load())
}
