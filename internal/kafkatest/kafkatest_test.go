package kafkatest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/internal/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.Main(m) }

// TestRoundTrip produces 100 keyed records with headers to a 3-partition
// topic, consumes them back in a consumer group, and checks contents,
// per-partition order and the committed offsets.
func TestRoundTrip(t *testing.T) {
	t.Logf("broker: %s %v", kafkatest.Kind(t), kafkatest.Brokers(t))
	topic := kafkatest.Topic(t, 3)
	group := kafkatest.GroupID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const n = 100
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{
			Key:   fmt.Appendf(nil, "key-%03d", i),
			Value: fmt.Appendf(nil, "value-%03d", i),
			Headers: []kgo.RecordHeader{
				{Key: "seq", Value: fmt.Appendf(nil, "%d", i)},
				{Key: "empty", Value: nil},
				{Key: "seq", Value: []byte("repeated")},
			},
		}
	}
	prod := kafkatest.Client(t, kgo.DefaultProduceTopic(topic))
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s: %v", n, topic, err)
	}
	// ProduceSync set Partition and Offset on every record.
	want := make(map[string]*kgo.Record, n)
	perPartition := map[int32]int64{}
	for _, r := range recs {
		want[string(r.Key)] = r
		perPartition[r.Partition]++
	}
	if len(perPartition) != 3 {
		t.Fatalf("100 keys landed on %d partitions, want 3: %v", len(perPartition), perPartition)
	}

	cons := kafkatest.Client(t,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	var got []*kgo.Record
	for len(got) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}

	lastOffset := map[int32]int64{}
	lastKey := map[int32]string{}
	seen := map[string]bool{}
	for _, r := range got {
		k := string(r.Key)
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("consumed unexpected key %q", k)
			continue
		case seen[k]:
			t.Errorf("consumed key %q twice", k)
		}
		seen[k] = true
		if !bytes.Equal(r.Value, w.Value) {
			t.Errorf("key %q: value %q, want %q", k, r.Value, w.Value)
		}
		if !equalHeaders(r.Headers, w.Headers) {
			t.Errorf("key %q: headers %v, want %v", k, r.Headers, w.Headers)
		}
		if r.Partition != w.Partition || r.Offset != w.Offset {
			t.Errorf("key %q: at %d/%d, produced to %d/%d", k, r.Partition, r.Offset, w.Partition, w.Offset)
		}
		if prev, ok := lastOffset[r.Partition]; ok && (r.Offset <= prev || k <= lastKey[r.Partition]) {
			t.Errorf("partition %d: %q at offset %d came after %q at offset %d",
				r.Partition, k, r.Offset, lastKey[r.Partition], prev)
		}
		lastOffset[r.Partition], lastKey[r.Partition] = r.Offset, k
	}

	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	offsets, err := kadm.NewClient(kafkatest.Client(t)).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch committed offsets of %s: %v", group, err)
	}
	for p, count := range perPartition {
		o, ok := offsets.Lookup(topic, p)
		switch {
		case !ok:
			t.Errorf("partition %d: no committed offset", p)
		case o.Err != nil:
			t.Errorf("partition %d: committed offset error: %v", p, o.Err)
		case o.At != count:
			t.Errorf("partition %d: committed offset %d, want %d (records in it)", p, o.At, count)
		}
	}
}

func equalHeaders(a, b []kgo.RecordHeader) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// TestParallelTestsAreIsolated runs two parallel tests of the same name;
// each must get its own topic and group, and read back only its own record.
func TestParallelTestsAreIsolated(t *testing.T) {
	var mu sync.Mutex
	topics, groups := map[string]bool{}, map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for range 2 {
			t.Run("same", func(t *testing.T) {
				t.Parallel()
				topic, group := kafkatest.Topic(t, 1), kafkatest.GroupID(t)
				if !strings.HasPrefix(topic, "TestParallelTestsAreIsolated-group-same") {
					t.Errorf("topic %q is not named after the test", topic)
				}
				if again := kafkatest.GroupID(t); again == group {
					t.Errorf("GroupID returned %q twice", group)
				}
				mu.Lock()
				topics[topic], groups[group] = true, true
				mu.Unlock()

				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				cl := kafkatest.Client(t, kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic),
					kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(t.Name())}).FirstErr(); err != nil {
					t.Fatalf("produce: %v", err)
				}
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("poll: %v", err)
				}
				if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != t.Name() {
					t.Fatalf("read back %d records, first %q; want only %q", len(recs), firstValue(recs), t.Name())
				}
			})
		}
	})
	if len(topics) != 2 || len(groups) != 2 {
		t.Errorf("two parallel tests got %d distinct topics and %d distinct groups, want 2 and 2: %v %v",
			len(topics), len(groups), topics, groups)
	}
}

func firstValue(recs []*kgo.Record) string {
	if len(recs) == 0 {
		return ""
	}
	return string(recs[0].Value)
}
