// Package kafkatest gives tests a Kafka broker, and per-test topics, group
// ids and clients on it.
//
// Brokers picks one broker per test binary, the first of:
//
//  1. "env": the seed brokers in $KAFKA_BROKERS (comma separated), as
//     `make test` (kafkalocal run) sets it;
//  2. "container": an apache/kafka container through testcontainers-go, if a
//     Docker engine answers within a second ($CAPIRELAY_KAFKA_IMAGE
//     overrides the image);
//  3. "jdk": a broker on the local JDK (internal/kafkalocal), with its jars
//     cached in $CAPIRELAY_KAFKA_HOME or $HOME/.cache/capirelay/kafka;
//  4. "kfake": an in-process fake cluster (franz-go's kfake).
//
// With -short it goes straight to kfake. With CAPIRELAY_REQUIRE_REAL_KAFKA=1
// the short cut is off and reaching kfake fails the test instead, with the
// reason each real option failed.
//
// A package that uses Brokers (or Topic, GroupID, Client) must stop what the
// binary started once its tests are done:
//
//	func TestMain(m *testing.M) { kafkatest.Main(m) }
//
// Without it a JVM broker still dies with the test binary (parent-death
// signal) but leaves its temporary folder behind, and a container is left to
// testcontainers' reaper.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/internal/kafkalocal"
)

// Environment variables that steer Brokers.
const (
	// EnvBrokers names seed brokers to use as they are.
	EnvBrokers = "KAFKA_BROKERS"
	// EnvRequireReal set to 1 makes a fall back to kfake a test failure.
	EnvRequireReal = "CAPIRELAY_REQUIRE_REAL_KAFKA"
	// EnvImage overrides the container image.
	EnvImage = "CAPIRELAY_KAFKA_IMAGE"
)

// DefaultImage is the container image used when a Docker engine answers.
const DefaultImage = "apache/kafka:" + kafkalocal.Version

var (
	mu       sync.Mutex // guards the broker set-up below
	set      bool       // setup has run
	seeds    []string
	kind     string
	failure  string       // set instead of seeds when no acceptable broker exists
	shutdown func() error // stops what this binary started; nil if nothing
)

func requireReal() bool { return os.Getenv(EnvRequireReal) == "1" }

// Brokers returns the seed brokers of this test binary's broker, setting it
// up on the first call (see the package comment for the order); calls made
// meanwhile from parallel tests wait for it. Every call returns the same
// brokers. It fails tb if no acceptable broker exists.
func Brokers(tb testing.TB) []string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !set {
		set = true
		setup(tb)
	}
	if failure != "" {
		tb.Fatalf("kafkatest: %s", failure)
	}
	return slices.Clone(seeds)
}

// Kind says which broker Brokers uses: "env", "container", "jdk" or "kfake".
// It sets the broker up if needed.
func Kind(tb testing.TB) string {
	tb.Helper()
	Brokers(tb)
	mu.Lock()
	defer mu.Unlock()
	return kind
}

// Main runs the tests of m, stops the broker or container this binary
// started, if any, and exits with the tests' exit code. Call it from
// TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit: it returns m.Run's code, or 1 if the tests
// passed but stopping the broker failed.
func Run(m *testing.M) int {
	code := m.Run()
	if shutdown != nil {
		if err := shutdown(); err != nil {
			fmt.Fprintf(os.Stderr, "kafkatest: stopping the %s broker: %v\n", kind, err)
			if code == 0 {
				code = 1
			}
		}
		shutdown = nil
	}
	return code
}

