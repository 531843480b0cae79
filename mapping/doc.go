// Package mapping turns Kafka records into Conversions API events with
// per-topic rules written in YAML and CEL (see MAPPING.md at the repository
// root for the rule language).
//
// Compile checks a config file's topics section statically (keys, CEL syntax
// and output types, each event type's data shape and required fields) and
// returns a Mapper. Mapper.Map decodes a record's JSON value (only the keys the
// rules read) and applies the topic's rules in order; Mapper.MapValue does the
// same for a value decoded elsewhere (Avro). Each rule whose `when` holds
// gives one Output: the rule's name, its pixel override and a capi.Event with
// identities already normalized and hashed by capi.Hasher.
//
// # Absent versus error
//
// An expression that reads a missing key, an out-of-range index, a null, or an
// empty optional (value.?x) gives "absent": an optional field is then not
// sent. A required field (id, timestamp, action_source, custom_event_name
// for custom events, source_url when action_source is web, currency with an
// amount) that is absent, a `when` that fails or reads a missing key, and any
// other failure (a helper rejecting its input, a wrong type) is a *MapError:
// the record is bad and goes to the dead-letter topic.
//
// # Determinism and speed
//
// Expressions see only the record (no clock, no randomness), so the same
// record always gives the same events and the same ids. Plain selections,
// comparisons with literals and calls of the helpers over them are evaluated
// natively; other expressions run as compiled CEL programs with the record as
// their activation. Mapping the web-shop order of deploy/examples allocates
// about as much as a hand-written Go function (see BenchmarkMapShopOrder).
//
// A Mapper is immutable and safe for concurrent use.
package mapping
