package consumer

// settle.go owns the settle rule, the heart of the relay: which records are
// settled, and so which offset of a partition may be committed. Nothing else
// moves a commit.
//
// A record is settled when it has no pending unit of work. Each unit is a
// token taken from the record: the mapping (one token, taken when the poll
// loop tracks the record), then each event mapped from it (the mapping token
// is split into one token per event), and each dead-letter write (a write
// takes over the token of what it dead-letters: the mapping of a bad record,
// or an event that failed validation, expired or was refused by the API). A
// token is used exactly once: done, split or abandoned. Per partition, the
// committable offset is the offset after the longest settled prefix.
//
// Lock: partitionTracker.mu guards a tracker's entries and offsets. The
// tracker calls its released hook (the memory budget) and its violation hook
// without holding it.

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// token is one pending unit of work of one tracked record. The zero token
// belongs to no record (a dry run's dead letter); using it does nothing.
//
// Using a token twice (done after done, split after done, ...) is a violation
// of the protocol: it changes nothing — a record's pending count can never go
// below zero, and an extra done can never settle a record early — and it is
// reported to the tracker's violation hook (the relay counts and logs it; this
// package's tests panic).
type token struct {
	t   *partitionTracker
	seq uint64 // the record's sequence number in t
	id  uint32 // the unit's id within the record
}

// done finishes the unit. When it was the record's last pending unit, the
// record is settled: the committable offset may move past it, and its share
// of the memory budget is given back.
func (k token) done() { k.use(0, nil, false) }

// split finishes the unit and replaces it with n new units of the same
// record, appended to dst: the mapping becomes the record's events. With n ==
// 0 it is done. The record cannot settle in between.
func (k token) split(n int, dst []token) []token { return k.use(n, dst, false) }

// abandon finishes a unit that can no longer complete (a parked mapping of a
// revoked partition). It is a violation on a tracker that is not revoked:
// abandoning never lets a commit pass unfinished work.
func (k token) abandon() { k.use(0, nil, true) }

// setEventTime records the event time (Unix ms) of the record's oldest event
// for the age gauges; ms <= 0 keeps the record timestamp.
func (k token) setEventTime(ms int64) {
	if k.t == nil || ms <= 0 {
		return
	}
	t := k.t
	t.mu.Lock()
	if e := t.entryLocked(k.seq); e != nil && ms < e.tsMS {
		e.tsMS = ms
	}
	t.mu.Unlock()
}

func (k token) use(n int, dst []token, abandon bool) []token {
	t := k.t
	if t == nil {
		return dst
	}
	t.mu.Lock()
	e := t.entryLocked(k.seq)
	var err error
	switch {
	case e == nil:
		err = fmt.Errorf("settle protocol violated: unit %d of record #%d of %s/%d used after the record settled", k.id, k.seq, t.topic, t.partition)
	case !e.has(k.id):
		err = fmt.Errorf("settle protocol violated: unit %d of %s/%d@%d used twice", k.id, t.topic, t.partition, e.offset)
	case abandon && !t.revoked:
		err = fmt.Errorf("settle protocol violated: unit %d of %s/%d@%d abandoned while the partition is owned", k.id, t.topic, t.partition, e.offset)
	}
	if err != nil {
		t.mu.Unlock()
		if t.violation != nil {
			t.violation(err)
		}
		return dst
	}
	e.clear(k.id)
	for range n {
		id := e.next
		e.next++
		e.set(id)
		dst = append(dst, token{t: t, seq: k.seq, id: id})
	}
	settled := !e.pending()
	bytes := e.bytes
	moved := settled && k.seq == t.base+uint64(t.head)
	if moved {
		t.advanceLocked()
	}
	window := len(t.entries) - t.head
	t.mu.Unlock()
	if settled && t.released != nil {
		t.released(bytes)
	}
	if moved && t.advanced != nil && t.windowPaused.Load() {
		t.advanced(t, window)
	}
	return dst
}

// partitionTracker holds the records of one partition from the first
// unsettled one on, in offset order, with their pending units, and computes
// the settled prefix. The poll loop adds records in offset order; any
// goroutine uses their tokens.
//
// A tracker is replaced, never reused, when its partition is revoked and
// assigned again: tokens of the old tracker still work (their records settle
// and give back their budget) but nothing commits from a revoked tracker.
type partitionTracker struct {
	topic     string
	partition int32
	// released is called once per record that settles in full, with the
	// bytes it was tracked with. violation is called on a misused token.
	// Both are set at creation and never change; nil means none.
	released  func(bytes int64)
	violation func(error)
	// advanced is called (without mu) after the settled prefix moved, with
	// the number of records still tracked, while windowPaused is set.
	advanced func(t *partitionTracker, window int)
	// windowPaused is set while the partition's fetching is paused because
	// it tracks too many records (poll.go); it gates advanced.
	windowPaused atomic.Bool

	mu      sync.Mutex // guards everything below
	base    uint64     // sequence number of entries[0]
	head    int        // index of the first unsettled entry
	entries []entry    // entries[head:] are tracked; entries[:head] is reclaimable
	// committable is the offset after the longest settled prefix (-1 until
	// a record is settled); epoch is the leader epoch of that record.
	committable int64
	epoch       int32
	committed   int64 // the offset last committed to Kafka (-1 if none)
	revoked     bool

	// consumed counts the records of the partition's topic (shared by the
	// topic's trackers), for per-topic progress; consumedMetric is the
	// topic's records-consumed counter, looked up once per tracker.
	consumed       *atomic.Int64
	consumedMetric prometheus.Counter
}

