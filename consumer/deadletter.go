package consumer

import (
	"strconv"
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
