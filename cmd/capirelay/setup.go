package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/consumer"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/mapping"
	"github.com/capirelay/capirelay/schemas"
)

// setup is everything built from one config file: the compiled rules, the
// API client and the consumer configuration. run, replay, dlq redrive and
// demo share it, so they cannot drift apart.
type setup struct {
	file     *config.File
	kafka    config.Kafka
	api      config.API
	relay    config.Relay
	registry config.SchemaRegistry
	// decoder decodes the values of avro topics (nil when there are none
	// and schema_registry names no urls).
	decoder *schemas.Decoder
	mapper  *mapping.Mapper
	client  *capi.Client
	// validator checks every event, window included (7 days minus the
	// configured margin back, MaxFuture ahead).
	validator *capi.Validator
	// conn holds the connection options (brokers, TLS, SASL, client id).
	conn []kgo.Opt
	key  secret.Value
}

// limitMemory sets the Go runtime's soft memory limit from the byte budget,
// unless GOMEMLIMIT is set: 3 × relay.max_unsettled_bytes + 64 MiB (256 MiB
// with the defaults). The relay holds up to the budget in records plus what
// the Kafka client has fetched; without a limit the collector lets the heap
// grow to twice that before collecting (GOGC=100). The limit is soft: when
// live memory exceeds it, the collector works harder (at most about half the
// CPU), nothing fails.
func (s *setup) limitMemory(logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	budget := s.relay.MaxUnsettledBytes
	if budget <= 0 {
		budget = consumer.DefaultMaxUnsettledBytes
	}
	limit := 3*budget + 64<<20
	debug.SetMemoryLimit(limit)
	logger.Info("soft memory limit set from relay.max_unsettled_bytes (set GOMEMLIMIT to override)", "limit_bytes", limit)
}

// defaultDrainTimeout is relay.drain_timeout's default (CONFIG.md).
const defaultDrainTimeout = 30 * time.Second

// defaults of the relay section.
func (s *setup) applyDefaults() {
	if s.kafka.ClientID == "" {
		s.kafka.ClientID = "capirelay"
	}
	if s.kafka.Group == "" {
		s.kafka.Group = "capirelay"
	}
	if s.api.IntegrationSource == "" {
		s.api.IntegrationSource = "capirelay"
	}
	if s.relay.DrainTimeout == 0 {
		// consumer.Config's default too; set here so that the drain
		// deadline logged on a signal is the one that applies.
		s.relay.DrainTimeout = defaultDrainTimeout
	}
	if s.relay.EventAgeMargin == 0 {
		s.relay.EventAgeMargin = time.Hour
	}
	if s.relay.Listen == "" {
		s.relay.Listen = ":9090"
	}
	if s.relay.LogFormat == "" {
		s.relay.LogFormat = "json"
	}
	if s.relay.LogLevel == "" {
		s.relay.LogLevel = "info"
	}
}

// loadSetup loads and checks the whole config file, reads the secrets it
// names and builds the API client. m (may be nil) observes API requests.
func loadSetup(path string, m *consumer.Metrics) (*setup, error) {
	s, err := parseSetup(path)
	if err != nil {
		return nil, err
	}
	if err := s.connect(m); err != nil {
		return nil, err
	}
	return s, nil
}

// parseSetup loads and checks the whole config file without reading secrets
// or building clients (what `check` runs). Problems are reported together:
// config.Diagnostics with file:line:col.
func parseSetup(path string) (*setup, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	s := &setup{file: f}
	ds := s.sectionDiagnostics(true)
	mapper, err := mapping.Compile(f, mapping.Options{})
	if err != nil {
		var mds config.Diagnostics
		if errors.As(err, &mds) {
			ds = append(ds, mds...)
		} else {
			return nil, err
		}
	}
	if len(ds) > 0 {
		return nil, ds.Sorted()
	}
	s.mapper = mapper
	s.validator = &capi.Validator{MaxAge: capi.MaxEventAge - s.relay.EventAgeMargin, MaxFuture: s.relay.MaxFuture}
	return s, nil
}

