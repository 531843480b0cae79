package consumer

// poll.go: the fetch loop. It owns the group consumer's polling (one
// goroutine, Run's): it waits for room in the memory budget, polls, tracks
// each record in its partition's tracker in offset order, charges the budget
// and hands the record to the mapping stage. It owns which partitions are
// paused and why (Relay.pauses, under pauseMu), and the bounds of a bounded
// run (End). It reads and writes Relay.trackers, hwm and done under Relay.mu.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (r *Relay) pollLoop(ctx context.Context) error {
	for {
		if r.boundedDone() {
			r.log.Info("every partition consumed up to its end offset")
			return nil
		}
		// Back-pressure: wait for room before polling.
		n := r.budget.pollable(r.cfg.PollRecords)
		if n == 0 {
			if !r.budget.wait(ctx) {
				return nil
			}
			continue
		}
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
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			r.mu.Lock()
			r.hwm[topicPartition{fp.Topic, fp.Partition}] = fp.HighWatermark
			r.mu.Unlock()
		})
		var last *partitionTracker
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
				last.skip(rec.Offset, rec.LeaderEpoch)
				return
			}
			last.consumedMetric.Inc()
			last.consumed.Add(1)
			bytes := recordBytes(rec)
			r.budget.take(bytes)
			// After the budget: a record is never counted consumed before
			// it is unsettled, so Progress never shows it settled too early.
			r.consumed.Add(1)
			// Tracked in offset order here, mapped by any worker: the
			// pending unit is the mapping.
			tok, window := last.track(rec.Offset, rec.LeaderEpoch, rec.Timestamp.UnixMilli(), bytes)
			r.stage.enqueue(job{polled: rec, tok: tok})
			if window >= r.cfg.MaxUnsettledRecords && !last.windowPaused.Load() {
				r.pauseWindow(last, rec)
			}
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
			r.pause(tp, pausedEnd, true)
			return true
		}
	}
	return false
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

// trackerFor returns the tracker of a partition, creating it on the first
// record read since the partition was assigned.
func (r *Relay) trackerFor(topic string, partition int32) *partitionTracker {
	tp := topicPartition{topic, partition}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.trackers[tp]
	if t == nil {
		t = newTracker(topic, partition, r.budget.release, r.settleViolation)
		t.advanced = r.windowShrunk
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

// pauseReason is why a partition's fetching is paused; it is fetched again
// once no reason is left.
type pauseReason uint8

const (
	pausedParked pauseReason = 1 << iota // records of it are parked (mapstage.go)
	pausedWindow                         // it tracks MaxUnsettledRecords records from its first unsettled one
	pausedEnd                            // a bounded run consumed it to its end
)

// pause sets (on) or clears reason for tp, pausing or resuming its fetching
// when that changes whether any reason is set.
func (r *Relay) pause(tp topicPartition, reason pauseReason, on bool) {
	r.pauseMu.Lock()
	defer r.pauseMu.Unlock()
	r.pauseLocked(tp, reason, on)
}

func (r *Relay) pauseLocked(tp topicPartition, reason pauseReason, on bool) {
	before := r.pauses[tp]
	after := before &^ reason
	if on {
		after = before | reason
	}
	if after == 0 {
		delete(r.pauses, tp)
	} else {
		r.pauses[tp] = after
	}
	switch {
	case before == 0 && after != 0:
		r.cl.PauseFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
	case before != 0 && after == 0:
		r.cl.ResumeFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
	}
}

// unpause clears every reason of the partitions in only (given up: a
// reassigned partition must be fetched).
func (r *Relay) unpause(only map[topicPartition]bool) {
	r.pauseMu.Lock()
	defer r.pauseMu.Unlock()
	for tp := range only {
		r.pauseLocked(tp, r.pauses[tp], false)
	}
}

// pauseWindow pauses a partition that tracks MaxUnsettledRecords records
// from its first unsettled one (a record held by a failure that can heal,
// with everything read after it): the tracker would grow without bound.
// The partition is fetched again once half of them are settled
// (windowShrunk); other partitions keep flowing.
func (r *Relay) pauseWindow(t *partitionTracker, rec *kgo.Record) {
	r.pauseMu.Lock()
	defer r.pauseMu.Unlock()
	// Set first, then look: a settle that shrinks the window after the
	// look sees the flag and resumes (windowShrunk).
	t.windowPaused.Store(true)
	w := t.window()
	if w < r.cfg.MaxUnsettledRecords {
		t.windowPaused.Store(false)
		return
	}
	off, _, _, _ := t.state()
	r.log.Warn("partition paused: too many records read after its first unsettled one (held by a failure that can heal; see the other warnings)",
		"topic", t.topic, "partition", t.partition, "tracked_records", w, "committable_offset", off, "last_read_offset", rec.Offset)
	r.pauseLocked(topicPartition{t.topic, t.partition}, pausedWindow, true)
}

// windowShrunk is the trackers' advanced hook: it resumes a partition paused
// by pauseWindow once it tracks half of MaxUnsettledRecords or fewer.
func (r *Relay) windowShrunk(t *partitionTracker, window int) {
	if window > r.cfg.MaxUnsettledRecords/2 {
		return
	}
	r.pauseMu.Lock()
	defer r.pauseMu.Unlock()
	if !t.windowPaused.Load() || t.window() > r.cfg.MaxUnsettledRecords/2 {
		return
	}
	t.windowPaused.Store(false)
	if !t.isRevoked() {
		r.pauseLocked(topicPartition{t.topic, t.partition}, pausedWindow, false)
	}
	r.log.Info("partition resumed", "topic", t.topic, "partition", t.partition, "tracked_records", window)
}