type entry struct {
	offset int64
	epoch  int32
	next   uint32              // id of the record's next unit
	live   uint64              // bit i: unit i (< 64) is pending
	more   map[uint32]struct{} // pending units with ids >= 64 (rare)
	tsMS   int64               // event time of the oldest event, for the age gauges
	bytes  int64               // the record's share of the memory budget
}

func (e *entry) has(id uint32) bool {
	if id < 64 {
		return e.live&(1<<id) != 0
	}
	_, ok := e.more[id]
	return ok
}

func (e *entry) set(id uint32) {
	if id < 64 {
		e.live |= 1 << id
		return
	}
	if e.more == nil {
		e.more = make(map[uint32]struct{})
	}
	e.more[id] = struct{}{}
}

func (e *entry) clear(id uint32) {
	if id < 64 {
		e.live &^= 1 << id
		return
	}
	delete(e.more, id)
}

func (e *entry) pending() bool { return e.live != 0 || len(e.more) > 0 }

// pendingUnits is the number of pending units of the record.
func (e *entry) pendingUnits() int { return bits.OnesCount64(e.live) + len(e.more) }

func newTracker(topic string, partition int32, released func(int64), violation func(error)) *partitionTracker {
	return &partitionTracker{topic: topic, partition: partition, released: released, violation: violation,
		committable: -1, committed: -1}
}

// track adds a record, in offset order, whose one pending unit is its
// mapping, and returns that unit's token. bytes is the record's share of the
// memory budget, given back through released when the record settles; tsMS
// its timestamp (Unix ms).
// It also returns the number of records now tracked (the window).
func (t *partitionTracker) track(offset int64, epoch int32, tsMS, bytes int64) (token, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.appendLocked(entry{offset: offset, epoch: epoch, next: 1, live: 1, tsMS: tsMS, bytes: bytes})
	return token{t: t, seq: seq, id: 0}, len(t.entries) - t.head
}

// skip adds a record with no work (a transaction marker): settled at once,
// it takes its place in the prefix so that commits move past it.
func (t *partitionTracker) skip(offset int64, epoch int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.appendLocked(entry{offset: offset, epoch: epoch})
	if seq == t.base+uint64(t.head) {
		t.advanceLocked()
	}
}

func (t *partitionTracker) appendLocked(e entry) uint64 {
	// Compact when more than half of the slice is settled history.
	if t.head > 0 && t.head >= len(t.entries)/2 {
		n := copy(t.entries, t.entries[t.head:])
		clear(t.entries[n:])
		t.entries = t.entries[:n]
		t.base += uint64(t.head)
		t.head = 0
	}
	t.entries = append(t.entries, e)
	return t.base + uint64(len(t.entries)-1)
}

// entryLocked returns the tracked entry of seq, or nil when that record is
// settled and behind the head (or was never tracked here).
func (t *partitionTracker) entryLocked(seq uint64) *entry {
	if seq < t.base {
		return nil
	}
	i := seq - t.base
	if i < uint64(t.head) || i >= uint64(len(t.entries)) {
		return nil
	}
	return &t.entries[i]
}

func (t *partitionTracker) advanceLocked() {
	for t.head < len(t.entries) && !t.entries[t.head].pending() {
		e := &t.entries[t.head]
		t.committable = e.offset + 1
		t.epoch = e.epoch
		t.head++
	}
}

// state returns the committable offset (-1 if nothing settled yet), its
// epoch, the number of tracked records from the first unsettled one on, and
// the event time (ms) of the oldest unsettled record (0 if none).
func (t *partitionTracker) state() (committable int64, epoch int32, unsettled int, oldestMS int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	unsettled = len(t.entries) - t.head
	if unsettled > 0 {
		oldestMS = t.entries[t.head].tsMS
	}
	return t.committable, t.epoch, unsettled, oldestMS
}

// window returns the number of records tracked: from the first unsettled
// one to the last read.
func (t *partitionTracker) window() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries) - t.head
}

// toCommit returns the offset to commit for the partition and its epoch, and
// whether there is one: the settled prefix moved past the last commit and
// the partition is still owned.
func (t *partitionTracker) toCommit() (offset int64, epoch int32, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.revoked || t.committable < 0 || t.committable <= t.committed {
		return 0, 0, false
	}
	return t.committable, t.epoch, true
}

// committedTo records a successful commit of offset.
func (t *partitionTracker) committedTo(offset int64) {
	t.mu.Lock()
	if offset > t.committed {
		t.committed = offset
	}
	t.mu.Unlock()
}

// revoke marks the partition given up: nothing commits from t any more, and
// its parked units may be abandoned.
func (t *partitionTracker) revoke() {
	t.mu.Lock()
	t.revoked = true
	t.mu.Unlock()
}

func (t *partitionTracker) isRevoked() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.revoked
}