// clientConfig is the API client configuration of the api and relay
// sections (the key must have been read by connect).
func (s *setup) clientConfig() capi.Config {
	iso := capi.IsolateSplit
	if s.api.Isolation == "probe" {
		iso = capi.IsolateProbe
	}
	return capi.Config{BaseURL: s.api.BaseURL, APIKey: s.key, IntegrationSource: s.api.IntegrationSource,
		RequestTimeout: s.api.RequestTimeout, MaxRequestBytes: s.relay.MaxBatchBytes, Isolation: iso,
		Retry:     capi.RetryPolicy{InitialBackoff: s.api.InitialBackoff, MaxBackoff: s.api.MaxBackoff},
		UserAgent: "capirelay/" + version}
}

// connect reads the secrets the config names and builds the API client and
// the Kafka connection options.
func (s *setup) connect(m *consumer.Metrics) error {
	path := s.file.Path
	key, err := secret.Load(s.api.KeyEnv, s.api.KeyFile)
	if err != nil {
		return fmt.Errorf("%s: api.key_env/api.key_file: %w", path, err)
	}
	s.key = key
	ccfg := s.clientConfig()
	if m != nil {
		ccfg.OnRequest = m.ObserveRequest
	}
	if s.client, err = capi.NewClient(ccfg); err != nil {
		return fmt.Errorf("%s: api: %w", path, err)
	}
	if s.conn, err = kafkaOpts(s.kafka); err != nil {
		return fmt.Errorf("%s: kafka: %w", path, err)
	}
	// With urls configured the decoder is built even when no topic is avro
	// yet, so that a rule reload can add the first avro topic.
	if s.hasAvro() || len(s.registry.URLs) > 0 {
		rc, err := schemas.RegistryConfigFrom(s.registry)
		if err != nil {
			return fmt.Errorf("%s: schema_registry: %w", path, err)
		}
		if s.decoder, err = schemas.NewDecoder(rc); err != nil {
			return fmt.Errorf("%s: schema_registry: %w", path, err)
		}
	}
	return nil
}

// hasAvro reports whether any topic is format avro.
func (s *setup) hasAvro() bool { return len(s.avroTopics()) > 0 }

// avroTopics returns the topics of format avro.
func (s *setup) avroTopics() []string {
	var ts []string
	for _, t := range s.mapper.Topics() {
		if s.mapper.Format(t) == "avro" {
			ts = append(ts, t)
		}
	}
	return ts
}

// newRelay builds the live relay of this setup: the consumer group over
// every topic of the rules. It returns the mapper adapter too, for rule
// reloads.
func (s *setup) newRelay(logger *slog.Logger, m *consumer.Metrics) (*consumer.Relay, *mapperAdapter, error) {
	a := s.newAdapter()
	deps := s.deps(a)
	deps.Logger, deps.Metrics = logger, m
	r, err := consumer.New(s.consumerConfig(s.mapper.Topics()), deps)
	return r, a, err
}

// deps returns the consumer dependencies of this setup that run, replay,
// dlq redrive and demo share: the rules (through a, cloned per worker), the
// API client, the validator, the default pixel and api.validate_only.
func (s *setup) deps(a *mapperAdapter) consumer.Deps {
	return consumer.Deps{Mapper: a, NewMapper: a.clone, API: s.client, Validator: s.validator, DefaultPixel: s.api.Pixel,
		ValidateOnly: s.api.ValidateOnly}
}

// newAdapter returns the relay's mapper for this setup.
func (s *setup) newAdapter() *mapperAdapter {
	a := newMapperAdapter(s.mapper)
	a.decoder = s.decoder
	return a
}