func setup(tb testing.TB) {
	tb.Helper()
	if testing.Short() && !requireReal() {
		useKfake(tb, "-short")
		return
	}
	if v := os.Getenv(EnvBrokers); v != "" {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				seeds = append(seeds, s)
			}
		}
		kind = "env"
		tb.Logf("kafkatest: using %s=%s", EnvBrokers, v)
		return
	}
	cerr := startContainer(tb)
	if cerr == nil {
		return
	}
	tb.Logf("kafkatest: no container: %v", cerr)
	jerr := startJDK(tb)
	if jerr == nil {
		return
	}
	why := fmt.Sprintf("container: %v\njdk: %v", cerr, jerr)
	if requireReal() {
		failure = fmt.Sprintf("%s=1 but no real Kafka broker could be had:\n%s", EnvRequireReal, why)
		return
	}
	useKfake(tb, why)
}

func useKfake(tb testing.TB, why string) {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		failure = fmt.Sprintf("starting kfake: %v", err)
		return
	}
	seeds, kind = c.ListenAddrs(), "kfake"
	shutdown = func() error { c.Close(); return nil }
	tb.Logf("kafkatest: using kfake at %v (real brokers skipped: %s)", seeds, why)
}

func startJDK(tb testing.TB) error {
	tb.Helper()
	// Generous: the first run on a machine fetches the jars with Maven.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := kafkalocal.Start(ctx, kafkalocal.Options{})
	if err != nil {
		return err
	}
	seeds, kind, shutdown = []string{b.Addr()}, "jdk", b.Stop
	tb.Logf("kafkatest: using a Kafka %s broker on the JDK at %s, started in %.1fs (log %s)",
		kafkalocal.Version, b.Addr(), b.StartDuration().Seconds(), b.LogPath())
	return nil
}

// dockerAnswers reports, within a second and without logging, whether a
// Docker engine answers.
func dockerAnswers() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(tclog.NewNoopLogger()))
		if err != nil {
			errc <- err
			return
		}
		errc <- p.Health(ctx) // Health closes p
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return errors.New("no Docker engine answered within 1s")
	}
}

// The image's own start script (/etc/kafka/docker/run) turns KAFKA_* variables
// into server.properties. The advertised address must be the host's mapped
// port, known only after the container starts, so the entrypoint waits for a
// file that the PostStarts hook copies in.
const (
	advertisedFile = "/tmp/capirelay-advertised-listeners"
	containerPort  = "9092/tcp"
)

func startContainer(tb testing.TB) error {
	tb.Helper()
	probe := time.Now()
	if err := dockerAnswers(); err != nil {
		return fmt.Errorf("no Docker engine (probe took %s): %w", time.Since(probe).Round(time.Millisecond), err)
	}
	image := os.Getenv(EnvImage)
	if image == "" {
		image = DefaultImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        image,
			ExposedPorts: []string{containerPort},
			Env: map[string]string{
				"KAFKA_NODE_ID":                                          "1",
				"KAFKA_PROCESS_ROLES":                                    "broker,controller",
				"KAFKA_LISTENERS":                                        "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
				"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
				"KAFKA_INTER_BROKER_LISTENER_NAME":                       "BROKER",
				"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
				"KAFKA_CONTROLLER_QUORUM_VOTERS":                         "1@localhost:9094",
				"KAFKA_NUM_PARTITIONS":                                   "1",
				"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
				"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
				"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "1",
				"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
				"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
				"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
				"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
			},
			Entrypoint: []string{"sh", "-c", "while [ ! -f " + advertisedFile + " ]; do sleep 0.1; done; " +
				"export KAFKA_ADVERTISED_LISTENERS=\"$(cat " + advertisedFile + ")\"; exec /etc/kafka/docker/run"},
			LifecycleHooks: []testcontainers.ContainerLifecycleHooks{{
				PostStarts: []testcontainers.ContainerHook{func(ctx context.Context, c testcontainers.Container) error {
					hostPort, err := c.PortEndpoint(ctx, containerPort, "")
					if err != nil {
						return fmt.Errorf("mapped port: %w", err)
					}
					listeners := "PLAINTEXT://" + hostPort + ",BROKER://localhost:9093"
					return c.CopyToContainer(ctx, []byte(listeners), advertisedFile, 0o644)
				}},
			}},
		},
		Started: true,
		Logger:  tclog.NewNoopLogger(),
	}
	c, err := testcontainers.GenericContainer(ctx, req)
	stop := func() error {
		if c == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return c.Terminate(ctx)
	}
	if err != nil {
		_ = stop()
		return fmt.Errorf("start %s: %w", image, err)
	}
	addr, err := c.PortEndpoint(ctx, containerPort, "")
	if err == nil {
		err = kafkalocal.WaitReady(ctx, addr)
	}
	if err != nil {
		_ = stop()
		return fmt.Errorf("%s not ready: %w", image, err)
	}
	seeds, kind, shutdown = []string{addr}, "container", stop
	tb.Logf("kafkatest: using container %s at %s, started in %.1fs", image, addr, time.Since(began).Seconds())
	return nil
}

