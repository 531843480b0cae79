package consumer

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
)

// DefaultMaxUnsettledBytes is Config.MaxUnsettledBytes's default.
const DefaultMaxUnsettledBytes = 64 << 20

// Config configures a Relay. Zero durations and sizes take the documented
// defaults; Validate reports every problem at once.
type Config struct {
	// Connection holds the client options shared by the consumer and the
	// dead-letter producer: seed brokers, TLS, SASL, client id. The Relay adds
	// its own group, consume and produce options.
	Connection []kgo.Opt
	// Group is the consumer group id. Required unless Partitions is set.
	Group string
	// Partitions, when set, replaces the consumer group: exactly these
	// partitions are consumed from the given start offsets, and nothing is
	// ever committed (replay). Topics is then ignored.
	Partitions map[string]map[int32]int64
	// End, when set, bounds the run: Run returns (after draining) once every
	// listed partition has been consumed up to its end offset (exclusive)
	// and everything read is settled. Records at or past a partition's end
	// are not processed. Partitions not listed are not bounded.
	End map[string]map[int32]int64
	// AllowDeadLetterSource permits consuming the dead-letter topic itself
	// (dlq redrive), where failures are written back to it.
	AllowDeadLetterSource bool
	// Topics are the topics to consume. Required.
	Topics []string
	// InstanceID, when set, enables static group membership (Kafka's
	// group.instance.id): a restart within the session timeout does not
	// rebalance.
	InstanceID string
	// SessionTimeout and RebalanceTimeout are Kafka's session.timeout.ms
	// and rebalance.timeout.ms; 0 keeps the client's defaults (45s, 60s).
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// StartAtEnd makes a group with no committed offset start at the end of
	// each partition instead of the beginning. The reset offset (used when a
	// committed offset no longer exists) is always the earliest record, so
	// nothing is skipped silently.
	StartAtEnd bool
	// StartAfter, when not zero, makes a group with no committed offset
	// start at the first record at or after this time (dlq redrive --from).
	StartAfter time.Time

	// DeadLetterTopic receives records that can never be accepted. Required.
	DeadLetterTopic string

	// MaxBatchEvents caps events per API request (1..1000, default 1000).
	MaxBatchEvents int
	// MaxBatchBytes caps an encoded request body (default 4 MiB).
	MaxBatchBytes int
	// Linger is how long a non-full batch waits for more events (default
	// 100ms).
	Linger time.Duration
	// Concurrency is how many API requests may be in flight (default 8).
	Concurrency int
	// MaxUnsettledRecords bounds memory: polling pauses while this many
	// records are read but not settled (default 20,000).
	MaxUnsettledRecords int
	// MaxUnsettledBytes bounds memory in bytes: polling pauses while the
	// records read but not settled hold this many bytes (key, value,
	// headers and a fixed overhead per record; default 64 MiB). A record
	// larger than the whole budget still passes, alone. The fetch sizes
	// follow it: Kafka's fetch.max.bytes is MaxUnsettledBytes/16 (between
	// 1 MiB and 50 MiB) and max.partition.fetch.bytes at most 1 MiB, so the
	// client buffers at most that per broker (compressed: decompressed it
	// is as much larger as the data compresses).
	MaxUnsettledBytes int64
	// MapWorkers is how many goroutines decode and map records (default:
	// the number of CPUs). Records of a partition may be mapped out of order;
	// commits still follow offsets (the settled prefix). Needs
	// Deps.NewMapper; otherwise 1.
	MapWorkers int
	// PollRecords caps the records taken from one poll (default 2,000).
	PollRecords int

	// CommitInterval is how often the settled prefix is committed (default
	// 1s). Commits also happen on revocation and at shutdown.
	CommitInterval time.Duration
	// RevokeTimeout bounds how long a revoked partition waits for its
	// in-flight events to settle before it is given up (default 15s; keep it
	// well under the group's rebalance timeout, 60s by default). Unsettled
	// records of a revoked partition are re-read by the next owner.
	RevokeTimeout time.Duration
	// DrainTimeout bounds the drain at shutdown (default 30s).
	DrainTimeout time.Duration
	// ConfigRetryInterval is how long sending pauses after the API answers
	// 401/403/404 before it tries again (default 30s).
	ConfigRetryInterval time.Duration
	// SendRound bounds one delivery attempt of a batch, transient retries
	// inside the API client included (default 2m). After it the relay
	// re-checks the batch's events against the time window (expired ones
	// are settled as expired) and tries again: a long outage never sends an
	// event the API would refuse as too old.
	SendRound time.Duration
	// DeadLetterRetry is the wait between attempts of a failed dead-letter
	// write (default 1s, doubled up to 30s).
	DeadLetterRetry time.Duration
	// ExpiryWarning: a warning is logged when the oldest unsettled event has
	// less than this left before it leaves the API's window (default 24h).
	ExpiryWarning time.Duration
	// MaxDeadLetterBody caps the API response body copied into a dead-letter
	// header (default 1,024 bytes).
	MaxDeadLetterBody int
	// DeadLetterMaxBytes is the largest dead-letter record the topic takes
	// (Kafka's max.message.bytes). 0 (the default) reads it from the topic's
	// configuration when Run starts, falling back to Kafka's default
	// (1,000,012 bytes) when it cannot be read. A dead letter that would be
	// larger is written reduced: without the source value (then without the
	// key and source headers, if still too large), with the value's size
	// and SHA-256 in headers. A broker that refuses a record as too large
	// anyway (MESSAGE_TOO_LARGE) gets the reduced record too.
	DeadLetterMaxBytes int
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxBatchEvents, capi.MaxEventsPerRequest)
	def(&c.MaxBatchBytes, capi.DefaultMaxRequestBytes)
	def(&c.Concurrency, 8)
	def(&c.MaxUnsettledRecords, 20000)
	if c.MaxUnsettledBytes == 0 {
		c.MaxUnsettledBytes = DefaultMaxUnsettledBytes
	}
	def(&c.PollRecords, 2000)
	def(&c.MapWorkers, runtime.GOMAXPROCS(0))
	def(&c.MaxDeadLetterBody, 1024)
	defd(&c.Linger, 100*time.Millisecond)
	defd(&c.CommitInterval, time.Second)
	defd(&c.RevokeTimeout, 15*time.Second)
	defd(&c.DrainTimeout, 30*time.Second)
	defd(&c.ConfigRetryInterval, 30*time.Second)
	defd(&c.DeadLetterRetry, time.Second)
	defd(&c.ExpiryWarning, 24*time.Hour)
	defd(&c.SendRound, 2*time.Minute)
}

