package consumer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter header keys. A dead-letter record keeps the source record's key,
// value and headers byte for byte, in that order, and appends these headers.
// None of them ever holds a secret.
const (
	HeaderSourceTopic     = "capirelay.source.topic"
	HeaderSourcePartition = "capirelay.source.partition"
	HeaderSourceOffset    = "capirelay.source.offset"
	HeaderSourceTimestamp = "capirelay.source.timestamp" // Unix ms of the source record
	HeaderClass           = "capirelay.error.class"      // see the Class* constants
	HeaderMessage         = "capirelay.error.message"
	HeaderRule            = "capirelay.rule" // the mapping rule, when known
	HeaderAttempt         = "capirelay.attempt"
	HeaderAPIStatus       = "capirelay.api.status" // when the API rejected the event
	HeaderAPIBody         = "capirelay.api.body"   // truncated, secret-free
	HeaderDeadLetteredAt  = "capirelay.dead_lettered_at"
)

// Dead-letter classes (the HeaderClass values).
const (
	ClassDecode     = "decode"     // the value could not be decoded
	ClassMapping    = "mapping"    // a rule failed on this record
	ClassValidation = "validation" // a mapped event breaks an API rule
	ClassExpired    = "expired"    // the event is outside the API's time window
	ClassRejected   = "rejected"   // the API refused the event (400/422/413)
)

// DeadLetter describes why a record is dead-lettered.
type DeadLetter struct {
	Class     string
	Message   string
	Rule      string
	APIStatus int
	APIBody   string
}

// deadLetterRecord builds the dead-letter record for src. The attempt count is
// one more than src's own attempt header (a re-driven record that fails again
// counts up).
func deadLetterRecord(topic string, src *kgo.Record, dl DeadLetter, now time.Time) *kgo.Record {
	attempt := 1
	for _, h := range src.Headers {
		if h.Key == HeaderAttempt {
			if n, err := strconv.Atoi(string(h.Value)); err == nil {
				attempt = n + 1
			}
		}
	}
	if prev, ok := Redriven(src); ok {
		attempt = prev.Attempt + 1
	}
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+11)
	hs = append(hs, src.Headers...)
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderSourceTopic, src.Topic)
	add(HeaderSourcePartition, strconv.Itoa(int(src.Partition)))
	add(HeaderSourceOffset, strconv.FormatInt(src.Offset, 10))
	add(HeaderSourceTimestamp, strconv.FormatInt(src.Timestamp.UnixMilli(), 10))
	add(HeaderClass, dl.Class)
	add(HeaderMessage, dl.Message)
	if dl.Rule != "" {
		add(HeaderRule, dl.Rule)
	}
	add(HeaderAttempt, strconv.Itoa(attempt))
	if dl.APIStatus != 0 {
		add(HeaderAPIStatus, strconv.Itoa(dl.APIStatus))
		add(HeaderAPIBody, dl.APIBody)
	}
	add(HeaderDeadLetteredAt, now.UTC().Format(time.RFC3339Nano))
	// The record timestamp is left to the producer (now), so that "dlq redrive
	// --from 24h" means "dead-lettered in the last day"; the source timestamp
	// is in HeaderSourceTimestamp.
	return &kgo.Record{Topic: topic, Key: src.Key, Value: src.Value, Headers: hs}
}

// HeaderValue returns the last value of header key in r, and whether it exists.
func HeaderValue(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// RedriveInfo is what a re-driven record carries from its dead-letter record.
type RedriveInfo struct {
	Attempt int    // the dead-letter record's attempt count
	Class   string // its error class
	Rule    string // its rule, if any
}

type redriveKey struct{}

// WithRedrive attaches info to rec (in rec.Context, never serialized), so a
// record that fails again is dead-lettered with the attempt count raised.
func WithRedrive(rec *kgo.Record, info RedriveInfo) {
	ctx := rec.Context
	if ctx == nil {
		ctx = context.Background()
	}
	rec.Context = context.WithValue(ctx, redriveKey{}, info)
}

// Redriven returns the RedriveInfo attached to rec by WithRedrive.
func Redriven(rec *kgo.Record) (RedriveInfo, bool) {
	if rec.Context == nil {
		return RedriveInfo{}, false
	}
	info, ok := rec.Context.Value(redriveKey{}).(RedriveInfo)
	return info, ok
}

// Unwrap turns a dead-letter record back into the record it was made from:
// source topic, partition, offset and timestamp from its headers, the key and
// value as they are, and the headers without the ones capirelay added. The
// attempt count and class travel in the record's context (see Redriven).
func Unwrap(dlq *kgo.Record) (*kgo.Record, error) {
	topic, ok := HeaderValue(dlq, HeaderSourceTopic)
	if !ok || topic == "" {
		return nil, fmt.Errorf("dead-letter record %s/%d@%d has no %s header", dlq.Topic, dlq.Partition, dlq.Offset, HeaderSourceTopic)
	}
	rec := &kgo.Record{Topic: topic, Key: dlq.Key, Value: dlq.Value}
	if v, ok := HeaderValue(dlq, HeaderSourcePartition); ok {
		p, _ := strconv.Atoi(v)
		rec.Partition = int32(p)
	}
	if v, ok := HeaderValue(dlq, HeaderSourceOffset); ok {
		rec.Offset, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := HeaderValue(dlq, HeaderSourceTimestamp); ok {
		ms, _ := strconv.ParseInt(v, 10, 64)
		rec.Timestamp = time.UnixMilli(ms)
	}
	info := RedriveInfo{Attempt: 1}
	for _, h := range dlq.Headers {
		if strings.HasPrefix(h.Key, "capirelay.") {
			switch h.Key {
			case HeaderAttempt:
				if n, err := strconv.Atoi(string(h.Value)); err == nil {
					info.Attempt = n
				}
			case HeaderClass:
				info.Class = string(h.Value)
			case HeaderRule:
				info.Rule = string(h.Value)
			}
			continue
		}
		rec.Headers = append(rec.Headers, h)
	}
	WithRedrive(rec, info)
	return rec, nil
}
