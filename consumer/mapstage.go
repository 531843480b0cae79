package consumer

// mapstage.go: the mapping stage. It owns the mapping workers, the queue of
// polled records (jobs) and the parking lot: records whose decoding or
// mapping failed transiently wait there for their retry, off the workers,
// while their partitions are paused. A worker maps a record, settles its
// mapping unit into event units and hands the events to the batcher and the
// bad ones to the dead-letter writer. Lock: mapStage.mu guards the parking
// lot (parked, byPartition); the job queues are channels.

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
)

// Parked records are retried after parkMinWait, doubled each attempt up to
// parkMaxWait, with jitter.
const (
	parkMinWait = 100 * time.Millisecond
	parkMaxWait = 10 * time.Second
)

// job is one polled record for the mapping stage, with its mapping unit.
type job struct {
	polled  *kgo.Record
	tok     token
	attempt int       // transient failures so far (0: never parked)
	due     time.Time // when a parked job is retried
	warned  time.Time // last warning logged for it
}

type mapStage struct {
	r *Relay
	// jobs holds polled records in poll order. Its capacity is
	// MaxUnsettledRecords: each queued job holds one record of the budget,
	// so the poll loop's send never blocks (it must not: it runs before
	// AllowRebalance and does not watch ctx).
	jobs chan job
	// retry hands due parked jobs to the workers; only the park loop sends.
	retry chan job
	// pending counts jobs queued, being mapped or parked; idle receives a
	// token when it drops to zero (the drain of a bounded run waits for it).
	pending atomic.Int64
	idle    chan struct{}
	workers sync.WaitGroup

	mu          sync.Mutex // guards parked and byPartition
	parked      parkHeap
	byPartition map[*partitionTracker]int // records in retry per partition (paused while > 0)
	wake        chan struct{}             // the park loop re-reads the heap (capacity 1)
}

func newMapStage(r *Relay) *mapStage {
	return &mapStage{r: r, jobs: make(chan job, r.cfg.MaxUnsettledRecords), retry: make(chan job),
		idle: make(chan struct{}, 1), byPartition: make(map[*partitionTracker]int), wake: make(chan struct{}, 1)}
}

// start starts the workers and the park loop; they stop when ctx ends.
func (s *mapStage) start(ctx context.Context) {
	for i := range s.r.cfg.MapWorkers {
		m := s.r.deps.Mapper
		if s.r.deps.NewMapper != nil && i > 0 {
			m = s.r.deps.NewMapper()
		}
		s.workers.Go(func() { s.worker(ctx, m) })
	}
	s.workers.Go(func() { s.parkLoop(ctx) })
}

// wait waits for the workers and the park loop to stop (after ctx ended).
func (s *mapStage) wait() { s.workers.Wait() }

// enqueue hands a polled record to the workers; it never blocks (see jobs).
func (s *mapStage) enqueue(j job) {
	s.pending.Add(1)
	s.jobs <- j
}

// drain waits until every job is mapped (none queued, parked or in hand), or
// ctx ends.
func (s *mapStage) drain(ctx context.Context) {
	for s.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-s.idle:
		}
	}
}