// Validate checks the configuration and returns every problem, joined.
func (c *Config) Validate() error {
	var errs []error
	if c.Group == "" && len(c.Partitions) == 0 {
		errs = append(errs, errors.New("consumer: a group id (or explicit partitions) is required"))
	}
	if len(c.Topics) == 0 && len(c.Partitions) == 0 {
		errs = append(errs, errors.New("consumer: at least one topic is required"))
	}
	if c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("consumer: dead-letter topic is required"))
	}
	for _, t := range c.Topics {
		if t == c.DeadLetterTopic && t != "" && !c.AllowDeadLetterSource {
			errs = append(errs, fmt.Errorf("consumer: topic %q is also the dead-letter topic", t))
		}
	}
	if c.MaxBatchEvents < 0 || c.MaxBatchEvents > capi.MaxEventsPerRequest {
		errs = append(errs, fmt.Errorf("consumer: max batch events must be 1 to %d, got %d", capi.MaxEventsPerRequest, c.MaxBatchEvents))
	}
	if c.MaxUnsettledBytes < 0 {
		errs = append(errs, fmt.Errorf("consumer: max unsettled bytes must not be negative, got %d", c.MaxUnsettledBytes))
	}
	if c.DeadLetterMaxBytes != 0 && (c.DeadLetterMaxBytes < minDeadLetterBytes || c.DeadLetterMaxBytes > 1<<30) {
		errs = append(errs, fmt.Errorf("consumer: dead-letter max bytes must be %d to %d, got %d", minDeadLetterBytes, 1<<30, c.DeadLetterMaxBytes))
	}
	for name, v := range map[string]int{"max batch bytes": c.MaxBatchBytes, "concurrency": c.Concurrency,
		"max unsettled records": c.MaxUnsettledRecords, "poll records": c.PollRecords, "map workers": c.MapWorkers} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("consumer: %s must not be negative, got %d", name, v))
		}
	}
	for name, v := range map[string]time.Duration{"linger": c.Linger, "commit interval": c.CommitInterval,
		"revoke timeout": c.RevokeTimeout, "drain timeout": c.DrainTimeout, "config retry interval": c.ConfigRetryInterval,
		"dead-letter retry": c.DeadLetterRetry, "send round": c.SendRound} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("consumer: %s must not be negative, got %v", name, v))
		}
	}
	return errors.Join(errs...)
}
