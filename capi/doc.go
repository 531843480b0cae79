// Package capi is capirelay's side of the OpenAI Ads Conversions API: the wire
// types, local validation of every documented rule, identity normalization and
// hashing, a fast JSON encoder, and a batch client that retries transient
// failures and isolates the events the API rejects.
//
// The package imports no Kafka code. The relay maps records into Events, calls
// Validator.Validate on each (a bad event is dead-lettered, never sent), encodes
// each event once with AppendEvent, and hands the encoded events to
// Client.Send, which splits them into requests of at most 1,000 events and
// Config.MaxRequestBytes, retries what is transient, and reports per event
// whether it was accepted, rejected, or left unsent.
//
// # What the API documentation leaves open, and what this package does
//
//   - Any 2xx is accepted. The response body is not interpreted.
//   - 400 and 422 mean "some event in the batch is invalid", and the API may not
//     say which. The client bisects the batch (see Client.Send) so the good
//     events are accepted and only the offending ones come back as rejected.
//   - 401, 403 and 404 are configuration faults (key or pixel wrong): the client
//     returns a *APIError of class ClassConfig at once and never retries them
//     itself; the caller decides how slowly to try again.
//   - 408, 429, 5xx and network errors are transient: retried with capped
//     exponential backoff and full jitter, honouring Retry-After.
//   - 413 means the request is too large: the batch is split in halves; a single
//     event that still gets 413 is rejected.
//   - Whether unknown fields are rejected is unknown: the types here have exactly
//     the documented fields, so none is ever sent.
//   - action_source: its default when omitted is undocumented, so the
//     Validator requires it on every event.
package capi
