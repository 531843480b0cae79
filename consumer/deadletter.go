package consumer

// deadletter.go: the dead-letter writer. It owns the dead-letter producer and
// every write in flight: a write holds the unit of work it dead-letters (the
// mapping of a bad record, or one event) and finishes it when the broker
// acknowledges the record. A refusal that can never succeed as it is — the
// record is too large for the topic — is answered with a reduced record
// (dlrecord.go), never retried as it is; anything that can heal (broker down,
// ACLs, timeouts, a topic misconfigured for any record) is retried with
// backoff, visibly, and holds the record's partition: nothing is committed
// past it. It holds no lock: the topic's size limit is atomic, and each
// write's state is its own.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultDeadLetterMax is what a dead-letter topic accepts when its
// max.message.bytes cannot be read: Kafka's default (and franz-go's default
// producer batch cap).
const defaultDeadLetterMax = 1_000_012

// minDeadLetterBytes is the smallest max.message.bytes the writer works with:
// a minimal dead letter fits in it.
const minDeadLetterBytes = 8 << 10

type deadLetters struct {
	cl    *kgo.Client // the dead-letter producer
	topic string
	// limit is the largest record the topic takes (max.message.bytes), as
	// known: configured, read from the topic at start, or the default.
	limit atomic.Int32
	fixed bool // Config.DeadLetterMaxBytes was set: not read from the topic
}

