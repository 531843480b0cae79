package consumer

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// Dead-letter writes failing for a while (injected with kfake) must hold the
// commit before the bad record until the write succeeds; nothing is lost.
func TestRelayDeadLetterWriteFailureHoldsCommit(t *testing.T) {
	t.Parallel()
	const topic, dlq = "orders", "orders.dlq"
	cluster, failing, refused := refusingCluster(t, topic, dlq)

	h := newHarness(t, capisim.Options{})
	h.brokers = cluster.ListenAddrs()
	h.adm = newAdmFor(t, h.brokers)
	group := "dlq-failure"
	h.produce(topic, 0,
		testValue{ID: "g1", TS: now()},
		testValue{ID: "g2", TS: now()},
		[]byte("not json"), // offset 2: must be dead-lettered
		testValue{ID: "g3", TS: now()},
		testValue{ID: "g4", TS: now()},
	)
	failing.Store(true)
	h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq}, nil)
	waitFor(t, "good events accepted", 20*time.Second, func() bool { return len(h.sim.Events()) == 4 })
	waitFor(t, "dead-letter writes refused", 20*time.Second, func() bool { return refused.Load() >= 3 })
	waitFor(t, "commit of the settled prefix", 10*time.Second, func() bool { return h.committed(group, topic)[0] == 2 })
	time.Sleep(500 * time.Millisecond)
	if c := h.committed(group, topic)[0]; c != 2 {
		t.Fatalf("committed %d while the dead-letter write of offset 2 fails; want 2", c)
	}
	if e := h.endOffsets(dlq)[0]; e != 0 {
		t.Fatalf("dead-letter topic has %d records during the fault", e)
	}
	failing.Store(false)
	waitFor(t, "commit to the end after the fault", 30*time.Second, func() bool { return h.committed(group, topic)[0] == 5 })
	recs := h.readDLQ(dlq, 1)
	if off, _ := HeaderValue(recs[0], HeaderSourceOffset); off != "2" || string(recs[0].Value) != "not json" {
		t.Fatalf("dead-letter record: offset %s value %q", off, recs[0].Value)
	}
	t.Logf("dead-letter writes refused %d times before the fault was lifted", refused.Load())
}

// An event that leaves the API's window while an outage holds its batch is
// dead-lettered as expired before it would be sent, not sent to be refused;
// the other events go through once the API is back.
func TestRelayEventExpiresDuringOutage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, capisim.Options{FailRate: 1})
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	almostOld := time.Now().Add(-capi.MaxEventAge + 2*time.Second).UnixMilli()
	h.produce(topic, 0,
		testValue{ID: "fresh-1", TS: now()},
		testValue{ID: "about-to-expire", TS: almostOld},
		testValue{ID: "fresh-2", TS: now()},
	)
	h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, SendRound: 300 * time.Millisecond}, nil)
	waitFor(t, "the expired event dead-lettered during the outage", 20*time.Second, func() bool { return h.endOffsets(dlq)[0] == 1 })
	if err := h.sim.SetFaults(capisim.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "commit to the end", 20*time.Second, func() bool { return h.committed(group, topic)[0] == 3 })
	got := h.acceptedIDs()
	if len(got) != 2 || got["lead_created/fresh-1"] != 1 || got["lead_created/fresh-2"] != 1 {
		t.Fatalf("accepted %v", got)
	}
	rec := h.readDLQ(dlq, 1)[0]
	class, _ := HeaderValue(rec, HeaderClass)
	msg, _ := HeaderValue(rec, HeaderMessage)
	if class != ClassExpired || !strings.Contains(msg, "while waiting to be sent") {
		t.Fatalf("dead letter: class %q message %q", class, msg)
	}
	if st := h.sim.Stats(); st.BatchesRejected != 0 {
		t.Fatalf("the API was sent an expired event: %d batches rejected", st.BatchesRejected)
	}
}

