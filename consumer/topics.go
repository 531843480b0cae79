package consumer

// topics.go: changing the consumed topics of a running group relay (rule
// reload). It owns Config.Topics after New, under topicsMu; giving up a
// removed topic's partitions goes through the committer (commitMu).

import (
	"context"
	"errors"
	"fmt"
	"time"
)

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
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r.commitLocked(cctx, only)
		cancel()
		r.forget(only)
		r.commitMu.Unlock()
		r.cl.PurgeTopicsFromConsuming(removed...)
		r.cl.ResumeFetchTopics(removed...)
		r.log.Info("stopped consuming topics", "topics", removed, "all_settled", settled)
	}
	r.cfg.Topics = append([]string(nil), topics...)
	return added, removed, nil
}