// init creates the dead-letter producer (idempotent, acks=all, each attempt
// bounded by RecordDeliveryTimeout so that a write cannot outlive an outage
// silently; a duplicate dead letter is possible, a lost one is not).
func (d *deadLetters) init(r *Relay) error {
	d.topic = r.cfg.DeadLetterTopic
	d.fixed = r.cfg.DeadLetterMaxBytes > 0
	d.limit.Store(defaultDeadLetterMax)
	if d.fixed {
		d.limit.Store(int32(r.cfg.DeadLetterMaxBytes))
	}
	opts := append([]kgo.Opt{}, r.cfg.Connection...)
	opts = append(opts,
		kgo.DefaultProduceTopic(d.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(30*time.Second),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ProducerLinger(5*time.Millisecond),
		// Read when a partition is first produced to, after sizeFromTopic.
		kgo.ProducerBatchMaxBytesFn(func(string) int32 { return d.limit.Load() }),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer: dead-letter producer: %w", err)
	}
	d.cl = cl
	return nil
}

func (d *deadLetters) close() { d.cl.Close() }

// sizeFromTopic reads the dead-letter topic's max.message.bytes (unless
// configured). It needs the DESCRIBE_CONFIGS ACL on the topic; without it, or
// when the topic does not exist yet, Kafka's default is assumed, and a broker
// refusing a record as too large still gets a reduced one.
func (d *deadLetters) sizeFromTopic(ctx context.Context, r *Relay) {
	if d.fixed {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rcs, err := kadm.NewClient(d.cl).DescribeTopicConfigs(ctx, d.topic)
	var v string
	if err == nil {
		var rc kadm.ResourceConfig
		if rc, err = rcs.On(d.topic, nil); err == nil && rc.Err != nil {
			err = rc.Err
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" {
				v = c.MaybeValue()
			}
		}
	}
	n, perr := strconv.Atoi(v)
	if err != nil || perr != nil || n <= 0 {
		if err == nil {
			err = fmt.Errorf("max.message.bytes is %q", v)
		}
		r.log.Info("could not read the dead-letter topic's max.message.bytes; assuming Kafka's default (larger dead letters are written without their value)",
			"topic", d.topic, "assumed_bytes", defaultDeadLetterMax, "err", err)
		return
	}
	n = min(max(n, minDeadLetterBytes), 1<<30)
	d.limit.Store(int32(n))
	r.log.Info("dead-letter topic size limit", "topic", d.topic, "max_message_bytes", n)
}

// level returns the first level at which the dead letter of src fits the
// topic.
func (d *deadLetters) level(src *kgo.Record, dl DeadLetter, now time.Time) dlLevel {
	limit := int(d.limit.Load())
	for l := dlFull; l < dlMinimal; l++ {
		if batchSize(deadLetterRecord(d.topic, src, dl, now, l, limit)) <= limit {
			return l
		}
	}
	return dlMinimal
}

// dlWrite is one dead-letter write: the unit it settles, and how far it got.
type dlWrite struct {
	ev    eventRef
	dl    DeadLetter
	at    time.Time
	level dlLevel
	wait  time.Duration // before the next attempt after a failure
}

// deadLetter writes ev's record to the dead-letter topic and finishes ev's
// unit once the broker acknowledges the write. A dead letter too large for the
// topic is written reduced. A write that fails for any other reason is
// retried with backoff until it succeeds or the relay abandons sending; until
// then the record is unsettled and nothing is committed past it.
func (r *Relay) deadLetter(ev eventRef, dl DeadLetter) {
	if r.deps.DryRun {
		r.m.DeadLettered.WithLabelValues(ev.rec.Topic, dl.Class).Inc()
		r.deadLettered.Add(1)
		r.outcome(ev.rec, Outcome{Kind: "dead_lettered", Class: dl.Class, Rule: dl.Rule})
		ev.tok.done()
		return
	}
	r.inflight.Add(1)
	w := &dlWrite{ev: ev, dl: dl, at: time.Now(), wait: r.cfg.DeadLetterRetry}
	w.level = r.dl.level(ev.rec, dl, w.at)
	r.log.Warn("dead-lettering record", "topic", ev.rec.Topic, "partition", ev.rec.Partition, "offset", ev.rec.Offset,
		"class", dl.Class, "rule", dl.Rule, "reason", truncate(dl.Message, MaxDeadLetterHeader), "reduced", w.level > dlFull)
	r.produceDeadLetter(w)
}

func (r *Relay) produceDeadLetter(w *dlWrite) {
	rec := deadLetterRecord(r.dl.topic, w.ev.rec, w.dl, w.at, w.level, int(r.dl.limit.Load()))
	r.dl.cl.Produce(r.sendCtx, rec, func(_ *kgo.Record, err error) { r.deadLetterDone(w, err) })
}

// deadLetterDone handles the outcome of one attempt (in the producer's
// callback: it must not block).
func (r *Relay) deadLetterDone(w *dlWrite, err error) {
	ev := w.ev
	switch {
	case err == nil:
		if w.level > dlFull {
			r.m.DeadLettersReduced.WithLabelValues(ev.rec.Topic).Inc()
		}
		r.m.DeadLettered.WithLabelValues(ev.rec.Topic, w.dl.Class).Inc()
		r.deadLettered.Add(1)
		r.outcome(ev.rec, Outcome{Kind: "dead_lettered", Class: w.dl.Class, Rule: w.dl.Rule})
		ev.tok.done()
		r.inflight.Done()
		return
	case r.sendCtx.Err() != nil:
		r.inflight.Done() // abandoned: unsettled, re-read after the restart
		return
	case tooLarge(err) && w.level < dlMinimal:
		// Permanent as it is: reduce it, at once.
		w.level++
		r.log.Warn("dead-letter record refused as too large; writing it reduced", "topic", ev.rec.Topic,
			"partition", ev.rec.Partition, "offset", ev.rec.Offset, "err", err)
		go r.produceDeadLetter(w)
		return
	}
	r.m.DeadLetterFailures.Inc()
	msg := "dead-letter write failed; retrying (nothing is committed past this record)"
	if tooLarge(err) || errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.CorruptMessage) {
		msg = "the dead-letter topic refuses even a minimal record; check its configuration (max.message.bytes; a compacted topic needs keys); retrying (nothing is committed past this record)"
	}
	r.log.Error(msg, "topic", ev.rec.Topic, "partition", ev.rec.Partition, "offset", ev.rec.Offset,
		"dead_letter_topic", r.dl.topic, "err", err, "retry_in", w.wait)
	wait := w.wait
	w.wait = min(w.wait*2, 30*time.Second)
	go func() {
		select {
		case <-r.sendCtx.Done():
			r.inflight.Done()
		case <-time.After(wait):
			r.produceDeadLetter(w)
		}
	}()
}

// tooLarge reports whether a produce error says the record (or its batch) is
// larger than the topic or the client accepts.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}