// TestRelayDrainWaitsForWhatCanSettle: at shutdown the drain waits for every
// record that can still settle, whatever holds it: events still lingering in
// a batch (flushed by the drain), a batch paused on a configuration fault
// (401), a dead-letter write being retried. Both faults are lifted during
// the drain: everything settles, the commit reaches the end, nothing is lost.
func TestRelayDrainWaitsForWhatCanSettle(t *testing.T) {
	t.Parallel()
	const topic, dlq = "orders", "orders.dlq"
	cluster, failing, refused := refusingCluster(t, topic, dlq)
	h := newHarness(t, capisim.Options{AuthFailRate: 1})
	h.brokers = cluster.ListenAddrs()
	h.adm = newAdmFor(t, h.brokers)
	group := "drain-waits"
	h.produce(topic, 0,
		testValue{ID: "g1", TS: now()},
		testValue{ID: "g2", TS: now()},
		[]byte("not json"), // offset 2: dead-lettered
		testValue{ID: "g3", TS: now()},
		testValue{ID: "g4", TS: now()},
	)
	failing.Store(true)
	run := h.start(Config{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq, Linger: 3 * time.Second,
		ConfigRetryInterval: 200 * time.Millisecond, DrainTimeout: 20 * time.Second}, nil)
	waitFor(t, "a dead-letter write refused", 10*time.Second, func() bool { return refused.Load() >= 1 })
	if n := h.sim.Stats().RequestsByStatus[401]; n != 0 {
		t.Fatalf("the batch was sent before the shutdown (%d answers 401): it must still linger", n)
	}
	go func() { // once the drain has flushed the batch and it is paused on a 401
		for deadline := time.Now().Add(10 * time.Second); h.sim.Stats().RequestsByStatus[401] == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		failing.Store(false)
		if err := h.sim.SetFaults(capisim.Faults{}); err != nil {
			t.Error(err)
		}
	}()
	took := run.stopWithin(t, 15*time.Second, false)
	t.Logf("the drain took %v; %d dead-letter writes refused, %d answers 401", took, refused.Load(), h.sim.Stats().RequestsByStatus[401])
	if took >= 3*time.Second {
		t.Errorf("the drain took %v: it did not flush the lingering batch at once (Linger 3s)", took)
	}
	if got := len(h.acceptedIDs()); got != 4 {
		t.Errorf("accepted %d events, want 4", got)
	}
	if c := h.committed(group, topic)[0]; c != 5 {
		t.Errorf("committed %d after the drain, want 5", c)
	}
	if e := h.endOffsets(dlq)[0]; e != 1 {
		t.Errorf("dead-letter topic has %d records, want 1", e)
	}
}

// refusingCluster returns a one-broker kfake cluster with the topics, whose
// produce requests to the last topic (the dead-letter topic) are refused
// (TopicAuthorizationFailed) while failing is set; refused counts the
// refusals. Producing to the other topics works throughout.
func refusingCluster(t *testing.T, topics ...string) (cluster *kfake.Cluster, failing *atomic.Bool, refused *atomic.Int64) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	dlq := topics[len(topics)-1]
	td, err := newAdmFor(t, cluster.ListenAddrs()).ListTopics(context.Background(), dlq)
	if err != nil || td[dlq].Err != nil {
		t.Fatalf("topic id of %s: %v %v", dlq, err, td[dlq].Err)
	}
	dlqID := td[dlq].ID
	failing, refused = new(atomic.Bool), new(atomic.Int64)
	cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		toDLQ := false
		for _, rt := range req.Topics {
			// Produce v13 names topics by id, not name.
			toDLQ = toDLQ || rt.Topic == dlq || rt.TopicID == dlqID
		}
		if !failing.Load() || !toDLQ {
			return nil, nil, false
		}
		refused.Add(1)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return cluster, failing, refused
}

// TestRelayHeldRecordPausesItsPartition: a record held by a failure that can
// heal (its dead-letter write refused) must not let its partition's tracker
// grow with every record read after it: past MaxUnsettledRecords tracked
// records the partition is paused, other topics keep flowing, and it resumes
// once the record settles.
func TestRelayHeldRecordPausesItsPartition(t *testing.T) {
	t.Parallel()
	const topic, other, dlq = "orders", "signups", "orders.dlq"
	cluster, failing, refused := refusingCluster(t, topic, other, dlq)
	h := newHarness(t, capisim.Options{})
	h.brokers = cluster.ListenAddrs()
	h.adm = newAdmFor(t, h.brokers)
	group := "window"
	const n, window = 500, 50
	vals := []any{[]byte("not json")} // offset 0: its dead-letter write is refused
	for i := range n {
		vals = append(vals, testValue{ID: fmt.Sprint("o-", i), TS: now()})
	}
	h.produce(topic, 0, vals...)
	failing.Store(true)
	run := h.start(Config{Group: group, Topics: []string{topic, other}, DeadLetterTopic: dlq, MaxUnsettledRecords: window}, nil)
	waitFor(t, "dead-letter writes refused", 20*time.Second, func() bool { return refused.Load() >= 2 })
	time.Sleep(time.Second) // the poll loop would read on if it could
	read := run.r.Progress().ConsumedByTopic[topic]
	t.Logf("read %d of %d records behind the held one", read, n+1)
	if read > 2*window+1 {
		t.Errorf("read %d records behind a held record; want the partition paused near %d", read, window)
	}
	othersVals := make([]any, 100)
	for i := range othersVals {
		othersVals[i] = testValue{ID: fmt.Sprint("s-", i), TS: now()}
	}
	h.produce(other, 0, othersVals...)
	waitFor(t, "the other topic relayed", 20*time.Second, func() bool { return h.committed(group, other)[0] == 100 })
	failing.Store(false)
	waitFor(t, "commit to the end once the write succeeds", 30*time.Second, func() bool { return h.committed(group, topic)[0] == n+1 })
	if got := len(h.acceptedIDs()); got != n+100 {
		t.Errorf("accepted %d events, want %d", got, n+100)
	}
}
