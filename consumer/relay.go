package consumer

// relay.go: the Relay, its assembly (New) and its life (Run: start the
// stages, poll, drain). Each stage lives in its own file and says what it
// owns and which lock guards it:
//
//	poll.go       the fetch loop: back-pressure, bounded runs
//	budget.go     the memory bound (records and bytes not settled)
//	mapstage.go   mapping workers and the parking lot of transient failures
//	batcher.go    per-pixel batches and linger
//	sender.go     API rounds and the expiry re-check
//	deadletter.go the dead-letter writer (reduced records, permanent vs transient)
//	dlrecord.go   the dead-letter record format (headers, unwrap for redrive)
//	committer.go  commits of the settled prefix, revocation, loss
//	topics.go     changing the consumed topics (rule reload)
//	settle.go     the settle rule: tokens and per-partition trackers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
)

// Relay consumes the configured topics in a consumer group, maps each record,
// sends the events in batches, and commits offsets only for settled records.
//
// Guarantees:
//   - A record is settled when every event mapped from it was accepted (2xx),
//     or dead-lettered with the broker's acknowledgement, or when it produced
//     no event. Per partition, the committed offset is the offset after the
//     longest settled prefix; nothing else moves it (settle.go). So a crash at
//     any instant (kill -9 included) loses nothing: the next owner re-reads
//     every record after the last commit, and the API deduplicates re-sent
//     events on id.
//   - Transient failures (API 5xx/408/429, timeouts, dead-letter writes
//     failing for a reason that can heal, mapper errors marked ErrTransient)
//     are retried; they never dead-letter and never move a commit. A record
//     whose mapping fails transiently is parked off the mapping workers, so
//     other partitions and topics keep flowing; its partition is paused until
//     it maps. At shutdown parked records are given up at once (the drain
//     does not wait for them): they stay uncommitted and are re-read after
//     the restart.
//   - Permanent failures never hold a partition: a bad record is
//     dead-lettered, and a dead letter too large for the dead-letter topic is
//     written reduced (without the value) instead of being retried forever.
//   - Configuration faults (API 401/403/404) pause sending, make Ready false
//     and are retried every ConfigRetryInterval; nothing is dead-lettered
//     because of them, and sending resumes by itself.
//   - On revocation, a partition's in-flight events get up to RevokeTimeout
//     to settle; the settled prefix is committed, and the rest is re-read by
//     the next owner. A revoked partition is never committed again.
//   - Memory is bounded: polling pauses while MaxUnsettledRecords records,
//     or MaxUnsettledBytes bytes of records, are unsettled.
type Relay struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	m         *Metrics
	validator *capi.Validator

	cl *kgo.Client // the group consumer: poll loop, committer, topic changes
	dl deadLetters // the dead-letter writer and its producer (deadletter.go)

	// Partitions (committer.go, poll.go). mu guards trackers, hwm, done and
	// byTopic; a tracker's own state has its own lock (settle.go).
	mu       sync.Mutex
	trackers map[topicPartition]*partitionTracker
	hwm      map[topicPartition]int64
	done     map[topicPartition]bool  // bounded partitions consumed to their end
	byTopic  map[string]*atomic.Int64 // records consumed per topic
	commitMu sync.Mutex               // serializes commits with revocation
	topicsMu sync.Mutex               // serializes SetTopics

	// Paused partitions and why (poll.go). pauseMu guards pauses; it is
	// taken after mapStage.mu, never while a tracker's lock is held.
	pauseMu sync.Mutex
	pauses  map[topicPartition]pauseReason

	budget *budget   // records and bytes read but not settled (budget.go)
	stage  *mapStage // mapping workers and parked records (mapstage.go)

	// Batches (batcher.go). bmu guards pending.
	bmu     sync.Mutex
	pending map[batchKey]*batch
	sendq   chan *batch
	// flushNow asks the linger loop to flush every pending batch now
	// (requestFlush); buffered, so asking never blocks.
	flushNow chan struct{}

	sendCtx    context.Context // cancelled to abandon in-flight sends and dead-letter writes (end of Run)
	cancelSend context.CancelFunc
	// inflight counts the batches and dead-letter writes under way. Once the
	// mapping workers have stopped and the pending batches are flushed, every
	// unit that can still settle is in one of them (an event is in a batch
	// being sent or retried, or in a dead-letter write being retried; a
	// rejected or expired event becomes a dead-letter write before its batch
	// is done). The drain waits for it to reach zero.
	inflight sync.WaitGroup

	consumed       atomic.Int64 // records dispatched (settled = consumed - unsettled)
	accepted       atomic.Int64 // events accepted
	deadLettered   atomic.Int64 // dead-letter writes acknowledged
	filtered       atomic.Int64 // records that produced no event
	configFaults   atomic.Int32
	running        atomic.Bool
	lastExpiryWarn time.Time // guarded by commitMu (observeAge runs in commitLocked)
}

