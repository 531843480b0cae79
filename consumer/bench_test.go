package consumer

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/secret"
)

// benchRecords is the backlog size of the end-to-end benchmarks; override
// with CAPIRELAY_BENCH_RECORDS.
func benchRecords() int {
	if n, err := strconv.Atoi(os.Getenv("CAPIRELAY_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 200000
}

// seedBacklog starts a kfake cluster holding n records on 6 partitions.
func seedBacklog(b *testing.B, topic string, n int) *kfake.Cluster {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topic, topic+".dlq"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ts := time.Now().UnixMilli()
	errs := make(chan error, 1)
	for i := 0; i < n; i++ {
		v, _ := json.Marshal(testValue{ID: "ev-" + strconv.Itoa(i), TS: ts})
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return c
}

// BenchmarkRelayEndToEnd measures a backlog worked off by the relay: kfake
// and the simulator in process, events/s until every record is committed.
func BenchmarkRelayEndToEnd(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts capisim.Options
		conc int
	}{
		{"nullsink", capisim.Options{NullSink: true}, 8},
		{"validating", capisim.Options{}, 8},
		{"nullsink-50ms", capisim.Options{NullSink: true, Latency: 50 * time.Millisecond}, 32},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := benchRecords()
			for b.Loop() {
				b.StopTimer()
				topic := "orders"
				cluster := seedBacklog(b, topic, n)
				tc.opts.APIKey, tc.opts.Pixels, tc.opts.MaxStoredEvents = simKey, []string{simPixel}, 1
				sim, err := capisim.New(tc.opts)
				if err != nil {
					b.Fatal(err)
				}
				srv := httptest.NewServer(sim)
				api, err := capi.NewClient(capi.Config{BaseURL: srv.URL, APIKey: secret.New(simKey)})
				if err != nil {
					b.Fatal(err)
				}
				r, err := New(Config{Connection: []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}, Group: "bench",
					Topics: []string{topic}, DeadLetterTopic: topic + ".dlq", Concurrency: tc.conc, CommitInterval: 50 * time.Millisecond},
					Deps{Mapper: testMapper, NewMapper: func() Mapper { return testMapper }, API: api, Validator: &capi.Validator{}, DefaultPixel: simPixel,
						Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- r.Run(ctx, nil) }()
				for r.Progress().Settled < int64(n) {
					time.Sleep(5 * time.Millisecond)
				}
				el := time.Since(start)
				b.StopTimer()
				cancel()
				<-done
				srv.Close()
				sim.Close()
				b.ReportMetric(float64(n)/el.Seconds(), "events/s")
				b.ReportMetric(0, "ns/op")
				b.StartTimer()
			}
		})
	}
}

// BenchmarkBareConsume is the ceiling: franz-go consuming the same backlog
// from kfake with a group and doing nothing with it.
func BenchmarkBareConsume(b *testing.B) {
	n := benchRecords()
	for b.Loop() {
		b.StopTimer()
		cluster := seedBacklog(b, "orders", n)
		cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumerGroup("bare"),
			kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		got := 0
		for got < n {
			got += len(cl.PollRecords(context.Background(), 10000).Records())
		}
		el := time.Since(start)
		b.StopTimer()
		cl.Close()
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
		b.ReportMetric(0, "ns/op")
		b.StartTimer()
	}
}