// finish ends a job: mapped, dead-lettered, or given up.
func (s *mapStage) finish(j job) {
	if j.attempt > 0 {
		s.unpark(j)
	}
	if s.pending.Add(-1) == 0 {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

func (s *mapStage) worker(ctx context.Context, mapper Mapper) {
	w := &mapState{mapper: mapper}
	for {
		var j job
		select {
		case <-ctx.Done():
			return
		case j = <-s.jobs:
		case j = <-s.retry:
		}
		if ctx.Err() != nil {
			// Shutting down: a record polled but not mapped stays
			// unsettled (never committed past, re-read after the
			// restart). The drain is for what is already batched.
			return
		}
		s.r.mapRecord(ctx, w, j)
	}
}

// park puts a job whose mapping failed transiently in the parking lot. Its
// partition is paused while it has parked records, so that the budget is not
// filled with records that cannot map while other partitions wait. A job of
// a revoked partition is abandoned instead: its next owner re-reads it.
func (s *mapStage) park(j job, err error) {
	r := s.r
	if j.tok.t.isRevoked() {
		j.tok.abandon()
		s.finish(j)
		return
	}
	tp := topicPartition{j.polled.Topic, j.polled.Partition}
	now := time.Now()
	wait := parkMinWait << min(j.attempt, 10)
	wait = min(wait, parkMaxWait)
	wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
	j.attempt++
	j.due = now.Add(wait)
	// Visible at once, then at most every 30s per record.
	warn := j.attempt == 1 || now.Sub(j.warned) >= 30*time.Second
	if warn {
		j.warned = now
	}
	s.mu.Lock()
	if j.attempt == 1 {
		s.byPartition[j.tok.t]++
		if s.byPartition[j.tok.t] == 1 {
			r.pause(tp, pausedParked, true)
		}
		r.m.RecordsParked.Inc()
	}
	heap.Push(&s.parked, j)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if warn {
		r.log.Warn("decoding or mapping failed transiently; record parked for a retry, its partition paused (other partitions keep flowing)",
			"topic", j.polled.Topic, "partition", j.polled.Partition, "offset", j.polled.Offset,
			"attempt", j.attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
	}
}

// unpark accounts for a job that left the retry state; the last one of a
// partition resumes fetching it (unless the partition was given up since:
// forget cleared its pauses, and a new owner's tracker has its own count).
func (s *mapStage) unpark(j job) {
	t := j.tok.t
	s.mu.Lock()
	s.byPartition[t]--
	if s.byPartition[t] <= 0 {
		delete(s.byPartition, t)
		if !t.isRevoked() {
			s.r.pause(topicPartition{t.topic, t.partition}, pausedParked, false)
		}
	}
	s.mu.Unlock()
	s.r.m.RecordsParked.Dec()
}

// dropPartitions abandons the parked jobs of partitions given up (revoked,
// lost or removed): their next owner re-reads them. The trackers must be
// revoked first.
func (s *mapStage) dropPartitions(only map[topicPartition]bool) {
	s.mu.Lock()
	var dropped []job
	keep := s.parked[:0]
	for _, j := range s.parked {
		if only[topicPartition{j.polled.Topic, j.polled.Partition}] {
			dropped = append(dropped, j)
			continue
		}
		keep = append(keep, j)
	}
	clear(s.parked[len(keep):])
	s.parked = keep
	heap.Init(&s.parked)
	s.mu.Unlock()
	for _, j := range dropped {
		j.tok.abandon()
		s.finish(j)
	}
}

// parkLoop hands parked jobs to the workers when they are due.
func (s *mapStage) parkLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var next *job
		if len(s.parked) > 0 {
			next = &s.parked[0]
		}
		var j job
		due := false
		wait := time.Hour
		if next != nil {
			if wait = time.Until(next.due); wait <= 0 {
				j = heap.Pop(&s.parked).(job)
				due = true
			}
		}
		s.mu.Unlock()
		if due {
			select {
			case <-ctx.Done():
				return
			case s.retry <- j:
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// parkHeap orders parked jobs by due time.
type parkHeap []job

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, k int) bool { return h[i].due.Before(h[k].due) }
func (h parkHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *parkHeap) Push(x any)        { *h = append(*h, x.(job)) }
func (h *parkHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = job{}
	*h = old[:len(old)-1]
	return j
}

// mapState is what a mapping worker reuses from record to record.
type mapState struct {
	mapper Mapper // the worker's own
	outs   []Mapped
	toks   []token
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
// dead-letter writer: its mapping unit becomes one unit per event. A
// transient failure parks the record; ctx ending gives it up unsettled (never
// committed past, re-read after a restart).
func (r *Relay) mapRecord(ctx context.Context, w *mapState, j job) {
	polled := j.polled
	rec := polled
	var err error
	if r.deps.Unwrap != nil {
		if rec, err = r.deps.Unwrap(polled); err != nil {
			rec = polled
			err = &RecordError{Class: ClassDecode, Err: err}
		}
	}
	if err == nil {
		w.outs, err = w.mapper.Map(ctx, rec, w.outs[:0])
	}
	if err != nil {
		interrupted := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		switch {
		case interrupted && ctx.Err() != nil:
			r.log.Info("shutting down: giving up a record being mapped; it is not committed and will be re-read after the restart",
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
			r.stage.finish(j)
			return
		case interrupted || errors.Is(err, ErrTransient):
			r.stage.park(j, err)
			return
		}
		if j.attempt > 0 {
			r.log.Info("parked record failed permanently on retry; dead-lettering it", "topic", rec.Topic,
				"partition", rec.Partition, "offset", rec.Offset, "attempts", j.attempt+1)
		}
		dl := DeadLetter{Class: ClassMapping, Message: err.Error()}
		var re *RecordError
		if errors.As(err, &re) {
			dl.Class, dl.Rule = re.Class, re.Rule
		}
		r.m.MapErrors.WithLabelValues(rec.Topic, dl.Class).Inc()
		r.stage.finish(j)
		r.deadLetter(eventRef{tok: j.tok, rec: rec, rule: dl.Rule}, dl) // the mapping unit becomes the write
		return
	}
	if j.attempt > 0 {
		r.log.Info("parked record mapped", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
			"attempts", j.attempt+1)
	}
	r.stage.finish(j)
	outs := w.outs
	if len(outs) == 0 {
		w.filteredMetric(r.m, rec.Topic).Inc()
		r.filtered.Add(1)
		r.outcome(rec, Outcome{Kind: "filtered"})
		j.tok.done()
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
	j.tok.setEventTime(minTS)
	w.toks = j.tok.split(len(outs), w.toks[:0])
	for i := range outs {
		o := &outs[i]
		ev := eventRef{tok: w.toks[i], rec: rec, rule: o.Rule, tsMS: o.Event.TimestampMS}
		if verr := r.validator.Validate(&o.Event); verr != nil {
			class := ClassValidation
			if errors.Is(verr, capi.ErrTooOld) {
				class = ClassExpired
			}
			r.m.MapErrors.WithLabelValues(rec.Topic, class).Inc()
			if class == ClassExpired && r.deps.DropExpired {
				r.outcome(rec, Outcome{Kind: "expired", Rule: o.Rule})
				ev.tok.done()
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
}
