package consumer

// sender.go: delivery of batches to the API. A sender owns one batch from
// sendq until every event of it is settled: accepted (its unit done),
// refused by the API or expired (its unit handed to the dead-letter writer),
// or abandoned at the end of Run (left unsettled). It holds no lock; the
// configuration-fault count is atomic.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/capi"
)

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
				refs[i].tok.done()
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
				ev.tok.done()
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
