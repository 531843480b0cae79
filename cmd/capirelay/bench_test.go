package main

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// benchN is the backlog of the end-to-end benchmarks (CAPIRELAY_BENCH_RECORDS,
// default def).
func benchN(def int) int {
	if n, err := strconv.Atoi(os.Getenv("CAPIRELAY_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return def
}

// benchOrders produces n paid web-shop orders to topic (6 partitions).
func benchOrders(b *testing.B, brokers []string, topic string, n int) {
	b.Helper()
	benchOrdersPadded(b, brokers, topic, n, 0)
}

// benchOrdersPadded is benchOrders with a "notes" member of pad bytes in each
// order, which no rule reads.
func benchOrdersPadded(b *testing.B, brokers []string, topic string, n, pad int) {
	b.Helper()
	notes := strings.Repeat("n", pad)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond),
		kgo.MaxBufferedRecords(200000), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	rng := mrand.New(mrand.NewPCG(3, 4))
	now := time.Now()
	errc := make(chan error, 1)
	for i := 0; i < n; i++ {
		o := demoOrder(rng, "ord_"+strconv.Itoa(i), now.Add(-time.Duration(rng.IntN(3600))*time.Second), 2)
		o["status"] = "paid"
		if pad > 0 {
			o["notes"] = notes
		}
		v, _ := json.Marshal(o)
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
}

// benchTuning is the relay section's tuning of the throughput benchmarks.
const benchTuning = "  concurrency: 16\n  max_unsettled_records: 50000"

// benchConfig writes a config with the web-shop rules on topic; relayExtra
// is added to the relay section (benchTuning, or "" for the defaults).
func benchConfig(b *testing.B, brokers []string, topic, dlq, group, apiURL, relayExtra string) string {
	b.Helper()
	ex, err := os.ReadFile("../../deploy/examples/web-shop/config.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rules := strings.Replace(string(ex), "topic: shop.orders", "topic: "+topic, 1)
	i := strings.Index(rules, "topics:")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  dead_letter_topic: %s
api:
  base_url: %s
  key_env: CAPIRELAY_TEST_API_KEY
  pixel: %s
relay:
  listen: "off"
  log_level: error
%s
%s`, strings.Join(brokers, ","), group, dlq, apiURL, binPixel, relayExtra, rules[i:])
	path := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func newBenchSim(b *testing.B, opts capisim.Options) string {
	b.Helper()
	opts.MaxStoredEvents = 1
	_, url := newTestSim(b, opts)
	return url
}

// BenchmarkEndToEndKfake: a backlog of web-shop orders in an in-process
// kfake, the real rules and relay, the simulator in process. Reports
// events/s from start to the last record settled.
func BenchmarkEndToEndKfake(b *testing.B) {
	for _, tc := range []struct {
		name string
		sim  capisim.Options
	}{
		{"nullsink", capisim.Options{NullSink: true}},
		{"validating", capisim.Options{}},
		{"nullsink-latency50ms", capisim.Options{NullSink: true, Latency: 50 * time.Millisecond}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := benchN(200000)
			b.Setenv("CAPIRELAY_TEST_API_KEY", binKey)
			for b.Loop() {
				b.StopTimer()
				cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "orders"), kfake.SeedTopics(1, "orders.dlq"))
				if err != nil {
					b.Fatal(err)
				}
				brokers := cluster.ListenAddrs()
				benchOrders(b, brokers, "orders", n)
				cfg := benchConfig(b, brokers, "orders", "orders.dlq", "bench", newBenchSim(b, tc.sim), benchTuning)
				var ru0 syscall.Rusage
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
				b.StartTimer()
				start := time.Now()
				relay, stop := startRelay(b, cfg)
				for relay.Progress().Settled < int64(n) {
					time.Sleep(2 * time.Millisecond)
				}
				el := time.Since(start)
				b.StopTimer()
				var ru1 syscall.Rusage
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
				stop()
				cluster.Close()
				if p := relay.Progress(); p.Accepted != int64(n) {
					b.Fatalf("accepted %d of %d", p.Accepted, n)
				}
				cpu := cpuSeconds(ru1) - cpuSeconds(ru0)
				b.ReportMetric(float64(n)/el.Seconds(), "events/s")
				b.ReportMetric(cpu/float64(n)*1000, "cpu-s/1k-events(process)")
				b.ReportMetric(0, "ns/op")
				b.StartTimer()
			}
		})
	}
}

func cpuSeconds(ru syscall.Rusage) float64 {
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkBareConsumeKfake is the ceiling: franz-go reading the same
// backlog from kfake and doing nothing with it.
func BenchmarkBareConsumeKfake(b *testing.B) {
	n := benchN(200000)
	for b.Loop() {
		b.StopTimer()
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "orders"))
		if err != nil {
			b.Fatal(err)
		}
		benchOrders(b, cluster.ListenAddrs(), "orders", n)
		rate := bareConsume(b, cluster.ListenAddrs(), "orders", n)
		cluster.Close()
		b.ReportMetric(rate, "records/s")
		b.ReportMetric(0, "ns/op")
		b.StartTimer()
	}
}

func bareConsume(b *testing.B, brokers []string, topic string, n int) float64 {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("bare-"+strconv.Itoa(int(time.Now().UnixNano()))),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.StartTimer()
	start := time.Now()
	got := 0
	for got < n {
		got += len(cl.PollRecords(context.Background(), 10000).Records())
	}
	el := time.Since(start)
	b.StopTimer()
	return float64(n) / el.Seconds()
}

// BenchmarkEndToEndRealBroker runs the real binary against the real broker
// (KAFKA_BROKERS, or one started for the run) through a backlog of web-shop
// orders (default 1,000,000), the simulator in this process as a null sink.
// It reports events/s, the relay process's CPU seconds per 1,000 events and
// its peak RSS (VmHWM), and the bare franz-go consume of the same records.
func BenchmarkEndToEndRealBroker(b *testing.B) {
	n := benchN(1000000)
	brokers := kafkatest.Brokers(b)
	if kafkatest.Kind(b) == "kfake" {
		b.Skip("needs a real broker")
	}
	adm := kadm.NewClient(kafkatest.Client(b))
	topic := kafkatest.Topic(b, 6)
	dlq := kafkatest.Topic(b, 1)
	benchOrders(b, brokers, topic, n)
	b.Logf("backlog of %d orders produced", n)
	for _, tc := range []struct {
		name string
		sim  capisim.Options
	}{
		{"nullsink", capisim.Options{NullSink: true}},
		{"nullsink-latency50ms", capisim.Options{NullSink: true, Latency: 50 * time.Millisecond}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				group := kafkatest.GroupID(b)
				cfg := benchConfig(b, brokers, topic, dlq, group, newBenchSim(b, tc.sim), benchTuning)
				cmd := startBench(b, cfg)
				b.StartTimer()
				start := time.Now()
				var total int64
				for total < int64(n) {
					time.Sleep(100 * time.Millisecond)
					if offs := committedOffsets(b, adm, group, topic); offs != nil {
						total = sumOffsets(offs)
					}
					if time.Since(start) > 10*time.Minute {
						b.Fatalf("committed %d of %d after 10 minutes", total, n)
					}
				}
				el := time.Since(start)
				b.StopTimer()
				hwm, cpu := procStats(cmd.Process.Pid)
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
				b.ReportMetric(float64(n)/el.Seconds(), "events/s")
				b.ReportMetric(cpu/float64(n)*1000, "cpu-s/1k-events")
				b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
				b.ReportMetric(0, "ns/op")
				b.StartTimer()
			}
		})
	}
	b.Run("bare-consume", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			rate := bareConsume(b, brokers, topic, n)
			b.ReportMetric(rate, "records/s")
			b.ReportMetric(0, "ns/op")
			b.StartTimer()
		}
	})
}

// BenchmarkLargeRecordsRealBroker: the memory bound in bytes. The real binary
// with the default relay settings against the real broker, through a backlog
// of 300 orders of about 900 KB each (CAPIRELAY_BENCH_RECORDS to change)
// behind an API that takes 2 s per request. It reports the relay process's
// peak RSS (VmHWM) and the time to commit the backlog.
func BenchmarkLargeRecordsRealBroker(b *testing.B) {
	n := benchN(300)
	brokers := kafkatest.Brokers(b)
	if kafkatest.Kind(b) == "kfake" {
		b.Skip("needs a real broker")
	}
	adm := kadm.NewClient(kafkatest.Client(b))
	topic := kafkatest.Topic(b, 6)
	dlq := kafkatest.Topic(b, 1)
	benchOrdersPadded(b, brokers, topic, n, 900_000)
	b.Logf("backlog of %d orders of ~900 KB produced", n)
	for b.Loop() {
		b.StopTimer()
		group := kafkatest.GroupID(b)
		cfg := benchConfig(b, brokers, topic, dlq, group, newBenchSim(b, capisim.Options{NullSink: true, Latency: 2 * time.Second}), "")
		cmd := startBench(b, cfg)
		b.StartTimer()
		start := time.Now()
		var total int64
		for total < int64(n) {
			time.Sleep(100 * time.Millisecond)
			if offs := committedOffsets(b, adm, group, topic); offs != nil {
				total = sumOffsets(offs)
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("committed %d of %d after 10 minutes", total, n)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		hwm, cpu := procStats(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		b.ReportMetric(el.Seconds(), "s-to-commit")
		b.ReportMetric(cpu, "cpu-s")
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MiB")
		b.ReportMetric(0, "ns/op")
		b.StartTimer()
	}
}

func startBench(b *testing.B, cfg string) *runningBench {
	b.Helper()
	bin := relayBinaryTB(b)
	cmd := newCommand(bin, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "CAPIRELAY_TEST_API_KEY="+binKey)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &runningBench{cmd}
}

// procStats reads the peak RSS (KiB) and CPU seconds of a live process.
func procStats(pid int) (hwmKiB int64, cpu float64) {
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			hwmKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
		f := strings.Fields(string(stat)[i+2:])
		if len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			stt, _ := strconv.ParseFloat(f[12], 64)
			cpu = (ut + stt) / 100 // USER_HZ
		}
	}
	return hwmKiB, cpu
}
