package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/consumer"
	"github.com/capirelay/capirelay/deploy/examples"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// avroRules returns the avro-orders example's topic entry for topic, with
// the local schema files dropped (the relay reads schemas by id from the
// registry) and the subject set.
func avroRules(t testing.TB, topic, subject string) string {
	t.Helper()
	b, err := examples.FS.ReadFile("avro-orders/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "schema:"):
			continue
		case strings.HasPrefix(trim, "subject:"):
			line = "    subject: " + subject
		case strings.HasPrefix(trim, "- topic:"):
			line = "  - topic: " + topic
		}
		out = append(out, line)
	}
	s := strings.Join(out, "\n")
	return s[strings.Index(s, "topics:"):]
}

// An Avro topic with records of both schema versions interleaved: every
// order is accepted with the same rules. While the registry is down nothing
// is committed and nothing dead-lettered; once it is back everything flows,
// and a record with a schema id the registry does not know is dead-lettered.
func TestAvroRelayVersionsAndRegistryOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a broker")
	}
	brokers := kafkatest.Brokers(t)
	topic, dlq, group := kafkatest.Topic(t, 2), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
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
	subject := topic + "-value"
	d, err := registerDemoSchemas(reg, subject)
	if err != nil {
		t.Fatal(err)
	}
	v1, v2, id1, id2 := d.v1, d.v2, d.id1, d.id2

	// 40 orders, v1 and v2 alternating, and one record with an unknown id.
	rng := mrand.New(mrand.NewPCG(5, 6))
	now := time.Now()
	var recs []*kgo.Record
	for i := 0; i < 40; i++ {
		o := demoOrder(rng, fmt.Sprintf("avro_%02d", i), now.Add(-time.Minute), 2)
		o["status"] = "paid"
		var b []byte
		var err error
		if i%2 == 0 {
			b, err = encodeAvro(v1, id1, o)
		} else {
			var o2 map[string]any
			if o2, err = orderV2(o); err == nil {
				b, err = encodeAvro(v2, id2, o2)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Value: b})
	}
	unknown, err := encodeAvro(v1, 9999, demoOrder(rng, "avro_unknown", now, 1))
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, &kgo.Record{Topic: topic, Value: unknown})
	if err := kafkatest.Client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sim, simURL := newTestSim(t, capisim.Options{})
	t.Setenv("CAPIRELAY_TEST_API_KEY", binKey)
	cfg := fmt.Sprintf(`kafka: {brokers: [%s], group: %s, dead_letter_topic: %s}
api: {base_url: %q, key_env: CAPIRELAY_TEST_API_KEY, pixel: %s}
relay: {listen: "off", commit_interval: 100ms, linger: 20ms}
schema_registry: {urls: [%q], timeout: 2s}
%s`, strings.Join(brokers, ","), group, dlq, simURL, binPixel, proxy.URL, avroRules(t, topic, subject))
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	relay, stop := startRelay(t, path)
	eventually(t, "the relay to meet the registry outage", func() bool { return refused.Load() >= 3 })
	time.Sleep(time.Second)
	adm := kadm.NewClient(kafkatest.Client(t))
	committed := func() int64 { return sumOffsets(committedOffsets(t, adm, group, topic)) }
	if p := relay.Progress(); p.Accepted != 0 || p.DeadLettered != 0 || committed() != 0 {
		t.Fatalf("during the registry outage: %+v, committed %d; want nothing sent, dead-lettered or committed", p, committed())
	}

	down.Store(false)
	eventually(t, "every record settled after the outage", func() bool { return committed() == 41 })
	stop()
	if p := relay.Progress(); p.Accepted != 40 || p.DeadLettered != 1 {
		t.Fatalf("after the outage: %+v; want 40 accepted, 1 dead-lettered", p)
	}
	ids := map[string]bool{}
	for _, e := range sim.Events() {
		ids[e.ID] = true
	}
	if len(ids) != 40 || !ids["avro_00"] || !ids["avro_39"] {
		t.Fatalf("accepted ids %v", ids)
	}
	cl := kafkatest.Client(t, kgo.ConsumeTopics(dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dead []*kgo.Record
	for len(dead) < 1 && ctx.Err() == nil {
		dead = append(dead, cl.PollFetches(ctx).Records()...)
	}
	if len(dead) != 1 {
		t.Fatalf("dead-letter records: %d", len(dead))
	}
	class, _ := consumer.HeaderValue(dead[0], consumer.HeaderClass)
	msg, _ := consumer.HeaderValue(dead[0], consumer.HeaderMessage)
	if class != consumer.ClassDecode || !strings.Contains(msg, "9999") || string(dead[0].Value) != string(unknown) {
		t.Fatalf("unknown schema id dead letter: class %q message %q", class, msg)
	}
	t.Logf("registry refused %d requests during the outage; 40 orders (v1 ids %d, v2 ids %d) accepted; unknown id: %s", refused.Load(), id1, id2, msg)
}
