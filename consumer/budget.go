package consumer

// budget.go owns the memory bound: how many records, and how many bytes of
// records, the relay holds read but not settled. The poll loop takes from the
// budget for every record it hands on; a record gives its share back when it
// settles in full (the tracker's released hook). Lock: budget.mu guards the
// counts and the average record size.

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordOverhead is what a record costs beyond its key, value and headers
// (the kgo.Record, its tracking entry, its job), charged to the byte budget.
const recordOverhead = 256

// recordBytes is a record's share of the byte budget.
func recordBytes(rec *kgo.Record) int64 {
	n := int64(len(rec.Key) + len(rec.Value) + recordOverhead)
	for _, h := range rec.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}

type budget struct {
	maxRecords int64
	maxBytes   int64
	// room receives a token when something is given back (capacity 1:
	// the poll loop is the only waiter).
	room chan struct{}
	// changed is called, under mu, with the counts after each change
	// (the unsettled gauges).
	changed func(records, bytes int64)

	mu      sync.Mutex
	records int64
	bytes   int64
	avg     float64 // moving average of a record's share, for sizing polls (0: none seen yet)
}

func newBudget(maxRecords, maxBytes int64, changed func(records, bytes int64)) *budget {
	return &budget{maxRecords: maxRecords, maxBytes: maxBytes, room: make(chan struct{}, 1), changed: changed}
}

// pollable returns how many records the poll loop may ask for now, at most
// limit; 0 means wait for room. It leaves room by count, and by bytes at the
// average record size seen so far. When nothing is held it is at least 1, so
// a record larger than the whole byte budget still passes, alone. One poll
// can overshoot the byte budget by what the client has buffered (bounded by
// the fetch sizes, which Relay ties to the budget). Until a record has been
// seen it is 1: the first record tells the size to expect.
func (b *budget) pollable(limit int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.avg == 0 {
		return 1
	}
	if b.records == 0 {
		return max(1, min(limit, int((float64(b.maxBytes)/b.avg)+1), int(b.maxRecords)))
	}
	if b.records >= b.maxRecords || b.bytes >= b.maxBytes {
		return 0
	}
	byBytes := int(float64(b.maxBytes-b.bytes)/b.avg) + 1
	return min(limit, int(b.maxRecords-b.records), byBytes)
}

// take charges one record of the given share.
func (b *budget) take(bytes int64) {
	b.mu.Lock()
	b.records++
	b.bytes += bytes
	if b.avg == 0 {
		b.avg = float64(bytes)
	} else {
		b.avg += (float64(bytes) - b.avg) / 16
	}
	if b.changed != nil {
		b.changed(b.records, b.bytes)
	}
	b.mu.Unlock()
}

// release gives one record's share back.
func (b *budget) release(bytes int64) {
	b.mu.Lock()
	b.records--
	b.bytes -= bytes
	if b.changed != nil {
		b.changed(b.records, b.bytes)
	}
	b.mu.Unlock()
	select {
	case b.room <- struct{}{}:
	default:
	}
}

// held returns the records and bytes held.
func (b *budget) held() (records, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.records, b.bytes
}

// wait blocks until something is given back or ctx ends; it reports false
// when ctx ended.
func (b *budget) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-b.room:
		return true
	}
}