// Client returns a franz-go client on Brokers(tb) with opts added, closed
// when tb's test ends.
func Client(tb testing.TB, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	brokers := Brokers(tb)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		tb.Fatalf("kafkatest: new client on %v: %v", brokers, err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// Topic creates a topic named after tb's test with a random suffix, with
// the given number of partitions and replication factor 1, and returns its
// name once metadata shows a leader for every partition. The topic is
// deleted when tb's test ends (a failed delete is only logged).
func Topic(tb testing.TB, partitions int) string {
	tb.Helper()
	return TopicWithConfigs(tb, partitions, nil)
}

// TopicWithConfigs is Topic with topic configurations (for example
// "max.message.bytes").
func TopicWithConfigs(tb testing.TB, partitions int, configs map[string]string) string {
	tb.Helper()
	name := uniqueName(tb, "")
	brokers := Brokers(tb)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatalf("kafkatest: new admin client on %v: %v", brokers, err)
	}
	adm := kadm.NewClient(cl)
	tb.Cleanup(func() {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(ctx, name); err != nil {
			tb.Logf("kafkatest: delete topic %s: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cfg map[string]*string
	for k, v := range configs {
		if cfg == nil {
			cfg = map[string]*string{}
		}
		cfg[k] = &v
	}
	if _, err := adm.CreateTopic(ctx, int32(partitions), 1, cfg, name); err != nil {
		tb.Fatalf("kafkatest: create topic %s with %d partitions on %s broker %v: %v", name, partitions, Kind(tb), brokers, err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := adm.Metadata(ctx, name)
		if err == nil {
			if err = leadersReady(md, name, partitions); err == nil {
				return name
			}
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("kafkatest: topic %s has no leader for every partition after 30s: %v", name, err)
		case <-tick.C:
		}
	}
}

func leadersReady(md kadm.Metadata, topic string, partitions int) error {
	td, ok := md.Topics[topic]
	switch {
	case !ok:
		return errors.New("topic missing from metadata")
	case td.Err != nil:
		return td.Err
	case len(td.Partitions) != partitions:
		return fmt.Errorf("metadata shows %d of %d partitions", len(td.Partitions), partitions)
	}
	for _, p := range td.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return fmt.Errorf("partition %d: leader %d, err %v", p.Partition, p.Leader, p.Err)
		}
	}
	return nil
}

// GroupID returns a consumer group id named after tb's test with a random
// suffix, distinct on every call.
func GroupID(tb testing.TB) string {
	tb.Helper()
	return uniqueName(tb, "g-")
}

// uniqueName is prefix + tb.Name() with every character outside
// [A-Za-z0-9-] turned into '-', cut to 150 bytes, + "-" + 8 random hex
// digits: valid as a topic name (at most 249 of [A-Za-z0-9._-]) and as a
// group id, and free of the '.'/'_' mix that Kafka warns about.
func uniqueName(tb testing.TB, prefix string) string {
	name := []byte(prefix + tb.Name())
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			name[i] = '-'
		}
	}
	if len(name) > 150 {
		name = name[:150]
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	return string(name) + "-" + hex.EncodeToString(r[:])
}
