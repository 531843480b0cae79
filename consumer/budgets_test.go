package consumer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// TestRelayOversizedDeadLetterMovesOn: a dead letter too large for the
// dead-letter topic is permanent as it is. It used to be retried forever
// (MESSAGE_TOO_LARGE), holding its partition's commit and every shutdown;
// now it is written reduced and the partition moves on.
func TestRelayOversizedDeadLetterMovesOn(t *testing.T) {
	t.Parallel()
	// Incompressible, so that the broker (which measures the compressed
	// batch) refuses it as the relay (which measures it uncompressed) does.
	noise := make([]byte, 200_000)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(noise)
	big := append([]byte("not json "), noise...)
	for _, tc := range []struct {
		name string
		// limit is the relay's DeadLetterMaxBytes (0: read from the topic).
		limit int
	}{
		{"size read from the topic", 0},
		// The relay believes the record fits; the broker refuses it.
		{"refused by the broker", 10 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, capisim.Options{})
			topic, group := kafkatest.Topic(t, 1), kafkatest.GroupID(t)
			dlq := kafkatest.TopicWithConfigs(t, 1, map[string]string{"max.message.bytes": "65536"})
			h.produce(topic, 0, testValue{ID: "g1", TS: now()}, big, testValue{ID: "g2", TS: now()})
			m := NewMetrics(nil)
			h.startDeps(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, DeadLetterMaxBytes: tc.limit},
				Deps{Metrics: m})
			waitFor(t, "commit past the oversized dead letter", 30*time.Second, func() bool { return h.committed(group, topic)[0] == 3 })
			if got := len(h.acceptedIDs()); got != 2 {
				t.Errorf("accepted %d events, want 2", got)
			}
			rec := h.readDLQ(dlq, 1)[0]
			sum := sha256.Sum256(big)
			for k, want := range map[string]string{
				HeaderSourceOffset: "1", HeaderClass: ClassDecode,
				HeaderValueSize: strconv.Itoa(len(big)), HeaderValueSHA256: hex.EncodeToString(sum[:]),
			} {
				if got, _ := HeaderValue(rec, k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if why, ok := HeaderValue(rec, HeaderReduced); !ok || !strings.Contains(why, "value left out") {
				t.Errorf("header %s = %q", HeaderReduced, why)
			}
			if len(rec.Value) != 0 || string(rec.Key) != "k1" {
				t.Errorf("reduced dead letter: value of %d bytes, key %q; want no value, the key kept", len(rec.Value), rec.Key)
			}
			if origin, _ := HeaderValue(rec, "origin"); origin != "test" {
				t.Errorf("source header origin = %q, want it kept", origin)
			}
			if n := testutil.ToFloat64(m.DeadLettersReduced.WithLabelValues(topic)); n != 1 {
				t.Errorf("capirelay_dead_letters_reduced_total = %v, want 1", n)
			}
			if _, err := Unwrap(rec); err == nil || !strings.Contains(err.Error(), "reduced") {
				t.Errorf("Unwrap of a reduced dead letter: %v, want an error saying it is reduced", err)
			}
		})
	}
	// An error message quoting a 700 KB value made the dead letter (value +
	// message header) larger than Kafka's default 1 MB: capirelay's headers
	// are capped, so the record is written whole, value byte for byte.
	t.Run("message header capped", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, capisim.Options{})
		topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
		huge := []byte(`{"id":"` + strings.Repeat("é", 350_000) + `"}`)
		h.produce(topic, 0, huge, testValue{ID: "g1", TS: now()})
		quoting := MapperFunc(func(ctx context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error) {
			if len(rec.Value) > 100_000 {
				return dst, &RecordError{Class: ClassMapping, Rule: "lead", Err: fmt.Errorf("field id: not an id: %q", rec.Value)}
			}
			return testMapper(ctx, rec, dst)
		})
		h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq}, quoting)
		waitFor(t, "commit to the end", 30*time.Second, func() bool { return h.committed(group, topic)[0] == 2 })
		rec := h.readDLQ(dlq, 1)[0]
		if !bytes.Equal(rec.Value, huge) {
			t.Errorf("dead letter value: %d bytes, want the source's %d byte for byte", len(rec.Value), len(huge))
		}
		msg, _ := HeaderValue(rec, HeaderMessage)
		if len(msg) > MaxDeadLetterHeader || !strings.Contains(msg, "truncated, ") {
			t.Errorf("message header of %d bytes (cap %d), ends %q", len(msg), MaxDeadLetterHeader, msg[max(len(msg)-40, 0):])
		}
		if _, ok := HeaderValue(rec, HeaderReduced); ok {
			t.Error("the dead letter fits whole but was reduced")
		}
	})
}

