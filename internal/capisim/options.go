package capisim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Defaults applied by New and SetFaults to zero-valued options.
const (
	// DefaultMaxBodyBytes is the request body limit when
	// Options.MaxBodyBytes is 0. Larger bodies get 413.
	DefaultMaxBodyBytes = 8 << 20
	// DefaultStatus5xx is the status of an injected server failure when
	// Faults.Status5xx is 0.
	DefaultStatus5xx = 503
	// DefaultRetryAfter is the Retry-After of an injected 429 when
	// Faults.RetryAfter is 0.
	DefaultRetryAfter = time.Second
)

// Limits of the contract (docs/conversions-api.md).
const (
	// MaxEventsPerRequest is the largest accepted "events" array.
	MaxEventsPerRequest = 1000
	// MaxEventAge is how old timestamp_ms may be, measured against
	// Options.Now when the request arrives; exactly MaxEventAge old is
	// accepted, one millisecond older is not.
	MaxEventAge = 7 * 24 * time.Hour
	// MaxEventFuture is how far ahead of Options.Now timestamp_ms may be;
	// exactly MaxEventFuture ahead is accepted, one millisecond more is not.
	MaxEventFuture = 10 * time.Minute
)

// Options configures a Server. The zero value of every field other than
// APIKey and Pixels is usable; New rejects out-of-range values.
type Options struct {
	// APIKey is the Conversions API key the server expects in
	// "Authorization: Bearer <key>". Required. It is never logged or
	// echoed in a response.
	APIKey string

	// Pixels are the pixel ids accepted in the "pid" query parameter.
	// At least one is required; a request for any other pixel (or none)
	// gets 403.
	Pixels []string

	// Now is the clock used for the event time window and for
	// AcceptedEvent.ReceivedAt. Nil means time.Now.
	Now func() time.Time

	// NameFailingEvent makes a 400 response name the failing event: the
	// error's message and "param" start with "events[<index>]" and the
	// body carries "event_index". When false (the default) the index is
	// never revealed: paths start with "events[?]" and malformed-JSON
	// errors omit the byte offset. The real API's behaviour is
	// undocumented; clients must work either way.
	NameFailingEvent bool

	// IgnoreUnknownFields makes the server ignore fields the contract does
	// not define (at the top level, in events, user, data of a non-custom
	// shape and contents items) instead of rejecting the batch. The
	// default (false) rejects them: the strictest reading of an
	// undocumented behaviour. Legacy field names, "price" in a contents
	// item, "custom_event_name" inside data and fields of another data
	// shape are rejected either way. The cmd flag is
	// --reject-unknown-fields (default true), the negation of this field.
	IgnoreUnknownFields bool

	// LenientUserLists makes invalid values inside the user list fields
	// (emails_sha256 ... countries) be skipped instead of failing the
	// batch, following the documentation's sentence "the API uses the
	// first three valid, unique values of each list and ignores the
	// rest". The default (false) rejects them, so a client that sends a
	// raw email in emails_sha256 is caught. Values of the wrong JSON type
	// fail the batch either way.
	LenientUserLists bool
	// MaxContents, when positive, rejects an event whose data.contents holds
	// more items. The real API's limit is undocumented; this stands in for
	// any undocumented rule, so tests and the demo can produce an event that
	// passes the relay's local validation but that the API refuses. 0 means
	// no limit.
	MaxContents int

	// NullSink accepts every well-formed request (authorized, right
	// pixel and content type, syntactically valid JSON object with an
	// "events" array) without checking any field and without
	// deduplicating, for throughput benchmarks. Events are counted in
	// Stats (as accepted, or as validate-only events when validate_only
	// is true) but not stored. Faults still apply.
	NullSink bool

	// MaxBodyBytes is the largest request body accepted; larger bodies
	// get 413. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// MaxStoredEvents bounds how many accepted events are kept for
	// Events and GET /_sim/events; the oldest are dropped first. 0 keeps
	// all. Dedup state is never dropped (the real API's dedup window is
	// undocumented; the simulator's is unbounded until Reset).
	MaxStoredEvents int

	// FailRate is the probability (0..1) that a request to /v1/events is
	// answered with Status5xx before any other check. 1 fails every
	// request.
	FailRate float64

	// Status5xx is the status of an injected failure, 500..599. 0 means
	// DefaultStatus5xx (503).
	Status5xx int

	// ThrottleRate is the probability (0..1) of answering 429 with a
	// Retry-After header.
	ThrottleRate float64

	// RetryAfter is the Retry-After of an injected 429, sent as whole
	// seconds rounded up. 0 means DefaultRetryAfter (1s).
	RetryAfter time.Duration

	// Latency is added to every request to /v1/events before it is
	// handled (the wait ends early if the client gives up).
	Latency time.Duration

	// HangRate is the probability (0..1) that a request never gets an
	// answer: it hangs until the client gives up (its context is done) or
	// Close is called.
	HangRate float64

	// AuthFailRate is the probability (0..1) of answering 401 even when
	// the key is right.
	AuthFailRate float64

	// Seed seeds the fault random generator, so the sequence of injected
	// faults is repeatable for a given sequence of requests. Reset reseeds
	// it.
	Seed int64
}