// sectionDiagnostics decodes the kafka, api, relay and schema_registry
// sections strictly and checks their values. With requireRun, what `run`
// cannot do without (seed brokers, a dead-letter topic) is required; `check`
// passes false for a section that is absent, so a rules-only file (the
// examples) checks clean.
func (s *setup) sectionDiagnostics(requireRun bool) config.Diagnostics {
	f := s.file
	path := f.Path
	// A section with key or type errors is not value-checked: its struct
	// is not decoded, and "required" errors would only mislead.
	var ds config.Diagnostics
	kafkaOK := addAll(&ds, config.DecodeSection(path, "kafka", &f.Kafka, &s.kafka))
	apiOK := addAll(&ds, config.DecodeSection(path, "api", &f.API, &s.api))
	relayOK := addAll(&ds, config.DecodeSection(path, "relay", &f.Relay, &s.relay))
	addAll(&ds, config.DecodeSection(path, "schema_registry", &f.SchemaRegistry, &s.registry))
	s.applyDefaults()
	if !kafkaOK || !apiOK || !relayOK {
		return ds
	}
	at := func(sec *yaml.Node, key string) *yaml.Node { return fieldNode(sec, key) }
	if requireRun || f.Kafka.Kind != 0 {
		if len(s.kafka.Brokers) == 0 {
			ds.Add(path, at(&f.Kafka, "brokers"), "", "kafka.brokers", "at least one seed broker is required")
		}
		if s.kafka.DeadLetterTopic == "" {
			ds.Add(path, at(&f.Kafka, "dead_letter_topic"), "", "kafka.dead_letter_topic", "required: records that can never be accepted go there")
		}
	}
	if dlq := s.kafka.DeadLetterTopic; dlq != "" && f.Topics.Kind == yaml.SequenceNode {
		// The consumer refuses it too, but only when it starts or a reload
		// changes its topics: reject it here, with a position.
		for _, t := range f.Topics.Content {
			if n := fieldNode(t, "topic"); n != t && n.Kind == yaml.ScalarNode && n.Value == dlq {
				ds.Add(path, n, "", "topic", fmt.Sprintf("%q is kafka.dead_letter_topic: the relay must not consume its own dead letters", dlq))
			}
		}
	}
	switch s.kafka.Start {
	case "", "earliest", "latest":
	default:
		ds.Add(path, at(&f.Kafka, "start"), "", "kafka.start", fmt.Sprintf("must be earliest or latest, got %q", s.kafka.Start))
	}
	if m := s.kafka.SASL.Mechanism; m != "" {
		switch strings.ToUpper(m) {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			if (s.kafka.SASL.PasswordEnv == "") == (s.kafka.SASL.PasswordFile == "") {
				ds.Add(path, at(&f.Kafka, "sasl"), "", "kafka.sasl", "set exactly one of password_env and password_file")
			}
		default:
			ds.Add(path, at(&f.Kafka, "sasl"), "", "kafka.sasl.mechanism", fmt.Sprintf("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", m))
		}
	}
	if f.API.Kind != 0 && (s.api.KeyEnv == "") == (s.api.KeyFile == "") {
		ds.Add(path, &f.API, "", "api", "set exactly one of key_env and key_file (the API key is never written in the config)")
	}
	switch s.api.Isolation {
	case "", "split", "probe":
	default:
		ds.Add(path, at(&f.API, "isolation"), "", "api.isolation", fmt.Sprintf("must be split or probe, got %q", s.api.Isolation))
	}
	if s.api.IntegrationSource != "" {
		if err := capi.CheckIntegrationSource(s.api.IntegrationSource); err != nil {
			ds.Add(path, at(&f.API, "integration_source"), "", "api.integration_source", err.Error())
		}
	}
	switch s.relay.LogFormat {
	case "json", "text":
	default:
		ds.Add(path, at(&f.Relay, "log_format"), "", "relay.log_format", fmt.Sprintf("must be json or text, got %q", s.relay.LogFormat))
	}
	if _, err := parseLevel(s.relay.LogLevel); err != nil {
		ds.Add(path, at(&f.Relay, "log_level"), "", "relay.log_level", err.Error())
	}
	if s.relay.EventAgeMargin < 0 || s.relay.EventAgeMargin >= capi.MaxEventAge {
		ds.Add(path, at(&f.Relay, "event_age_margin"), "", "relay.event_age_margin", "must be between 0 and 7 days")
	}
	for key, v := range map[string]int64{"max_unsettled_records": int64(s.relay.MaxUnsettledRecords),
		"max_unsettled_bytes": s.relay.MaxUnsettledBytes, "concurrency": int64(s.relay.Concurrency),
		"max_batch_bytes": int64(s.relay.MaxBatchBytes)} {
		if v < 0 {
			ds.Add(path, at(&f.Relay, key), "", "relay."+key, fmt.Sprintf("must not be negative, got %d", v))
		}
	}
	if s.relay.MaxBatchEvents < 0 || s.relay.MaxBatchEvents > capi.MaxEventsPerRequest {
		ds.Add(path, at(&f.Relay, "max_batch_events"), "", "relay.max_batch_events", "must be 1 to 1000")
	}
	return ds
}

