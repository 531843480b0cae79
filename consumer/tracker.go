package consumer

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// partitionTracker holds the records of one partition, from the first
// unsettled one on, in offset order, and computes the settled prefix: the
// offset the relay may commit. Records are added by the poll loop in offset
// order; any goroutine settles them.
//
// A tracker is replaced, never reused, when its partition is revoked and later
// assigned again: settlements that arrive for the old tracker after revocation
// are harmless, since nothing commits from a revoked tracker.
type partitionTracker struct {
	topic     string
	partition int32

	mu      sync.Mutex
	base    uint64  // sequence number of entries[head]
	head    int     // index of the first unsettled entry
	entries []entry // entries[head:] are tracked; entries[:head] is reclaimable
	// committable is the offset after the longest settled prefix (-1 until
	// the first record is settled); epoch is the leader epoch of that record.
	committable int64
	epoch       int32
	committed   int64 // the offset last committed to Kafka (-1 if none)
	revoked     bool
	// consumed counts the records of the partition's topic (shared by the
	// topic's trackers), for per-topic progress.
	consumed *atomic.Int64
	// consumedMetric is the topic's records-consumed counter, looked up
	// once per tracker instead of once per record.
	consumedMetric prometheus.Counter
}

type entry struct {
	offset    int64
	epoch     int32
	remaining int32 // events (and dead-letter writes) not yet settled
	tsMS      int64 // record timestamp, for the oldest-unsettled gauge
}

// ref identifies one tracked record. Events mapped from the record carry it,
// and settle it when they are accepted or dead-lettered.
type ref struct {
	t   *partitionTracker
	seq uint64
}

func newTracker(topic string, partition int32) *partitionTracker {
	return &partitionTracker{topic: topic, partition: partition, committable: -1, committed: -1}
}

// add tracks a record with n unsettled events. A record with n == 0 (no rule
// matched) is settled at once but still takes its place in the prefix.
func (t *partitionTracker) add(offset int64, epoch int32, tsMS int64, n int) ref {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Compact when more than half of the slice is settled history.
	if t.head > 0 && t.head >= len(t.entries)/2 {
		n := copy(t.entries, t.entries[t.head:])
		t.entries = t.entries[:n]
		t.base += uint64(t.head)
		t.head = 0
	}
	seq := t.base + uint64(len(t.entries))
	t.entries = append(t.entries, entry{offset: offset, epoch: epoch, remaining: int32(n), tsMS: tsMS})
	if n == 0 {
		t.advanceLocked()
	}
	return ref{t: t, seq: seq}
}

// addPending raises the unsettled count of a tracked record by n (a rejected
// event becomes a dead-letter write before it settles).
func (r ref) addPending(n int) {
	r.t.mu.Lock()
	r.t.entries[r.seq-r.t.base].remaining += int32(n)
	r.t.mu.Unlock()
}

// setTimestamp records the event time (Unix ms) of the record's oldest event,
// for the age and time-to-expiry gauges; 0 keeps the record timestamp.
func (r ref) setTimestamp(ms int64) {
	if ms <= 0 {
		return
	}
	r.t.mu.Lock()
	if i := int(r.seq - r.t.base); i >= r.t.head && i < len(r.t.entries) && ms < r.t.entries[i].tsMS {
		r.t.entries[i].tsMS = ms
	}
	r.t.mu.Unlock()
}

// settle marks one event of the record settled and reports whether the
// record is now settled in full.
func (r ref) settle() bool {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	i := int(r.seq - t.base)
	if i < t.head || i >= len(t.entries) {
		return false // already settled in full (cannot happen unless misused)
	}
	t.entries[i].remaining--
	done := t.entries[i].remaining == 0
	if i == t.head && done {
		t.advanceLocked()
	}
	return done
}

func (t *partitionTracker) advanceLocked() {
	for t.head < len(t.entries) && t.entries[t.head].remaining <= 0 {
		e := t.entries[t.head]
		t.committable = e.offset + 1
		t.epoch = e.epoch
		t.head++
	}
}

// state returns the committable offset (-1 if nothing settled yet), its
// epoch, the number of unsettled records, and the record timestamp (ms) of the
// oldest unsettled record (0 if none).
func (t *partitionTracker) state() (committable int64, epoch int32, unsettled int, oldestMS int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	unsettled = len(t.entries) - t.head
	if unsettled > 0 {
		oldestMS = t.entries[t.head].tsMS
	}
	return t.committable, t.epoch, unsettled, oldestMS
}
