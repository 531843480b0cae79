package consumer

// deps.go: what the relay is given (the mapper, the API sender, the
// validator) and what it reports (outcomes). No state lives here.

import (
	"context"
	"errors"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
)

// Mapped is one event mapped from a record.
type Mapped struct {
	// Rule names the mapping rule that produced the event.
	Rule string
	// Pixel overrides the relay's default pixel when not empty.
	Pixel string
	// Event is the event, not yet validated.
	Event capi.Event
}

// Mapper turns a record into zero or more events. Each mapping worker has
// its own Mapper (Deps.NewMapper), used by that worker only, so it may reuse
// dst and keep buffers.
//
// The error decides what becomes of the record:
//   - nil: its events are validated and sent (none: it is settled as
//     filtered);
//   - an error for which errors.Is(err, ErrTransient) holds (a Schema
//     Registry outage): the record is parked and mapped again later with
//     backoff, off the worker; its partition is paused meanwhile, other
//     partitions and topics keep flowing; it is never dead-lettered for it;
//   - ctx's error, once ctx has ended (shutdown, drain deadline): the record
//     is given up unsettled — never committed past, re-read after a restart;
//   - any other error: the record is bad and is dead-lettered, with the
//     class of a *RecordError (ClassMapping otherwise).
//
// Map must return soon after ctx ends: the drain deadline depends on it.
type Mapper interface {
	Map(ctx context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error)
}

// MapperFunc adapts a function to Mapper.
type MapperFunc func(ctx context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error)

// Map calls f.
func (f MapperFunc) Map(ctx context.Context, rec *kgo.Record, dst []Mapped) ([]Mapped, error) {
	return f(ctx, rec, dst)
}

// ErrTransient marks mapping errors that must be retried, never dead-lettered.
var ErrTransient = errors.New("transient")

// RecordError is a bad-record error with its dead-letter class and rule.
type RecordError struct {
	Class string // ClassDecode or ClassMapping
	Rule  string
	Err   error
}

// Error returns the underlying error's text.
func (e *RecordError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *RecordError) Unwrap() error { return e.Err }

// Sender is what the relay sends batches with; *capi.Client implements it.
// Send must retry transient failures itself until its context ends (the
// relay never dead-letters an event because of a transient failure).
type Sender interface {
	Send(ctx context.Context, b capi.Batch) (*capi.Result, error)
}

// Deps are the relay's collaborators.
type Deps struct {
	// Mapper maps records. With NewMapper nil it is the only mapper and
	// MapWorkers is 1.
	Mapper Mapper
	// NewMapper, when set, returns further Mappers for the mapping workers
	// (Config.MapWorkers), one each, so that a Mapper may keep per-goroutine
	// buffers.
	NewMapper func() Mapper
	API       Sender
	// Validator checks each mapped event, including the time window, before
	// it is batched. Required.
	Validator *capi.Validator
	// DefaultPixel is used for events whose rule names no pixel. Required
	// unless every rule names one.
	DefaultPixel string
	// ValidateOnly sends every batch with validate_only: true.
	ValidateOnly bool
	Logger       *slog.Logger
	Metrics      *Metrics
	// DropExpired makes events outside the time window count as expired and
	// settle without a dead-letter write (what replay does by default). When
	// false (the live relay) they are dead-lettered with ClassExpired.
	DropExpired bool
	// Unwrap, when set, derives the record to map and to dead-letter from
	// the polled one (dlq redrive: the original record inside a dead-letter
	// record). Offsets are still tracked and committed on the polled record.
	// An error dead-letters the polled record with ClassDecode.
	Unwrap func(*kgo.Record) (*kgo.Record, error)
	// DryRun makes dead letters reported (OnOutcome, metrics) but not
	// written; the event settles at once. For --validate-only replays and
	// redrives, which must leave no trace.
	DryRun bool
	// OnOutcome, when set, is called once per event outcome and once per
	// record that produced no event, from any goroutine; it must be safe for
	// concurrent use and fast. Replay and redrive build their reports on it.
	OnOutcome func(rec *kgo.Record, o Outcome)
}

// Outcome is what became of one event (or of a record without events).
type Outcome struct {
	// Kind is "accepted", "dead_lettered", "expired" (dropped, see
	// DropExpired) or "filtered" (no rule produced an event).
	Kind string
	// Class is the dead-letter class for Kind "dead_lettered".
	Class string
	// Rule is the mapping rule, when known.
	Rule string
}