// addAll appends more to ds and reports whether more was empty.
func addAll(ds *config.Diagnostics, more config.Diagnostics) bool {
	*ds = append(*ds, more...)
	return len(more) == 0
}

// fieldNode returns the value node of key in the mapping sec, or sec itself
// (or nil for an absent section, position 1:1), for diagnostics.
func fieldNode(sec *yaml.Node, key string) *yaml.Node {
	if sec.Kind == 0 {
		return nil
	}
	for i := 0; i+1 < len(sec.Content); i += 2 {
		if sec.Content[i].Value == key {
			return sec.Content[i+1]
		}
	}
	return sec
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// kafkaOpts turns the kafka section into franz-go connection options.
func kafkaOpts(k config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	if k.TLS.On() {
		tc, err := k.TLS.ClientConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if mech := strings.ToUpper(k.SASL.Mechanism); mech != "" {
		pw, err := secret.Load(k.SASL.PasswordEnv, k.SASL.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sasl.password_env/password_file: %w", err)
		}
		switch mech {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: pw.Reveal()}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: pw.Reveal()}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: pw.Reveal()}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}

// consumerConfig builds the consumer configuration from the sections.
func (s *setup) consumerConfig(topics []string) consumer.Config {
	c := consumer.Config{
		Connection: s.conn, Group: s.kafka.Group, Topics: topics, DeadLetterTopic: s.kafka.DeadLetterTopic,
		StartAtEnd: s.kafka.Start == "latest", MaxBatchEvents: s.relay.MaxBatchEvents, MaxBatchBytes: s.relay.MaxBatchBytes,
		Linger: s.relay.Linger, Concurrency: s.relay.Concurrency,
		MaxUnsettledRecords: s.relay.MaxUnsettledRecords, MaxUnsettledBytes: s.relay.MaxUnsettledBytes,
		CommitInterval: s.relay.CommitInterval, RevokeTimeout: s.relay.RevokeTimeout, DrainTimeout: s.relay.DrainTimeout,
		ConfigRetryInterval: s.relay.ConfigRetryInterval,
		SessionTimeout:      s.kafka.SessionTimeout, RebalanceTimeout: s.kafka.RebalanceTimeout,
		ExpiryWarning: s.relay.ExpiryWarning,
	}
	if s.kafka.InstanceIDEnv != "" {
		c.InstanceID = os.Getenv(s.kafka.InstanceIDEnv)
	}
	return c
}

// mapperAdapter feeds kafka records to the compiled rules. Each mapping
// worker has its own adapter (Map reuses per-adapter buffers); the rules are
// shared and may be swapped from any goroutine (rule reload).
type mapperAdapter struct {
	rules   *ruleSet
	decoder *schemas.Decoder // for avro topics
	rec     mapping.Record
	outs    []mapping.Output
	// arena holds the decoded value of the record being mapped (avro
	// topics); reused record after record, so not shared between workers.
	arena schemas.Arena
}

// ruleSet is the current rules and the rules before the last swap.
type ruleSet struct {
	cur  atomic.Pointer[mapping.Mapper]
	prev atomic.Pointer[mapping.Mapper]
}

func newMapperAdapter(m *mapping.Mapper) *mapperAdapter {
	a := &mapperAdapter{rules: &ruleSet{}}
	a.rules.cur.Store(m)
	return a
}

// clone returns an adapter for another worker, sharing the rules.
func (a *mapperAdapter) clone() consumer.Mapper {
	return &mapperAdapter{rules: a.rules, decoder: a.decoder}
}

// swap installs new rules. Records of a topic the new rules no longer have
// are still mapped with the previous rules until the relay stops consuming
// that topic, so a reload never dead-letters records that were in flight.
// undo puts back the rules swap replaced (a reload that failed after it).
func (a *mapperAdapter) swap(m *mapping.Mapper) (undo func()) {
	cur, prev := a.rules.cur.Load(), a.rules.prev.Load()
	a.rules.prev.Store(cur)
	a.rules.cur.Store(m)
	return func() {
		a.rules.cur.Store(cur)
		a.rules.prev.Store(prev)
	}
}

// mapAvro decodes an avro record through the Schema Registry and maps it. A
// registry outage is transient (the relay retries the record, never
// dead-letters it); a record the registry or the decoder cannot read is a
// bad record (decode class), its message naming the schema id.
func (a *mapperAdapter) mapAvro(ctx context.Context, m *mapping.Mapper, r *kgo.Record) ([]mapping.Output, error) {
	if a.decoder == nil {
		return a.outs[:0], &consumer.RecordError{Class: consumer.ClassDecode,
			Err: fmt.Errorf("%s/%d@%d: topic is format avro but no schema_registry is configured", r.Topic, r.Partition, r.Offset)}
	}
	if len(r.Value) == 0 {
		return a.outs[:0], nil // a tombstone carries no event
	}
	// A cached schema needs no context; a registry fetch is bounded by
	// schema_registry.timeout per request, and by ctx (shutdown).
	value, _, err := a.decoder.DecodeRecordIn(ctx, r.Value, &a.arena)
	if err != nil {
		if errors.Is(err, schemas.ErrTransient) {
			return a.outs[:0], fmt.Errorf("%s/%d@%d: schema registry: %w (%w)", r.Topic, r.Partition, r.Offset, err, consumer.ErrTransient)
		}
		return a.outs[:0], &consumer.RecordError{Class: consumer.ClassDecode,
			Err: fmt.Errorf("%s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)}
	}
	// The outputs share nothing with value but string bytes (MapValue's
	// guarantee), so the arena is free for the next record when this
	// returns. Its strings point into r.Value: nothing modifies a record's
	// value, and the client does not recycle fetch memory (no
	// kgo.WithPools), so they stay valid as long as an event holds them.
	return m.MapValue(&a.rec, value, a.outs[:0])
}

// Map implements consumer.Mapper.
func (a *mapperAdapter) Map(ctx context.Context, r *kgo.Record, dst []consumer.Mapped) ([]consumer.Mapped, error) {
	a.rec = mapping.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Timestamp: r.Timestamp, Headers: a.rec.Headers[:0]}
	for _, h := range r.Headers {
		a.rec.Headers = append(a.rec.Headers, mapping.Header{Key: h.Key, Value: h.Value})
	}
	m := a.rules.cur.Load()
	format := m.Format(r.Topic)
	if format == "" {
		if p := a.rules.prev.Load(); p != nil {
			if f := p.Format(r.Topic); f != "" {
				m, format = p, f
			}
		}
	}
	var err error
	if format == "avro" {
		a.outs, err = a.mapAvro(ctx, m, r)
	} else {
		a.outs, err = m.Map(&a.rec, a.outs[:0])
	}
	if err != nil {
		var me *mapping.MapError
		if errors.As(err, &me) {
			return dst, &consumer.RecordError{Class: me.Class, Rule: me.Rule, Err: err}
		}
		return dst, err
	}
	for i := range a.outs {
		dst = append(dst, consumer.Mapped{Rule: a.outs[i].Rule, Pixel: a.outs[i].Pixel, Event: a.outs[i].Event})
	}
	return dst, nil
}
