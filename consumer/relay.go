package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/capirelay/capirelay/capi"
)

// Mapped is one event mapped from a record.
type Mapped struct {
	// Rule names the mapping rule that produced the event.
	Rule string
	// Pixel overrides the relay's default pixel when not empty.
	Pixel string
	// Event is the event, not yet validated.
	Event capi.Event
}

// Mapper turns a record into zero or more events. It must be safe to call
// from one goroutine at a time (the poll loop) and may reuse dst.
//
// A returned error means the record is bad: it is dead-lettered with the
// class of a *RecordError (ClassMapping otherwise). An error for which
// errors.Is(err, ErrTransient) holds (a Schema Registry outage, say) is
// retried with backoff instead, and the partition does not move past the
// record until it maps.
type Mapper interface {
	Map(rec *kgo.Record, dst []Mapped) ([]Mapped, error)
}

// MapperFunc adapts a function to Mapper.
type MapperFunc func(rec *kgo.Record, dst []Mapped) ([]Mapped, error)

// Map calls f.
func (f MapperFunc) Map(rec *kgo.Record, dst []Mapped) ([]Mapped, error) { return f(rec, dst) }

// ErrTransient marks mapping errors that must be retried, never dead-lettered.
var ErrTransient = errors.New("transient")

// RecordError is a bad-record error with its dead-letter class and rule.
type RecordError struct {
	Class string // ClassDecode or ClassMapping
	Rule  string
	Err   error
}

// Error returns the underlying error's text.
func (e *RecordError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *RecordError) Unwrap() error { return e.Err }

// Sender is what the relay sends batches with; *capi.Client implements it.
// Send must retry transient failures itself until its context ends (the
// relay never dead-letters an event because of a transient failure).
type Sender interface {
	Send(ctx context.Context, b capi.Batch) (*capi.Result, error)
}

// Deps are the relay's collaborators.
type Deps struct {
	// Mapper maps records. With NewMapper nil it must be used by one
	// goroutine at a time and MapWorkers is 1.
	Mapper Mapper
	// NewMapper, when set, returns further Mappers for the mapping workers
	// (Config.MapWorkers), one each, so that a Mapper may keep per-goroutine
	// buffers.
	NewMapper func() Mapper
	API       Sender
	// Validator checks each mapped event, including the time window, before
	// it is batched. Required.
	Validator *capi.Validator
	// DefaultPixel is used for events whose rule names no pixel. Required
	// unless every rule names one.
	DefaultPixel string
	// ValidateOnly sends every batch with validate_only: true.
	ValidateOnly bool
	Logger       *slog.Logger
	Metrics      *Metrics
	// DropExpired makes events outside the time window count as expired and
	// settle without a dead-letter write (what replay does by default). When
	// false (the live relay) they are dead-lettered with ClassExpired.
	DropExpired bool
	// Unwrap, when set, derives the record to map and to dead-letter from
	// the polled one (dlq redrive: the original record inside a dead-letter
	// record). Offsets are still tracked and committed on the polled record.
	// An error dead-letters the polled record with ClassDecode.
	Unwrap func(*kgo.Record) (*kgo.Record, error)
	// DryRun makes dead letters reported (OnOutcome, metrics) but not
	// written; the event settles at once. For --validate-only replays and
	// redrives, which must leave no trace.
	DryRun bool
	// OnOutcome, when set, is called once per event outcome and once per
	// record that produced no event, from any goroutine; it must be safe for
	// concurrent use and fast. Replay and redrive build their reports on it.
	OnOutcome func(rec *kgo.Record, o Outcome)
}

// Outcome is what became of one event (or of a record without events).
type Outcome struct {
	// Kind is "accepted", "dead_lettered", "expired" (dropped, see
	// DropExpired) or "filtered" (no rule produced an event).
	Kind string
	// Class is the dead-letter class for Kind "dead_lettered".
	Class string
	// Rule is the mapping rule, when known.
	Rule string
}

// Relay consumes the configured topics in a consumer group, maps each record,
// sends the events in batches, and commits offsets only for settled records.
//
// Guarantees:
//   - A record is settled when every event mapped from it was accepted (2xx),
//     or dead-lettered with the broker's acknowledgement, or when it produced
//     no event. Per partition, the committed offset is the offset after the
//     longest settled prefix; nothing else moves it. So a crash at any instant
//     (kill -9 included) loses nothing: the next owner re-reads every record
//     after the last commit, and the API deduplicates re-sent events on id.
//   - Transient failures (API 5xx/408/429, timeouts, dead-letter writes
//     failing, mapper errors marked ErrTransient) are retried; they never
//     dead-letter and never move a commit. At shutdown a record whose mapping
//     still fails transiently is given up at once (the drain does not wait
//     for it); it stays uncommitted and is re-read after the restart.
//   - Configuration faults (API 401/403/404) pause sending, make Ready false
//     and are retried every ConfigRetryInterval; nothing is dead-lettered
//     because of them, and sending resumes by itself.
//   - On revocation, a partition's in-flight events get up to RevokeTimeout
//     to settle; the settled prefix is committed, and the rest is re-read by
//     the next owner. A revoked partition is never committed again.
//   - Memory is bounded: polling pauses while MaxUnsettledRecords records are
//     unsettled.
type Relay struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	m    *Metrics

	cl  *kgo.Client // group consumer
	dlq *kgo.Client // dead-letter producer

	mu       sync.Mutex // guards trackers, hwm
	trackers map[topicPartition]*partitionTracker
	hwm      map[topicPartition]int64
	done     map[topicPartition]bool  // bounded partitions consumed to their end
	byTopic  map[string]*atomic.Int64 // records consumed per topic
	commitMu sync.Mutex               // serializes commits with revocation
	topicsMu sync.Mutex               // serializes SetTopics

	slots     chan struct{} // one token per unsettled record
	unsettled atomic.Int64

	bmu     sync.Mutex // guards pending
	pending map[batchKey]*batch
	sendq   chan *batch
	// flushNow asks the linger loop to flush every pending batch now
	// (requestFlush); buffered, so asking never blocks.
	flushNow chan struct{}

	sendCtx    context.Context // cancelled to abandon in-flight sends (end of Run)
	cancelSend context.CancelFunc
	// inflight counts the batches and dead-letter writes under way. Once the
	// mapping workers have stopped and the pending batches are flushed, every
	// record that can still settle has one of them counted here (an event is
	// in a batch being sent or retried, or in a dead-letter write being
	// retried; a rejected or expired event becomes a dead-letter write before
	// its batch is done). The drain waits for it to reach zero.
	inflight sync.WaitGroup

	consumed       atomic.Int64 // records dispatched (settled = consumed - unsettled)
	accepted       atomic.Int64 // events accepted
	deadLettered   atomic.Int64 // dead-letter writes acknowledged
	filtered       atomic.Int64 // records that produced no event
	configFaults   atomic.Int32
	running        atomic.Bool
	lastExpiryWarn time.Time
	validator      *capi.Validator
}

