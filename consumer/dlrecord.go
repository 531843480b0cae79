package consumer

// dlrecord.go: the dead-letter record format (what a dead letter keeps of its
// source, the headers capirelay adds, the reduced forms) and its reading back
// for dlq redrive (Unwrap). Pure functions; no state.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter header keys. A dead-letter record keeps the source record's key,
// value and headers byte for byte, in that order, and appends these headers.
// None of them ever holds a secret, and each value is at most
// MaxDeadLetterHeader bytes.
//
// A dead letter that would be larger than the dead-letter topic accepts is
// written reduced (HeaderReduced says how): first without the value, then
// also without the key and the source headers. HeaderValueSize and
// HeaderValueSHA256 (and HeaderKeySize, HeaderKeySHA256 when the key is
// dropped) identify what was left out; the source record is still at its
// topic, partition and offset while the topic retains it.
//
// Dead letters are written at least once: after a crash or a rebalance, a
// record may be dead-lettered again by the next owner. HeaderSourceTopic,
// HeaderSourcePartition, HeaderSourceOffset and HeaderAttempt together
// identify one dead letter, for de-duplication.
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
	HeaderReduced         = "capirelay.reduced"      // what a reduced dead letter leaves out, and why
	HeaderValueSize       = "capirelay.value.size"   // bytes of the source value left out
	HeaderValueSHA256     = "capirelay.value.sha256" // hex SHA-256 of the source value left out
	HeaderKeySize         = "capirelay.key.size"     // bytes of the source key left out
	HeaderKeySHA256       = "capirelay.key.sha256"   // hex SHA-256 of the source key left out
)

// MaxDeadLetterHeader caps the value of each header capirelay adds to a dead
// letter (longer messages are cut on a UTF-8 boundary and say how long they
// were); in a minimal dead letter the cap is minimalHeader.
const MaxDeadLetterHeader = 4 << 10

const minimalHeader = 256

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

// dlLevel is how much of the source record a dead letter keeps.
type dlLevel int

const (
	dlFull    dlLevel = iota // key, value and headers, byte for byte
	dlNoValue                // key and headers; the value left out
	dlMinimal                // capirelay's headers only
)

// deadLetterRecord builds the dead-letter record for src at level. The
// attempt count is one more than src's own attempt header (a re-driven record
// that fails again counts up). limit is the topic's max.message.bytes, named
// in HeaderReduced.
func deadLetterRecord(topic string, src *kgo.Record, dl DeadLetter, now time.Time, level dlLevel, limit int) *kgo.Record {
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
	capBytes := MaxDeadLetterHeader
	out := &kgo.Record{Topic: topic}
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+16)
	if level < dlMinimal {
		out.Key = src.Key
		hs = append(hs, src.Headers...)
	} else {
		capBytes = minimalHeader
	}
	if level == dlFull {
		out.Value = src.Value
	}
	add := func(k, v string) {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(truncate(v, capBytes))})
	}
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
	if level > dlFull {
		what := "value"
		if level == dlMinimal {
			what = "value, key and source headers"
			add(HeaderKeySize, strconv.Itoa(len(src.Key)))
			add(HeaderKeySHA256, hexSHA256(src.Key))
		}
		add(HeaderReduced, fmt.Sprintf("%s left out: the dead letter would exceed the dead-letter topic's max.message.bytes (%d)", what, limit))
		add(HeaderValueSize, strconv.Itoa(len(src.Value)))
		add(HeaderValueSHA256, hexSHA256(src.Value))
	}
	add(HeaderDeadLetteredAt, now.UTC().Format(time.RFC3339Nano))
	out.Headers = hs
	// The record timestamp is left to the producer (now), so that "dlq redrive
	// --from 24h" means "dead-lettered in the last day"; the source timestamp
	// is in HeaderSourceTimestamp.
	return out
}

// batchSize is an upper bound of the size of a record batch holding only
// rec, as Kafka's max.message.bytes counts it (uncompressed).
func batchSize(rec *kgo.Record) int {
	const batchHeader, recordFixed, perHeader = 61, 40, 10
	n := batchHeader + recordFixed + len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += perHeader + len(h.Key) + len(h.Value)
	}
	return n
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// truncate cuts s to at most n bytes on a UTF-8 boundary, saying how long it
// was.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	suffix := "…(truncated, " + strconv.Itoa(len(s)) + " bytes)"
	cut := max(n-len(suffix), 0)
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + suffix
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
//
// A reduced dead letter (HeaderReduced) cannot be turned back: its value was
// left out. Unwrap returns an error naming where the source record was, to
// be replayed from there while the topic retains it.
func Unwrap(dlq *kgo.Record) (*kgo.Record, error) {
	topic, ok := HeaderValue(dlq, HeaderSourceTopic)
	if !ok || topic == "" {
		return nil, fmt.Errorf("dead-letter record %s/%d@%d has no %s header", dlq.Topic, dlq.Partition, dlq.Offset, HeaderSourceTopic)
	}
	if why, ok := HeaderValue(dlq, HeaderReduced); ok {
		part, _ := HeaderValue(dlq, HeaderSourcePartition)
		off, _ := HeaderValue(dlq, HeaderSourceOffset)
		return nil, fmt.Errorf("dead-letter record %s/%d@%d is reduced (%s); replay the source record %s/%s@%s instead",
			dlq.Topic, dlq.Partition, dlq.Offset, why, topic, part, off)
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