type topicPartition struct {
	topic     string
	partition int32
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
		pauses:   make(map[topicPartition]pauseReason),
		pending:  make(map[batchKey]*batch),
		sendq:    make(chan *batch, cfg.Concurrency),
		flushNow: make(chan struct{}, 1),
	}
	r.budget = newBudget(int64(cfg.MaxUnsettledRecords), cfg.MaxUnsettledBytes, func(records, bytes int64) {
		r.m.UnsettledRecords.Set(float64(records))
		r.m.UnsettledBytes.Set(float64(bytes))
	})
	r.stage = newMapStage(r)
	// Created here, not in Run: onRevoked reads it from the group's
	// goroutine, which may run before Run.
	r.sendCtx, r.cancelSend = context.WithCancel(context.Background())
	cl, err := kgo.NewClient(r.consumerOpts()...)
	if err != nil {
		return nil, fmt.Errorf("consumer: kafka client: %w", err)
	}
	if err := r.dl.init(r); err != nil {
		cl.Close()
		return nil, err
	}
	r.cl = cl
	return r, nil
}

// consumerOpts are the group consumer's client options.
func (r *Relay) consumerOpts() []kgo.Opt {
	cfg := r.cfg
	start := kgo.NewOffset().AtStart()
	if cfg.StartAtEnd {
		start = kgo.NewOffset().AtEnd()
	}
	if !cfg.StartAfter.IsZero() {
		start = kgo.NewOffset().AfterMilli(cfg.StartAfter.UnixMilli())
	}
	// The client buffers one fetch per broker, of at most FetchMaxBytes
	// (compressed) each, on top of what the relay holds. Limiting the
	// concurrent fetches instead would make a busy broker wait behind idle
	// ones' long polls.
	fetchMax := int32(min(max(cfg.MaxUnsettledBytes/16, 1<<20), 50<<20))
	opts := append([]kgo.Opt{}, cfg.Connection...)
	opts = append(opts,
		// Aborted transactions are never relayed; control records are kept
		// so that a partition's end is seen even when a transaction marker
		// is its last offset, and commits move past markers.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(fetchMax),
		kgo.FetchMaxPartitionBytes(min(fetchMax, 1<<20)),
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
	return opts
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

	var senders sync.WaitGroup
	for range r.cfg.Concurrency {
		senders.Go(func() {
			for b := range r.sendq {
				r.send(b)
			}
		})
	}
	bgCtx, stopBG := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { r.lingerLoop(bgCtx) })
	bg.Go(func() { r.commitLoop(bgCtx) })

	r.dl.sizeFromTopic(ctx, r)

	// The mapping stage stops when ctx ends (a record being mapped is
	// interrupted and given up; queued and parked ones are left unsettled),
	// or when the drain ends (a bounded run drains without ctx ending).
	mapCtx, stopMapping := context.WithCancel(ctx)
	defer stopMapping()
	r.stage.start(mapCtx)
	pollErr := r.initBounds(ctx)
	if pollErr == nil {
		pollErr = r.pollLoop(ctx)
	}

	// Drain. Its deadline (or force) covers every step: during an API
	// outage the senders retry without end, sendq is full, and a mapping
	// worker (or the linger loop) waits for room in it; only abandoning the
	// sends frees them. Abandoned sends leave their records unsettled:
	// nothing is committed past them.
	held, heldBytes := r.budget.held()
	r.log.Info("draining", "unsettled_records", held, "unsettled_bytes", heldBytes, "deadline", r.cfg.DrainTimeout)
	drainCtx, cancelDrain := context.WithTimeout(force, r.cfg.DrainTimeout)
	defer cancelDrain()
	stopAbandon := context.AfterFunc(drainCtx, func() {
		r.cancelSend()
		stopMapping()
	})
	r.stage.drain(mapCtx) // a bounded run maps what it read, parked records included
	stopMapping()
	r.stage.wait()
	r.flushAll()
	// Every unit that can still settle is now in a batch or a dead-letter
	// write counted in inflight; the rest (records queued, parked or
	// interrupted at shutdown) cannot settle in this run and is not waited
	// for.
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
		held, _ := r.budget.held()
		r.log.Warn("drain deadline reached or forced; unsettled records will be re-read after restart",
			"unsettled_records", held)
	}
	r.cancelSend()
	close(r.sendq)
	senders.Wait()
	stopBG()
	bg.Wait()
	commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
	r.commit(commitCtx, nil)
	cancelCommit()
	// The revocation on close does not wait again (see settleRevoked):
	// everything is settled or abandoned by now.
	r.cl.CloseAllowingRebalance()
	r.dl.close()
	r.inflight.Wait()
	return pollErr
}

// outcome reports o for rec to Deps.OnOutcome.
func (r *Relay) outcome(rec *kgo.Record, o Outcome) {
	if r.deps.OnOutcome != nil {
		r.deps.OnOutcome(rec, o)
	}
}

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
	unsettled, _ := r.budget.held()
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

// settleViolation handles a misused settle token: it is a bug in the relay,
// counted and logged; the token was ignored, so nothing was committed early.
// In this package's tests it panics (panicOnViolation).
func (r *Relay) settleViolation(err error) {
	r.m.SettleViolations.Inc()
	r.log.Error("internal error (please report it); ignored, nothing is committed early", "err", err)
	if panicOnViolation {
		panic(err)
	}
}

// panicOnViolation makes settleViolation panic; set by this package's tests.
var panicOnViolation = false