// TestRelayTransientMappingErrorHoldsNoWorker: a record whose decoding fails
// transiently (a Schema Registry outage on topic A) used to occupy a mapping
// worker while it was retried; with one worker (a pod limited to one CPU,
// GOMAXPROCS=1) every topic stalled. It is now parked off the worker and its
// partition paused: topic B is relayed in full during the outage, A's
// partition reads nothing more, and A catches up once the registry is back.
func TestRelayTransientMappingErrorHoldsNoWorker(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{})
	topicA, topicB, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	vals := func(prefix string, n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = testValue{ID: fmt.Sprintf("%s-%d", prefix, i), TS: now()}
		}
		return out
	}
	h.produce(topicA, 0, vals("a", 30)...)
	var outage atomic.Bool
	outage.Store(true)
	var attempts atomic.Int64
	mapper := MapperFunc(func(ctx context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error) {
		if rec.Topic == topicA && outage.Load() {
			attempts.Add(1)
			return dst, fmt.Errorf("%s/%d@%d: schema registry: 503 Service Unavailable (%w)", rec.Topic, rec.Partition, rec.Offset, ErrTransient)
		}
		return testMapper(ctx, rec, dst)
	})
	m := NewMetrics(nil)
	run := h.startDeps(Config{Group: group, Topics: []string{topicA, topicB}, DeadLetterTopic: dlq, MapWorkers: 1},
		Deps{Mapper: mapper, Metrics: m})
	waitFor(t, "topic A's records parked", 20*time.Second, func() bool { return testutil.ToFloat64(m.RecordsParked) > 0 })
	readA := run.r.Progress().ConsumedByTopic[topicA]
	h.produce(topicA, 0, vals("a-late", 50)...)
	h.produce(topicB, 0, vals("b", 300)...)
	waitFor(t, "topic B relayed during the outage", 30*time.Second, func() bool { return h.committed(group, topicB)[0] == 300 })
	if got := len(h.acceptedIDs()); got != 300 {
		t.Errorf("accepted %d events during the outage, want B's 300", got)
	}
	if c := h.committed(group, topicA)[0]; c != 0 {
		t.Errorf("topic A committed %d during the outage", c)
	}
	if now := run.r.Progress().ConsumedByTopic[topicA]; now != readA {
		t.Errorf("topic A's paused partition read %d more records during the outage", now-readA)
	}
	if a := attempts.Load(); a < 2 {
		t.Errorf("%d attempts at topic A's records: not retried", a)
	}
	outage.Store(false)
	waitFor(t, "topic A relayed after the outage", 40*time.Second, func() bool { return h.committed(group, topicA)[0] == 80 })
	if got := len(h.acceptedIDs()); got != 380 {
		t.Errorf("accepted %d events, want 380", got)
	}
	if n := h.endOffsets(dlq)[0]; n != 0 {
		t.Errorf("%d dead letters for a transient failure", n)
	}
	if p := testutil.ToFloat64(m.RecordsParked); p != 0 {
		t.Errorf("capirelay_records_parked = %v after the outage", p)
	}
}

// countingSender records the size of every batch it forwards.
type countingSender struct {
	Sender
	mu      sync.Mutex
	batches []int
}

func (s *countingSender) Send(ctx context.Context, b capi.Batch) (*capi.Result, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(b.Events))
	s.mu.Unlock()
	return s.Sender.Send(ctx, b)
}

// TestRelayMemoryBoundedInBytes: the unsettled records are bounded in bytes,
// not only in count (20,000 records of 1 MB were 20 GB). Behind an API that
// answers nothing, polling stops near the byte budget; and a record larger
// than the whole budget still passes, alone.
func TestRelayMemoryBoundedInBytes(t *testing.T) {
	t.Parallel()
	value := func(id string, size int) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"ts":%d,"pad":%q}`, id, now(), strings.Repeat("p", size)))
	}
	t.Run("polling stops at the budget", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, capisim.Options{HangRate: 1})
		topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
		const n, size, budget = 100, 50_000, 256 << 10
		vals := make([]any, n)
		for i := range vals {
			vals[i] = value(fmt.Sprint("m-", i), size)
		}
		h.produce(topic, 0, vals...)
		m := NewMetrics(nil)
		run := h.startDeps(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, MaxUnsettledBytes: budget,
			DrainTimeout: time.Second}, Deps{Metrics: m})
		waitFor(t, "a request hanging", 20*time.Second, func() bool { return h.sim.Stats().Hung >= 1 })
		time.Sleep(time.Second) // the poll loop would read on if it could
		read := run.r.Progress().Consumed
		held := testutil.ToFloat64(m.UnsettledBytes)
		t.Logf("read %d of %d records (%.0f bytes held, budget %d)", read, n, held, budget)
		// One poll may overshoot the budget by what the client buffered:
		// one fetch of at most 1 MiB here.
		if limit := float64(budget + 1<<20 + size); held > limit || read >= n {
			t.Errorf("%d records and %.0f bytes held, want at most %.0f bytes and fewer than %d records", read, held, limit, n)
		}
	})
	t.Run("a record larger than the budget passes alone", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, capisim.Options{})
		topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
		const n = 8
		vals := make([]any, n)
		for i := range vals {
			vals[i] = value(fmt.Sprint("l-", i), 100_000)
		}
		h.produce(topic, 0, vals...)
		api := &countingSender{Sender: h.api}
		h.startDeps(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, MaxUnsettledBytes: 16 << 10},
			Deps{API: api})
		waitFor(t, "commit to the end", 30*time.Second, func() bool { return h.committed(group, topic)[0] == n })
		api.mu.Lock()
		defer api.mu.Unlock()
		for _, b := range api.batches {
			if b != 1 {
				t.Fatalf("batches of %v events: more than one record over the budget was held at once", api.batches)
			}
		}
		if got := len(h.acceptedIDs()); got != n {
			t.Errorf("accepted %d, want %d", got, n)
		}
	})
}