type topicPartition struct {
	topic     string
	partition int32
}

type batchKey struct {
	pixel        string
	validateOnly bool
}

type batch struct {
	key     batchKey
	buf     []byte
	ends    []int
	events  []eventRef
	created time.Time
}

type eventRef struct {
	ref  ref
	rec  *kgo.Record
	rule string
	tsMS int64 // the event's timestamp_ms, to re-check the window before each send
}

// New validates cfg, creates the Kafka clients and returns a Relay. It does
// not contact the cluster until Run.
func New(cfg Config, deps Deps) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if deps.Mapper == nil || deps.API == nil || deps.Validator == nil {
		return nil, errors.New("consumer: Mapper, API and Validator are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.NewMapper == nil {
		cfg.MapWorkers = 1
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	topics := append([]string(nil), cfg.Topics...)
	for t := range cfg.Partitions {
		topics = append(topics, t)
	}
	deps.Metrics.initTopics(topics)
	r := &Relay{
		cfg: cfg, deps: deps, log: deps.Logger, m: deps.Metrics, validator: deps.Validator,
		trackers: make(map[topicPartition]*partitionTracker),
		hwm:      make(map[topicPartition]int64),
		done:     make(map[topicPartition]bool),
		byTopic:  make(map[string]*atomic.Int64),
		slots:    make(chan struct{}, cfg.MaxUnsettledRecords),
		pending:  make(map[batchKey]*batch),
		sendq:    make(chan *batch, cfg.Concurrency),
		flushNow: make(chan struct{}, 1),
	}
	// Created here, not in Run: onRevoked reads it from the group's
	// goroutine, which may run before Run.
	r.sendCtx, r.cancelSend = context.WithCancel(context.Background())
	start := kgo.NewOffset().AtStart()
	if cfg.StartAtEnd {
		start = kgo.NewOffset().AtEnd()
	}
	if !cfg.StartAfter.IsZero() {
		start = kgo.NewOffset().AfterMilli(cfg.StartAfter.UnixMilli())
	}
	opts := append([]kgo.Opt{}, cfg.Connection...)
	opts = append(opts,
		// Aborted transactions are never relayed; control records are kept
		// so that a partition's end is seen even when a transaction marker
		// is its last offset, and commits move past markers.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if len(cfg.Partitions) > 0 {
		parts := make(map[string]map[int32]kgo.Offset)
		for t, ps := range cfg.Partitions {
			parts[t] = make(map[int32]kgo.Offset)
			for p, o := range ps {
				parts[t][p] = kgo.NewOffset().At(o)
			}
		}
		opts = append(opts, kgo.ConsumePartitions(parts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	} else {
		opts = append(opts,
			kgo.ConsumerGroup(cfg.Group),
			kgo.ConsumeTopics(cfg.Topics...),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.ConsumeStartOffset(start),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.OnPartitionsRevoked(r.onRevoked),
			kgo.OnPartitionsLost(r.onLost),
		)
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	if cfg.RebalanceTimeout > 0 {
		opts = append(opts, kgo.RebalanceTimeout(cfg.RebalanceTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("consumer: kafka client: %w", err)
	}
	popts := append([]kgo.Opt{}, cfg.Connection...)
	popts = append(popts,
		kgo.DefaultProduceTopic(cfg.DeadLetterTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(30*time.Second),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	dlq, err := kgo.NewClient(popts...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("consumer: dead-letter producer: %w", err)
	}
	r.cl, r.dlq = cl, dlq
	return r, nil
}

// Ready reports whether the relay is running and the API accepts its
// credentials (no batch is paused on a configuration fault).
func (r *Relay) Ready() bool { return r.running.Load() && r.configFaults.Load() == 0 }

// Run consumes until ctx is cancelled, then drains: it stops fetching, sends
// what is batched, waits up to DrainTimeout for in-flight events to settle,
// commits the settled prefix and leaves the group. Cancelling force (may be
// nil) abandons the drain at once; unsettled records are then not committed
// and are re-read after a restart. Run closes the Kafka clients; a Relay runs
// once.
func (r *Relay) Run(ctx, force context.Context) error {
	if force == nil {
		force = context.Background()
	}
	defer r.cancelSend()
	r.running.Store(true)
	r.m.Ready.Set(1)
	defer func() {
		r.running.Store(false)
		r.m.Ready.Set(0)
	}()

	var workers sync.WaitGroup
	for range r.cfg.Concurrency {
		workers.Go(func() {
			for b := range r.sendq {
				r.send(b)
			}
		})
	}
	bgCtx, stopBG := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { r.lingerLoop(bgCtx) })
	bg.Go(func() { r.commitLoop(bgCtx) })

	// Every queued job holds one of the MaxUnsettledRecords slots (taken
	// before the job is sent), so with this capacity the poll loop's send
	// never blocks: it must not, since it runs before AllowRebalance and
	// does not watch ctx. Only the slots bound stops reading, and that wait
	// watches ctx. (A job is 24 bytes: 480 KB at the default bound.)
	jobs := make(chan job, r.cfg.MaxUnsettledRecords)
	// Mapping workers give up a record whose mapping fails transiently when
	// ctx ends, or when the drain ends (a bounded run drains without ctx
	// ending).
	mapCtx, stopMapping := context.WithCancel(ctx)
	defer stopMapping()
	var mappers sync.WaitGroup
	for i := range r.cfg.MapWorkers {
		m := r.deps.Mapper
		if r.deps.NewMapper != nil && i > 0 {
			m = r.deps.NewMapper()
		}
		mappers.Go(func() { r.mapWorker(mapCtx, m, jobs) })
	}
	pollErr := r.initBounds(ctx)
	if pollErr == nil {
		pollErr = r.pollLoop(ctx, jobs)
	}

	// Drain. Its deadline (or force) covers every step, the mapping workers
	// finishing the record in hand included (queued records are left
	// unmapped once ctx ends; a bounded run maps them): during an API outage
	// the senders retry without end, sendq is full, and a mapping worker (or
	// the linger loop) waits for room in it; only abandoning the sends frees
	// them. Abandoned sends leave their records unsettled: nothing is
	// committed past them.
	r.log.Info("draining", "unsettled_records", r.unsettled.Load(), "deadline", r.cfg.DrainTimeout)
	drainCtx, cancelDrain := context.WithTimeout(force, r.cfg.DrainTimeout)
	defer cancelDrain()
	stopAbandon := context.AfterFunc(drainCtx, func() {
		r.cancelSend()
		stopMapping()
	})
	close(jobs)
	mappers.Wait()
	r.flushAll()
	// Every record that can still settle is now in a batch or a dead-letter
	// write counted in inflight; the rest (a mapping given up at shutdown)
	// cannot settle in this run and is not waited for.
	allSettled := make(chan struct{})
	go func() {
		r.inflight.Wait()
		close(allSettled)
	}()
	drained := true
	select {
	case <-allSettled:
	case <-drainCtx.Done():
		drained = false
	}
	stopAbandon()
	cancelDrain()
	if !drained {
		r.log.Warn("drain deadline reached or forced; unsettled records will be re-read after restart",
			"unsettled_records", r.unsettled.Load())
	}
	r.cancelSend()
	close(r.sendq)
	workers.Wait()
	stopBG()
	bg.Wait()
	commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
	r.commit(commitCtx, nil)
	cancelCommit()
	// The revocation on close does not wait again (see settleRevoked):
	// everything is settled or abandoned by now.
	r.cl.CloseAllowingRebalance()
	r.dlq.Close()
	r.inflight.Wait()
	return pollErr
}

func (r *Relay) pollLoop(ctx context.Context, jobs chan<- job) error {
	for {
		if r.boundedDone() {
			r.log.Info("every partition consumed up to its end offset")
			return nil
		}
		// Back-pressure: wait for room before polling.
		free := cap(r.slots) - len(r.slots)
		if free == 0 {
			select {
			case <-ctx.Done():
				return nil
			case r.slots <- struct{}{}:
				<-r.slots // room for at least one; poll a little
				free = 1
			}
		}
		n := min(free, r.cfg.PollRecords)
		pctx := ctx
		var cancel context.CancelFunc = func() {}
		if r.cfg.End != nil {
			// Bounded runs poll in short rounds so completion is noticed.
			pctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
		}
		fetches := r.cl.PollRecords(pctx, n)
		cancel()
		if fetches.IsClientClosed() {
			r.cl.AllowRebalance()
			return errors.New("consumer: client closed")
		}
		if ctx.Err() != nil {
			r.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				r.log.Error("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		var last *partitionTracker
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			r.mu.Lock()
			r.hwm[topicPartition{fp.Topic, fp.Partition}] = fp.HighWatermark
			r.mu.Unlock()
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			if r.pastEnd(rec) {
				return
			}
			if last == nil || last.topic != rec.Topic || last.partition != rec.Partition {
				last = r.trackerFor(rec.Topic, rec.Partition)
			}
			if rec.Attrs.IsControl() {
				// A transaction marker: nothing to send, but it takes its
				// place in the settled prefix so commits move past it.
				last.add(rec.Offset, rec.LeaderEpoch, 0, 0)
				return
			}
			last.consumedMetric.Inc()
			last.consumed.Add(1)
			r.slots <- struct{}{}
			r.m.UnsettledRecords.Set(float64(r.unsettled.Add(1)))
			// After unsettled: a record is never counted consumed before it
			// is unsettled, so Progress never shows it settled too early.
			r.consumed.Add(1)
			// Tracked in offset order here, mapped by any worker: the
			// pending unit is the mapping, settled when the worker is done.
			ref := last.add(rec.Offset, rec.LeaderEpoch, rec.Timestamp.UnixMilli(), 1)
			jobs <- job{polled: rec, ref: ref} // never blocks: see Run
		})
		r.cl.AllowRebalance()
	}
}

// pastEnd reports whether rec is at or past its partition's end offset in a
// bounded run, and marks the partition done when rec is its last record.
func (r *Relay) pastEnd(rec *kgo.Record) bool {
	if r.cfg.End == nil {
		return false
	}
	end, ok := r.cfg.End[rec.Topic][rec.Partition]
	if !ok {
		return false
	}
	tp := topicPartition{rec.Topic, rec.Partition}
	if rec.Offset >= end-1 {
		r.mu.Lock()
		r.done[tp] = true
		r.mu.Unlock()
		if rec.Offset >= end {
			r.pauseDone(tp)
			return true
		}
	}
	return false
}

func (r *Relay) pauseDone(tp topicPartition) {
	r.cl.PauseFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
}

// boundedDone reports whether every bounded partition reached its end.
func (r *Relay) boundedDone() bool {
	if r.cfg.End == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range r.cfg.End {
		for p := range ps {
			if !r.done[topicPartition{t, p}] {
				return false
			}
		}
	}
	return true
}

// initBounds marks the bounded partitions that have nothing to read (start
// at or past end): for explicit partitions from their start offsets, for a
// group from its committed offsets.
func (r *Relay) initBounds(ctx context.Context) error {
	if r.cfg.End == nil {
		return nil
	}
	start := map[topicPartition]int64{}
	if len(r.cfg.Partitions) > 0 {
		for t, ps := range r.cfg.Partitions {
			for p, o := range ps {
				start[topicPartition{t, p}] = o
			}
		}
	} else {
		offs, err := kadm.NewClient(r.cl).FetchOffsets(ctx, r.cfg.Group)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return fmt.Errorf("consumer: fetch committed offsets of group %s: %w", r.cfg.Group, err)
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil {
				start[topicPartition{o.Topic, o.Partition}] = o.At
			}
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range r.cfg.End {
		for p, end := range ps {
			if s, ok := start[topicPartition{t, p}]; (ok && s >= end) || end <= 0 {
				r.done[topicPartition{t, p}] = true
			}
		}
	}
	return nil
}

func (r *Relay) trackerFor(topic string, partition int32) *partitionTracker {
	tp := topicPartition{topic, partition}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.trackers[tp]
	if t == nil {
		t = newTracker(topic, partition)
		c := r.byTopic[topic]
		if c == nil {
			c = new(atomic.Int64)
			r.byTopic[topic] = c
		}
		t.consumed = c
		t.consumedMetric = r.m.RecordsConsumed.WithLabelValues(topic)
		r.trackers[tp] = t
	}
	return t
}

// job is one polled record handed to a mapping worker. Its tracker entry
// already exists (in offset order) with one pending unit: the mapping itself.
type job struct {
	polled *kgo.Record
	ref    ref
}

// mapState is what a mapping worker reuses from record to record.
type mapState struct {
	mapper Mapper // the worker's own
	outs   []Mapped
	encBuf []byte
	// filtered caches RecordsFiltered by topic (the mapped record's: for a
	// redrive, the source topic), looked up once per topic, not per record.
	filtered map[string]prometheus.Counter
}

func (w *mapState) filteredMetric(m *Metrics, topic string) prometheus.Counter {
	c := w.filtered[topic]
	if c == nil {
		if w.filtered == nil {
			w.filtered = make(map[string]prometheus.Counter)
		}
		c = m.RecordsFiltered.WithLabelValues(topic)
		w.filtered[topic] = c
	}
	return c
}

// mapRecord maps one record and hands its events to the batcher or the
// dead-letter writer, then settles the record's mapping unit. It runs in a
// mapping worker with that worker's state. When ctx ends while a transient
// mapping error is retried, the record stays unsettled: never committed past,
// re-read after a restart.
func (r *Relay) mapRecord(ctx context.Context, w *mapState, j job) {
	polled, ref := j.polled, j.ref
	mappingUnit := eventRef{ref: ref, rec: polled}
	rec := polled
	var err error
	if r.deps.Unwrap != nil {
		if rec, err = r.deps.Unwrap(polled); err != nil {
			rec = polled
			err = &RecordError{Class: ClassDecode, Err: err}
		}
	}
	backoff := 100 * time.Millisecond
	for err == nil {
		w.outs, err = w.mapper.Map(rec, w.outs[:0])
		if err == nil || !errors.Is(err, ErrTransient) {
			break
		}
		r.log.Warn("transient mapping error; retrying", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err, "wait", backoff)
		select {
		case <-ctx.Done():
			r.log.Info("shutting down: giving up a record whose mapping fails transiently; it is not committed and will be re-read after the restart",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
		err = nil
	}
	if err != nil {
		dl := DeadLetter{Class: ClassMapping, Message: err.Error()}
		var re *RecordError
		if errors.As(err, &re) {
			dl.Class, dl.Rule = re.Class, re.Rule
		}
		r.m.MapErrors.WithLabelValues(rec.Topic, dl.Class).Inc()
		ref.addPending(1)
		r.deadLetter(eventRef{ref: ref, rec: rec, rule: dl.Rule}, dl)
		r.settle(mappingUnit)
		return
	}
	outs := w.outs
	if len(outs) == 0 {
		w.filteredMetric(r.m, rec.Topic).Inc()
		r.filtered.Add(1)
		r.outcome(rec, Outcome{Kind: "filtered"})
		r.settle(mappingUnit)
		return
	}
	// The age that matters is the events' (the API's window is on event
	// time); a record without events is aged by its own timestamp.
	minTS := int64(0)
	for i := range outs {
		if ts := outs[i].Event.TimestampMS; ts > 0 && (minTS == 0 || ts < minTS) {
			minTS = ts
		}
	}
	ref.setTimestamp(minTS)
	ref.addPending(len(outs))
	for i := range outs {
		o := &outs[i]
		ev := eventRef{ref: ref, rec: rec, rule: o.Rule, tsMS: o.Event.TimestampMS}
		if verr := r.validator.Validate(&o.Event); verr != nil {
			class := ClassValidation
			if errors.Is(verr, capi.ErrTooOld) {
				class = ClassExpired
			}
			r.m.MapErrors.WithLabelValues(rec.Topic, class).Inc()
			if class == ClassExpired && r.deps.DropExpired {
				r.outcome(rec, Outcome{Kind: "expired", Rule: o.Rule})
				r.settle(ev)
				continue
			}
			r.deadLetter(ev, DeadLetter{Class: class, Rule: o.Rule, Message: fmt.Sprintf("rule %q: %v", o.Rule, verr)})
			continue
		}
		pixel := o.Pixel
		if pixel == "" {
			pixel = r.deps.DefaultPixel
		}
		if pixel == "" {
			r.deadLetter(ev, DeadLetter{Class: ClassValidation, Rule: o.Rule, Message: fmt.Sprintf("rule %q: no pixel: the rule names none and no default pixel is configured", o.Rule)})
			continue
		}
		w.encBuf = capi.AppendEvent(w.encBuf[:0], &o.Event)
		r.add(batchKey{pixel: pixel, validateOnly: r.deps.ValidateOnly}, w.encBuf, ev)
	}
	r.settle(mappingUnit)
}

// mapWorker maps the jobs of the poll loop until the channel closes.
func (r *Relay) mapWorker(ctx context.Context, mapper Mapper, jobs <-chan job) {
	w := &mapState{mapper: mapper}
	for j := range jobs {
		if ctx.Err() != nil {
			// Shutting down: a record polled but not mapped yet stays
			// unsettled (never committed past, re-read after the restart).
			// The drain is for what is already batched; mapping and sending
			// a whole queued backlog would only delay the exit.
			continue
		}
		r.mapRecord(ctx, w, j)
	}
}

func (r *Relay) outcome(rec *kgo.Record, o Outcome) {
	if r.deps.OnOutcome != nil {
		r.deps.OnOutcome(rec, o)
	}
}

// released is called when a record settles in full.
func (r *Relay) released() {
	<-r.slots
	r.m.UnsettledRecords.Set(float64(r.unsettled.Add(-1)))
}

// settle settles one event of ev's record.
func (r *Relay) settle(ev eventRef) {
	if ev.ref.settle() {
		r.released()
	}
}

// add appends an encoded event to its batch, flushing the batch first when
// the event would not fit.
func (r *Relay) add(key batchKey, enc []byte, ev eventRef) {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	b := r.pending[key]
	if b != nil && (len(b.ends)+1 > r.cfg.MaxBatchEvents ||
		capi.RequestSize(len(b.buf)+len(enc), len(b.ends)+1, key.validateOnly, "") > r.cfg.MaxBatchBytes-128) {
		r.flushLocked(b)
		b = nil
	}
	if b == nil {
		b = &batch{key: key, created: time.Now(), buf: make([]byte, 0, 64<<10)}
		r.pending[key] = b
	}
	b.buf = append(b.buf, enc...)
	b.ends = append(b.ends, len(b.buf))
	b.events = append(b.events, ev)
}

// flushLocked hands b to the senders; it blocks while every sender is busy
// (back-pressure on the poll loop).
func (r *Relay) flushLocked(b *batch) {
	delete(r.pending, b.key)
	r.inflight.Add(1)
	r.sendq <- b
}

func (r *Relay) flushAll() {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	for _, b := range r.pending {
		r.flushLocked(b)
	}
}

// requestFlush asks the linger loop to flush every pending batch without
// waiting for it: the batch lock can be held for as long as an API outage
// keeps sendq full (by the linger loop itself or a mapping worker), and the
// callers, revocation and SetTopics, must keep to RevokeTimeout.
func (r *Relay) requestFlush() {
	select {
	case r.flushNow <- struct{}{}:
	default: // a request is pending already
	}
}

func (r *Relay) lingerLoop(ctx context.Context) {
	tick := time.NewTicker(max(r.cfg.Linger/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.flushNow:
			r.flushAll()
		case now := <-tick.C:
			r.bmu.Lock()
			for _, b := range r.pending {
				if now.Sub(b.created) >= r.cfg.Linger {
					r.flushLocked(b)
				}
			}
			r.bmu.Unlock()
		}
	}
}

// send delivers one batch, retrying until every event is accepted or
// rejected (then dead-lettered), or until the relay abandons sending.
func (r *Relay) send(b *batch) {
	defer r.inflight.Done()
	r.m.RequestsInFlight.Inc()
	defer r.m.RequestsInFlight.Dec()
	events := make([][]byte, len(b.ends))
	start := 0
	for i, end := range b.ends {
		events[i] = b.buf[start:end]
		start = end
	}
	refs := b.events
	// EventsAccepted of the last topic seen: a batch's events mostly come in
	// runs of one topic, so the labelled counter is looked up once per run.
	var acceptedTopic string
	var acceptedMetric prometheus.Counter
	inFault := false
	defer func() {
		if inFault && r.configFaults.Add(-1) == 0 && r.running.Load() {
			r.m.Ready.Set(1)
		}
	}()
	for {
		// Events wait in batches and in retries (an outage can last days):
		// one that left the window since it was validated would only be
		// refused by the API, so it is settled as expired here instead.
		events, refs = r.dropExpired(events, refs)
		if len(events) == 0 {
			return
		}
		// Each Send is bounded (the client retries transient failures
		// inside it), so that the window check above runs again during a
		// long outage. What a cut-off Send left unsent is sent again; the
		// API deduplicates what it had already accepted.
		callCtx, cancelCall := context.WithTimeout(r.sendCtx, r.cfg.SendRound)
		res, err := r.deps.API.Send(callCtx, capi.Batch{Pixel: b.key.pixel, ValidateOnly: b.key.validateOnly, Events: events})
		cancelCall()
		var unsentE [][]byte
		var unsentR []eventRef
		rejections := make(map[int]capi.Rejection, len(res.Rejections))
		for _, rj := range res.Rejections {
			rejections[rj.Index] = rj
		}
		for i, o := range res.Outcomes {
			switch o {
			case capi.Accepted:
				if t := refs[i].rec.Topic; acceptedMetric == nil || t != acceptedTopic {
					acceptedTopic, acceptedMetric = t, r.m.EventsAccepted.WithLabelValues(t)
				}
				acceptedMetric.Inc()
				r.accepted.Add(1)
				r.outcome(refs[i].rec, Outcome{Kind: "accepted", Rule: refs[i].rule})
				r.settle(refs[i])
			case capi.Rejected:
				rj := rejections[i]
				msg := "the Conversions API rejected the event"
				if rj.Status == 0 {
					msg = rj.Body
				}
				r.deadLetter(refs[i], DeadLetter{Class: ClassRejected, Rule: refs[i].rule, Message: msg,
					APIStatus: rj.Status, APIBody: truncate(rj.Body, r.cfg.MaxDeadLetterBody)})
			default:
				unsentE = append(unsentE, events[i])
				unsentR = append(unsentR, refs[i])
			}
		}
		if err == nil || len(unsentE) == 0 {
			if inFault {
				r.log.Info("the Conversions API accepts requests again", "pixel", b.key.pixel)
			}
			return
		}
		if r.sendCtx.Err() != nil {
			return // abandoned: left unsettled, re-read after restart
		}
		events, refs = unsentE, unsentR
		wait := time.Second
		var apiErr *capi.APIError
		if errors.As(err, &apiErr) && apiErr.Class == capi.ClassConfig {
			if !inFault {
				inFault = true
				r.configFaults.Add(1)
				r.m.Ready.Set(0)
			}
			wait = r.cfg.ConfigRetryInterval
			r.log.Error("Conversions API refuses the credentials or pixel; sending paused, nothing is dead-lettered",
				"pixel", b.key.pixel, "status", apiErr.Status, "retry_in", wait, "err", err)
		} else {
			r.log.Warn("batch not delivered; retrying", "pixel", b.key.pixel, "events", len(events), "err", err)
		}
		wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
		select {
		case <-r.sendCtx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// dropExpired removes the events whose timestamp is now older than the
// window and settles each as expired (dead-lettered with ClassExpired, or
// dropped with DropExpired). The slices are filtered in place.
func (r *Relay) dropExpired(events [][]byte, refs []eventRef) ([][]byte, []eventRef) {
	cutoff, _ := r.validator.Window(time.Now())
	n := 0
	for i := range events {
		ev := refs[i]
		if ev.tsMS > 0 && ev.tsMS < cutoff {
			r.m.MapErrors.WithLabelValues(ev.rec.Topic, ClassExpired).Inc()
			if r.deps.DropExpired {
				r.outcome(ev.rec, Outcome{Kind: "expired", Rule: ev.rule})
				r.settle(ev)
			} else {
				r.deadLetter(ev, DeadLetter{Class: ClassExpired, Rule: ev.rule, Message: fmt.Sprintf(
					"rule %q: timestamp_ms %s left the event-age window (cutoff %s) while waiting to be sent",
					ev.rule, time.UnixMilli(ev.tsMS).UTC().Format(time.RFC3339), time.UnixMilli(cutoff).UTC().Format(time.RFC3339))})
			}
			continue
		}
		events[n], refs[n] = events[i], refs[i]
		n++
	}
	return events[:n], refs[:n]
}

// deadLetter writes ev's record to the dead-letter topic and settles the
// event once the broker acknowledges the write. A failed write is retried
// with backoff until it succeeds or the relay abandons sending; until then
// the record is unsettled and nothing is committed past it.
func (r *Relay) deadLetter(ev eventRef, dl DeadLetter) {
	if r.deps.DryRun {
		r.m.DeadLettered.WithLabelValues(ev.rec.Topic, dl.Class).Inc()
		r.deadLettered.Add(1)
		r.outcome(ev.rec, Outcome{Kind: "dead_lettered", Class: dl.Class, Rule: dl.Rule})
		r.settle(ev)
		return
	}
	r.inflight.Add(1)
	rec := deadLetterRecord(r.cfg.DeadLetterTopic, ev.rec, dl, time.Now())
	r.log.Warn("dead-lettering record", "topic", ev.rec.Topic, "partition", ev.rec.Partition, "offset", ev.rec.Offset,
		"class", dl.Class, "rule", dl.Rule, "reason", dl.Message)
	var produce func(wait time.Duration)
	produce = func(wait time.Duration) {
		r.dlq.Produce(r.sendCtx, rec, func(_ *kgo.Record, err error) {
			if err == nil {
				r.m.DeadLettered.WithLabelValues(ev.rec.Topic, dl.Class).Inc()
				r.deadLettered.Add(1)
				r.outcome(ev.rec, Outcome{Kind: "dead_lettered", Class: dl.Class, Rule: dl.Rule})
				r.settle(ev)
				r.inflight.Done()
				return
			}
			if r.sendCtx.Err() != nil {
				r.inflight.Done()
				return
			}
			r.m.DeadLetterFailures.Inc()
			r.log.Error("dead-letter write failed; retrying (nothing is committed past this record)",
				"topic", ev.rec.Topic, "partition", ev.rec.Partition, "offset", ev.rec.Offset, "err", err, "retry_in", wait)
			go func() {
				select {
				case <-r.sendCtx.Done():
					r.inflight.Done()
				case <-time.After(wait):
					produce(min(wait*2, 30*time.Second))
				}
			}()
		})
	}
	produce(r.cfg.DeadLetterRetry)
}

// settleRevoked gives the partitions in only up to RevokeTimeout (within
// ctx) to settle, and reports whether they did. Once sending is abandoned
// (the end of Run, when the client's close revokes everything) nothing can
// settle any more, and it only looks.
func (r *Relay) settleRevoked(ctx context.Context, only map[topicPartition]bool) bool {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.RevokeTimeout)
	defer cancel()
	if r.sendCtx.Err() != nil {
		cancel()
	} else {
		r.requestFlush()
	}
	return r.waitSettled(wctx, only)
}

// waitSettled waits until the trackers in only have no unsettled record, or
// ctx ends. It reports whether that happened before ctx ended.
func (r *Relay) waitSettled(ctx context.Context, only map[topicPartition]bool) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := false
		r.mu.Lock()
		for tp, t := range r.trackers {
			if !only[tp] {
				continue
			}
			if _, _, n, _ := t.state(); n > 0 {
				busy = true
				break
			}
		}
		r.mu.Unlock()
		if !busy {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// commit commits the settled prefix of the partitions in only (all owned when
// nil) that moved since the last commit.
func (r *Relay) commit(ctx context.Context, only map[topicPartition]bool) {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.commitLocked(ctx, only)
}

func (r *Relay) commitLocked(ctx context.Context, only map[topicPartition]bool) {
	noGroup := r.cfg.Group == "" || len(r.cfg.Partitions) > 0
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	var ts []*partitionTracker
	var oldest int64
	r.mu.Lock()
	for tp, t := range r.trackers {
		off, ep, _, o := t.state()
		if o > 0 && (oldest == 0 || o < oldest) {
			oldest = o
		}
		if only != nil && !only[tp] {
			continue
		}
		if off < 0 || off <= t.committed || t.revoked {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: ep, Offset: off}
		ts = append(ts, t)
	}
	hwm := make(map[topicPartition]int64, len(r.hwm))
	for k, v := range r.hwm {
		hwm[k] = v
	}
	r.mu.Unlock()
	r.observeAge(oldest)
	if len(offsets) == 0 || noGroup {
		return
	}
	var commitErr error
	r.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		if err == nil {
			commitErr = firstCommitError(resp)
		}
	})
	if commitErr != nil {
		r.m.Commits.WithLabelValues("error").Inc()
		r.log.Warn("offset commit failed; will retry", "err", commitErr)
		return
	}
	r.m.Commits.WithLabelValues("ok").Inc()
	for _, t := range ts {
		eo := offsets[t.topic][t.partition]
		t.mu.Lock()
		if eo.Offset > t.committed {
			t.committed = eo.Offset
		}
		t.mu.Unlock()
		r.m.CommittedOffset.WithLabelValues(t.topic, itoa(t.partition)).Set(float64(eo.Offset))
		if h, ok := hwm[topicPartition{t.topic, t.partition}]; ok {
			r.m.Lag.WithLabelValues(t.topic, itoa(t.partition)).Set(float64(max(h-eo.Offset, 0)))
		}
	}
}

func (r *Relay) commitLoop(ctx context.Context) {
	tick := time.NewTicker(r.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			r.commit(cctx, nil)
			cancel()
		}
	}
}

// onRevoked runs in the group's goroutine while polling is blocked: give the
// revoked partitions' in-flight events RevokeTimeout to settle, commit their
// settled prefix, and forget them.
func (r *Relay) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked) == 0 {
		return
	}
	only := make(map[topicPartition]bool)
	for topic, ps := range revoked {
		for _, p := range ps {
			only[topicPartition{topic, p}] = true
		}
	}
	settled := r.settleRevoked(ctx, only)
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	cctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	r.commitLocked(cctx, only)
	cancel2()
	r.forget(only)
	r.log.Info("partitions revoked", "partitions", revoked, "all_settled", settled)
}

// onLost forgets lost partitions without committing: another member may own
// them already.
func (r *Relay) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	only := make(map[topicPartition]bool)
	for topic, ps := range lost {
		for _, p := range ps {
			only[topicPartition{topic, p}] = true
		}
	}
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.forget(only)
	r.log.Warn("partitions lost", "partitions", lost)
}

func (r *Relay) forget(only map[topicPartition]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for tp := range only {
		if t := r.trackers[tp]; t != nil {
			t.mu.Lock()
			t.revoked = true
			t.mu.Unlock()
			delete(r.trackers, tp)
		}
		delete(r.hwm, tp)
		r.m.CommittedOffset.DeleteLabelValues(tp.topic, itoa(tp.partition))
		r.m.Lag.DeleteLabelValues(tp.topic, itoa(tp.partition))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…(truncated)"
}

// firstCommitError returns the first per-partition error of a commit
// response.
func firstCommitError(resp *kmsg.OffsetCommitResponse) error {
	if resp == nil {
		return nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

// Progress is a snapshot of a Relay's counters since it started.
type Progress struct {
	Consumed      int64 // records read and dispatched
	Settled       int64 // records settled in full
	Unsettled     int64 // records read, not yet settled
	Filtered      int64 // records that produced no event
	Accepted      int64 // events the API accepted
	DeadLettered  int64 // dead-letter records acknowledged by the broker
	InConfigFault bool  // sending is paused on a 401/403/404
	// ConsumedByTopic counts records read per (polled) topic.
	ConsumedByTopic map[string]int64
}

// Progress returns the relay's counters; safe to call at any time. Settled
// is derived (consumed - unsettled) and may lag, never lead: consumed is
// loaded first, and a record counts as consumed only once it is unsettled.
func (r *Relay) Progress() Progress {
	consumed := r.consumed.Load()
	unsettled := r.unsettled.Load()
	p := Progress{Consumed: consumed, Settled: max(consumed-unsettled, 0), Unsettled: unsettled,
		Filtered: r.filtered.Load(), Accepted: r.accepted.Load(), DeadLettered: r.deadLettered.Load(),
		InConfigFault: r.configFaults.Load() > 0, ConsumedByTopic: map[string]int64{}}
	r.mu.Lock()
	for t, c := range r.byTopic {
		p.ConsumedByTopic[t] = c.Load()
	}
	r.mu.Unlock()
	return p
}

// observeAge updates the age and time-to-expiry gauges from the event time
// (Unix ms) of the oldest unsettled event, and warns when that event is about
// to leave the API's window.
func (r *Relay) observeAge(oldestMS int64) {
	if oldestMS <= 0 {
		r.m.OldestUnsettledAge.Set(0)
		r.m.ExpiresIn.Set(capi.MaxEventAge.Seconds())
		return
	}
	now := time.Now()
	age := now.Sub(time.UnixMilli(oldestMS))
	cutoff, _ := r.validator.Window(now)
	left := time.Duration(oldestMS-cutoff) * time.Millisecond
	r.m.OldestUnsettledAge.Set(age.Seconds())
	r.m.ExpiresIn.Set(left.Seconds())
	if left < r.cfg.ExpiryWarning && now.Sub(r.lastExpiryWarn) > 5*time.Minute {
		r.lastExpiryWarn = now
		r.log.Warn("the oldest unsettled event is close to leaving the API's time window; it will be dead-lettered as expired if not sent in time",
			"event_time", time.UnixMilli(oldestMS).UTC(), "age", age.Round(time.Second), "time_left", left.Round(time.Second))
	}
}

// SetTopics changes the consumed topics of a group relay (rule reload).
// Added topics are subscribed at once. Removed topics stop being fetched;
// their in-flight events get up to RevokeTimeout to settle, their settled
// prefix is committed, and then they are dropped from the subscription
// (records not settled by then are re-read if the topic comes back). Nothing
// is committed twice or past an unsettled record. It returns the added and
// removed topics.
func (r *Relay) SetTopics(ctx context.Context, topics []string) (added, removed []string, err error) {
	if len(r.cfg.Partitions) > 0 {
		return nil, nil, errors.New("consumer: SetTopics needs a group relay")
	}
	r.topicsMu.Lock()
	defer r.topicsMu.Unlock()
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	have := map[string]bool{}
	for _, t := range r.cfg.Topics {
		have[t] = true
		if !want[t] {
			removed = append(removed, t)
		}
	}
	for _, t := range topics {
		if !have[t] {
			if t == r.cfg.DeadLetterTopic && !r.cfg.AllowDeadLetterSource {
				return nil, nil, fmt.Errorf("consumer: topic %q is the dead-letter topic", t)
			}
			added = append(added, t)
		}
	}
	if len(added) > 0 {
		r.m.initTopics(added)
		r.cl.AddConsumeTopics(added...)
	}
	if len(removed) > 0 {
		r.cl.PauseFetchTopics(removed...)
		only := map[topicPartition]bool{}
		gone := map[string]bool{}
		for _, t := range removed {
			gone[t] = true
		}
		r.mu.Lock()
		for tp := range r.trackers {
			if gone[tp.topic] {
				only[tp] = true
			}
		}
		r.mu.Unlock()
		settled := r.settleRevoked(ctx, only)
		r.commitMu.Lock()
		cctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
		r.commitLocked(cctx, only)
		cancel2()
		r.forget(only)
		r.commitMu.Unlock()
		r.cl.PurgeTopicsFromConsuming(removed...)
		r.cl.ResumeFetchTopics(removed...)
		r.log.Info("stopped consuming topics", "topics", removed, "all_settled", settled)
	}
	r.cfg.Topics = append([]string(nil), topics...)
	return added, removed, nil
}
