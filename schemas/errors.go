package schemas

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/twmb/franz-go/pkg/sr"
)

// ErrTransient marks a failure that says nothing about the record: the Schema
// Registry is unreachable, timed out, answered 5xx, 408 or 429, or the
// caller's context ended. Callers test it with errors.Is, retry with backoff
// and apply back-pressure; they never dead-letter the record and never commit
// past it. A transient failure is never cached: the next Decode of the same
// schema id asks the registry again.
var ErrTransient = errors.New("schemas: transient failure (schema registry unavailable)")

// DecodeError is a bad record: it can never be decoded, so the caller
// dead-letters it with Error() as the reason. Reasons:
//
//   - "wrong magic byte" / "truncated header": not the Confluent wire format;
//   - "unknown schema id": the registry answered 404 (error code 40403) for the
//     id in the header;
//   - "unusable schema": the registry holds the id, but its schema is not Avro
//     or cannot be parsed (or a reference of it cannot be resolved);
//   - "corrupt payload": the payload ends early, has a malformed varint, a
//     negative length, or an out-of-range union or enum index;
//   - "value too large": a string or bytes value is longer than the
//     MaxByteSliceSize limit;
//   - "trailing bytes": the payload is longer than the schema accounts for.
//
// SchemaID is the id from the header (0 when the header itself is bad). The
// error text names the reason and the schema id, never record content or a
// credential.
type DecodeError struct {
	SchemaID int
	Reason   string
	Err      error
}

// Reasons of DecodeError.
const (
	ReasonMagic     = "wrong magic byte"
	ReasonHeader    = "truncated header"
	ReasonUnknownID = "unknown schema id"
	ReasonBadSchema = "unusable schema"
	ReasonCorrupt   = "corrupt payload"
	ReasonTrailing  = "trailing bytes"
	ReasonTooLarge  = "value too large"
)

// Error returns e.g. "avro decode (schema id 7): corrupt payload: unexpected
// end of payload".
func (e *DecodeError) Error() string {
	s := "avro decode"
	if e.SchemaID != 0 {
		s += " (schema id " + strconv.Itoa(e.SchemaID) + ")"
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// transientError wraps a registry failure so that errors.Is(err, ErrTransient)
// holds while the message keeps the (scrubbed) cause.
type transientError struct {
	schemaID int
	// subject, when not empty, is what was looked up instead of an id
	// ("orders-value version 2").
	subject string
	msg     string
	cause   error
}

func (e *transientError) Error() string {
	what := "schema id " + strconv.Itoa(e.schemaID)
	if e.subject != "" {
		what = "subject " + e.subject
	}
	return "schemas: " + what + ": schema registry unavailable (transient): " + e.msg
}

func (e *transientError) Is(target error) bool { return target == ErrTransient }

// Unwrap returns the cause (context.Canceled, a *sr.ResponseError, ...), so
// callers can still tell a shutdown from an outage.
func (e *transientError) Unwrap() error { return e.cause }

// classify turns an error of the registry client into ErrTransient or a
// *DecodeError. scrub removes credentials from text that reaches the error.
//
//	404 with a not-found code (40401-40409)   → DecodeError "unknown schema id"
//	a bare 404 (no registry error code)       → ErrTransient
//	5xx, 408, 429, 401, 403, other 4xx        → ErrTransient
//	network errors, timeouts, ctx done        → ErrTransient
//	anything else from the client             → ErrTransient
//
// 401/403 are transient on purpose: a rotated credential or a wrong ACL is a
// configuration problem of the relay, not of the record, and dead-lettering
// good data because of it would lose nothing recoverable but cost a re-drive.
// Only a definite "this id does not exist" dead-letters.
func classify(id int, err error, scrub func(string) string) error {
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		// A network error or timeout (a refused connection is a *url.Error),
		// the caller's context ending, a body that is not JSON...: about the
		// registry, not the record.
		return &transientError{schemaID: id, msg: scrub(err.Error()), cause: err}
	}
	// 40403 is "schema not found"; the other not-found codes (subject or
	// version not found) mean the same for an id lookup. A bare 404 without
	// a registry error code is most likely a wrong URL path (a proxy, a
	// missing context prefix), which is configuration: transient rather
	// than dead-lettering everything.
	if re.StatusCode == http.StatusNotFound && sr.IsNotFoundError(re.ErrorCode) {
		return &DecodeError{SchemaID: id, Reason: ReasonUnknownID, Err: errors.New(scrub(re.Error()))}
	}
	return &transientError{schemaID: id, msg: "HTTP " + strconv.Itoa(re.StatusCode) + ": " + scrub(re.Error()), cause: re}
}

// subjectError is classify for a lookup by subject, which has no schema id:
// ErrTransient naming the subject, or else the registry's scrubbed "not
// found" answer (which says nothing about any record).
func subjectError(subject string, err error, scrub func(string) string) error {
	switch e := classify(0, err, scrub).(type) {
	case *transientError:
		e.subject = subject
		return e
	case *DecodeError:
		return e.Err
	default:
		return e
	}
}