// Faults are the fault-injection settings, changeable at runtime with
// Server.SetFaults (or PUT /_sim/faults). Each request to /v1/events first
// waits Latency, then draws, in this order, hang (HangRate), auth failure
// (AuthFailRate), throttling (ThrottleRate) and server failure (FailRate);
// the first that fires decides the response. A rate of 0 never fires and
// consumes no random number; a rate of 1 always fires.
type Faults struct {
	// FailRate is the probability (0..1) of answering Status5xx.
	FailRate float64
	// Status5xx is the injected failure status, 500..599; 0 means 503.
	Status5xx int
	// ThrottleRate is the probability (0..1) of answering 429.
	ThrottleRate float64
	// RetryAfter is sent with an injected 429 as whole seconds, rounded
	// up; 0 means 1s.
	RetryAfter time.Duration
	// Latency is added before every request to /v1/events is handled.
	Latency time.Duration
	// HangRate is the probability (0..1) of never answering.
	HangRate float64
	// AuthFailRate is the probability (0..1) of answering 401 although
	// the key is right.
	AuthFailRate float64
}

// faults extracts the fault settings of o.
func (o Options) faults() Faults {
	return Faults{
		FailRate:     o.FailRate,
		Status5xx:    o.Status5xx,
		ThrottleRate: o.ThrottleRate,
		RetryAfter:   o.RetryAfter,
		Latency:      o.Latency,
		HangRate:     o.HangRate,
		AuthFailRate: o.AuthFailRate,
	}
}

// normalize checks f and fills its defaults.
func (f Faults) normalize() (Faults, error) {
	var errs []error
	rate := func(name string, v float64) {
		if !(v >= 0 && v <= 1) { // also catches NaN
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1, got %v", name, v))
		}
	}
	rate("FailRate", f.FailRate)
	rate("ThrottleRate", f.ThrottleRate)
	rate("HangRate", f.HangRate)
	rate("AuthFailRate", f.AuthFailRate)
	if f.Status5xx == 0 {
		f.Status5xx = DefaultStatus5xx
	}
	if f.Status5xx < 500 || f.Status5xx > 599 {
		errs = append(errs, fmt.Errorf("Status5xx must be 500..599, got %d", f.Status5xx))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("RetryAfter must not be negative, got %v", f.RetryAfter))
	}
	if f.RetryAfter == 0 {
		f.RetryAfter = DefaultRetryAfter
	}
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("Latency must not be negative, got %v", f.Latency))
	}
	return f, errors.Join(errs...)
}

// retryAfterSeconds is RetryAfter as whole seconds, rounded up.
func (f Faults) retryAfterSeconds() int64 {
	return int64((f.RetryAfter + time.Second - 1) / time.Second)
}

// faultsJSON is the wire form of Faults on /_sim/faults: durations are Go
// duration strings ("1.5s", "200ms").
type faultsJSON struct {
	FailRate     float64 `json:"fail_rate"`
	Status5xx    int     `json:"status_5xx"`
	ThrottleRate float64 `json:"throttle_rate"`
	RetryAfter   string  `json:"retry_after"`
	Latency      string  `json:"latency"`
	HangRate     float64 `json:"hang_rate"`
	AuthFailRate float64 `json:"auth_fail_rate"`
}

// MarshalJSON encodes f with snake_case names and durations as Go duration
// strings, the form GET /_sim/faults returns.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		FailRate: f.FailRate, Status5xx: f.Status5xx, ThrottleRate: f.ThrottleRate,
		RetryAfter: f.RetryAfter.String(), Latency: f.Latency.String(),
		HangRate: f.HangRate, AuthFailRate: f.AuthFailRate,
	})
}

// UnmarshalJSON decodes the form produced by MarshalJSON. Missing fields are
// zero (so defaults apply); unknown fields are an error.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var out Faults
	out.FailRate, out.Status5xx, out.ThrottleRate = j.FailRate, j.Status5xx, j.ThrottleRate
	out.HangRate, out.AuthFailRate = j.HangRate, j.AuthFailRate
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"retry_after", j.RetryAfter, &out.RetryAfter}, {"latency", j.Latency, &out.Latency}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	*f = out
	return nil
}
