// Package capisim is a local simulator of the OpenAI Ads Conversions API
// (POST /v1/events?pid=PIXEL), written from the contract in
// docs/conversions-api.md independently of the relay's own client so that
// each catches the other's mistakes. Tests, the embedded demo and benchmarks
// use it in process (Server is an http.Handler); cmd/capisim serves it on a
// port.
//
// # What a request must satisfy
//
// In this order; the first failure decides the response:
//
//  1. POST (405 otherwise).
//  2. Injected faults (Options/Faults): latency, then hang, 401, 429 with
//     Retry-After, 5xx.
//  3. Authorization: Bearer <Options.APIKey> (scheme case-insensitive) —
//     401 with WWW-Authenticate otherwise. The key is never echoed.
//  4. Exactly one non-empty pid query parameter naming one of
//     Options.Pixels — 403 otherwise (undocumented in the real API; 403
//     was chosen because a wrong pixel is a configuration fault, and a
//     client that treats 400 as "bad event" would otherwise dead-letter
//     good data).
//  5. Content-Type application/json (a charset, if any, must be utf-8) and
//     no Content-Encoding other than identity — 415 otherwise.
//  6. Body at most Options.MaxBodyBytes — 413 otherwise.
//  7. The body follows every rule below — 400 otherwise; one invalid event
//     fails the whole batch and nothing of it is saved.
//
// Body rules (the contract, read strictly):
//
//   - The body is one JSON object; strings valid UTF-8; no duplicate keys
//     in any object the contract defines; nothing after it.
//   - events: array of 1..1000 objects. validate_only: boolean.
//     integration_source: 1-64 chars, [A-Za-z0-9][A-Za-z0-9._-]* as sent
//     (no surrounding spaces), stored lowercased.
//   - Event: id non-empty string; type one of the 13 event names
//     (attribution_appended is refused); timestamp_ms an integer literal
//     (no fraction or exponent) between Now-7d and Now+10m inclusive;
//     custom_event_name required iff type is custom, 1-64 of [a-z0-9_-],
//     starting and ending with a letter or digit, lowercase, not one of the
//     13 event names; action_source one of web, mobile_app, offline,
//     physical_store, phone_call, email, other, required and mobile_app for
//     app_installed and app_opened; source_url required when action_source
//     is web, and whenever present an absolute URL with scheme and host;
//     oppref string; opt_out boolean; user object; data object whose type
//     matches the event type.
//   - Legacy event fields (event_name, event_id, event_time_epoch_ms,
//     event_source_url, event_data, oppcref) and legacy user keys
//     (email_sha256, external_id_sha256, country, city, zip_code) are
//     always refused, with the current name in the message.
//   - data: contents allows type, amount, currency, contents;
//     customer_action type, amount, currency; plan_enrollment adds plan_id
//     and contents; custom allows all of them plus any other property of
//     any JSON type (but never custom_event_name). A documented data field
//     outside its shape is always refused. amount is an integer (64-bit);
//     currency a 3-letter ISO 4217 code, any case, required when amount is
//     present.
//   - contents[] items: id, group_id, name strings; content_type non-empty
//     string; quantity and amount integers; currency as above, required
//     with an item amount unless data.currency is present; variant_dict an
//     object of strings. "price" is always refused.
//   - user: emails_sha256, phone_numbers_sha256, external_ids_sha256,
//     first_names_sha256, last_names_sha256 arrays of 64-char lowercase hex;
//     regions, cities arrays of non-blank strings of at most 128 characters
//     (Unicode code points); postal_codes arrays of 1-32 characters of ASCII
//     letters, digits, spaces and hyphens with at least one letter, digit or
//     hyphen; countries arrays of upper-case ISO 3166-1 alpha-2 codes;
//     android_advertising_id a UUID (8-4-4-4-12 hex, either case; all-zero
//     accepted); ip_address an IPv4 or IPv6 address without zone;
//     user_agent a non-blank string; obref a string. User values are never
//     echoed in errors.
//   - Unknown fields are refused at every level unless
//     Options.IgnoreUnknownFields (custom data properties are not unknown).
//
// JSON null is not accepted for any documented field (it is not of the
// documented type); omit the field instead. Only custom data properties may
// be null.
//
// # Responses (the simulator's choices; the real API documents none)
//
// 200: {"events_received":N} (plus "validate_only":true), N the number of
// events in the batch, duplicates included. Errors:
// {"error":{"type":"...","message":"...","param":"...","event_index":N}}
// with type invalid_request (400), authentication_error (401),
// permission_denied (403), not_found (404), method_not_allowed (405),
// request_too_large (413), unsupported_media_type (415), rate_limited (429)
// or server_error (5xx). param and event_index name the failing event only
// with Options.NameFailingEvent; otherwise the path reads "events[?]...".
//
// # Dedup and storage
//
// The dedup key is pixel + (custom_event_name for custom events, else type)
// + id; the first accepted event wins, later ones (also within one batch)
// are counted in Stats.DuplicatesIgnored and dropped. The window is
// unbounded until Reset. validate_only requests are validated fully and
// change nothing but the counters.
package capisim
