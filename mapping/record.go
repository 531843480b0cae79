package mapping

import (
	"strconv"
	"time"

	"github.com/capirelay/capirelay/capi"
)

// Record is one Kafka record as the mapper sees it. The mapping package
// imports no Kafka client; the consumer copies these fields from its records.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	// Timestamp is the record's Kafka timestamp (the `timestamp` variable of
	// expressions, and the event time of rules that say `timestamp: record`).
	Timestamp time.Time
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Output is one event produced by a rule.
type Output struct {
	// Rule is the name of the rule that produced the event.
	Rule string
	// Pixel is the rule's pixel override; "" means the relay's default pixel.
	Pixel string
	// Event is the mapped event, with identity fields already normalized and
	// hashed. It is not validated: the caller runs capi.Validator (and the
	// time-window check) before sending.
	Event capi.Event
}

// Error classes of MapError.
const (
	// ClassDecode: the record value could not be decoded (not JSON, ...).
	ClassDecode = "decode"
	// ClassMapping: a rule could not map the record (a `when` failed, a
	// required field is absent, a helper rejected its input, ...).
	ClassMapping = "mapping"
)

// MapError is the error Map returns for a record that cannot be mapped: a bad
// record, to be dead-lettered. It never contains identity values (emails,
// phone numbers...).
type MapError struct {
	Topic     string
	Partition int32
	Offset    int64
	// Rule is the rule being applied ("" for a decode error).
	Rule string
	// Field is the field being evaluated ("data.amount", "when"; "" for a
	// decode error).
	Field string
	// Class is ClassDecode or ClassMapping.
	Class string
	Err   error
}

// Error returns e.g.
//
//	shop.orders/0@42: rule "order-created" field "data.amount": money.minor: unknown currency "XXX"
func (e *MapError) Error() string {
	s := e.Topic + "/" + strconv.Itoa(int(e.Partition)) + "@" + strconv.FormatInt(e.Offset, 10) + ": "
	if e.Class == ClassDecode {
		s += "decode: "
	}
	if e.Rule != "" {
		s += "rule " + strconv.Quote(e.Rule) + " "
	}
	if e.Field != "" {
		s += "field " + strconv.Quote(e.Field) + " "
	}
	if e.Rule != "" || e.Field != "" {
		s = s[:len(s)-1] + ": "
	}
	return s + e.Err.Error()
}

// Unwrap returns Err.
func (e *MapError) Unwrap() error { return e.Err }

// Options configure Compile.
type Options struct {
	// Hasher normalizes and hashes identity fields; nil means the zero
	// capi.Hasher (default pre-hashed policies). A topic's
	// `identity.prehashed` settings override its policies for that topic.
	Hasher *capi.Hasher
	// Schemas, when not nil, resolves the schemas of each `format: avro`
	// topic (its local `schema:` files, or the versions of its registry
	// subject); Compile then type-checks every expression of the topic
	// against every version returned (see SchemaVersion), and reports an
	// error returned by Schemas at the topic's schema (or subject, or
	// format) key. `capirelay check` and `capirelay mapping test` set it; the
	// relay does not (records carry their schema id, and the decoder fetches
	// the schema).
	Schemas func(t AvroTopic) ([]SchemaVersion, error)
}
