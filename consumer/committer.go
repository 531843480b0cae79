package consumer

// committer.go: commits. It owns the group's offsets: every CommitInterval,
// on revocation and at shutdown it commits, per owned partition, the offset
// the partition's tracker computes (settle.go) when it moved. It owns
// revocation and loss: a partition given up is revoked in its tracker (never
// committed again), its parked records are abandoned and it is forgotten.
// Locks: commitMu serializes commits with revocation; Relay.mu guards the
// trackers map and hwm.

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/capirelay/capirelay/capi"
)

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
		if _, _, n, o := t.state(); n > 0 && o > 0 && (oldest == 0 || o < oldest) {
			oldest = o
		}
		if only != nil && !only[tp] {
			continue
		}
		off, ep, ok := t.toCommit()
		if !ok {
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
		t.committedTo(eo.Offset)
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
	only := partitionSet(revoked)
	settled := r.settleRevoked(ctx, only)
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r.commitLocked(cctx, only)
	cancel()
	r.forget(only)
	r.log.Info("partitions revoked", "partitions", revoked, "all_settled", settled)
}

// onLost forgets lost partitions without committing: another member may own
// them already.
func (r *Relay) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	only := partitionSet(lost)
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.forget(only)
	r.log.Warn("partitions lost", "partitions", lost)
}

func partitionSet(m map[string][]int32) map[topicPartition]bool {
	only := make(map[topicPartition]bool)
	for topic, ps := range m {
		for _, p := range ps {
			only[topicPartition{topic, p}] = true
		}
	}
	return only
}

// forget gives the partitions in only up: their trackers are revoked (never
// committed again; their units still settle and give back their budget),
// their parked records abandoned, their metrics removed. Called with
// commitMu held.
func (r *Relay) forget(only map[topicPartition]bool) {
	r.mu.Lock()
	for tp := range only {
		if t := r.trackers[tp]; t != nil {
			t.revoke()
			delete(r.trackers, tp)
		}
		delete(r.hwm, tp)
		r.m.CommittedOffset.DeleteLabelValues(tp.topic, itoa(tp.partition))
		r.m.Lag.DeleteLabelValues(tp.topic, itoa(tp.partition))
	}
	r.mu.Unlock()
	r.stage.dropPartitions(only)
	r.unpause(only)
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
