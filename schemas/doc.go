// Package schemas holds the Avro schemas of the example domain events and
// decodes Avro records in the Confluent wire format through a Schema
// Registry, into the same kind of tree the mapping rules read from JSON.
//
// # Wire format and registry
//
// A record value is the magic byte 0, the 4-byte big-endian schema id, and
// the Avro binary payload written with that schema. A Decoder fetches each
// writer schema by id from the registry (github.com/twmb/franz-go/pkg/sr),
// once: ids are immutable, so a schema is cached for the Decoder's life, and
// concurrent misses for one id share one request. Each id is parsed into its
// own avro.SchemaCache, with its schema references (fetched by subject and
// version, recursively) parsed into the same cache first; hamba/avro's global
// cache would let two versions of a subject that define the same named type
// overwrite each other.
//
// For work without a registry, ParseSchemaFile and ParseSchema parse a local
// .avsc and DecodeWith / DecodeWireWith decode with it. Encode builds
// wire-format values for tests and the demo. FS embeds the example schemas.
//
// # Tree shape
//
// Decode returns a tree of map[string]any, []any, string, int64, float64,
// bool, []byte, time.Time and nil, chosen so that the mapping rules see the
// same thing as for a JSON record wherever that makes sense:
//
//	Avro                                        Go value
//	record, map                                 map[string]any
//	array                                       []any
//	null                                        nil (and absent from a record or map)
//	boolean                                     bool
//	int, long                                   int64
//	float, double                               float64 (a float widened exactly)
//	string, uuid                                string
//	enum                                        string (the symbol)
//	bytes, fixed, duration                      []byte (duration: the 12 raw bytes)
//	decimal (bytes or fixed)                    string, exact: "129.98", "-0.05", "12"
//	timestamp-millis/-micros,
//	local-timestamp-millis/-micros              time.Time in UTC
//	date                                        time.Time at midnight UTC
//	time-millis, time-micros                    int64 (ms or µs after midnight)
//	union ["null", T] or [T, "null"]            T's value, or absent when null
//	any other union                             the value of the branch written
//
// Decisions behind it:
//
//   - Null is absent. A record field or map value that is null is left out
//     of its map, exactly as an optional JSON key the producer omitted: a
//     rule writes `value.?customer.phone` or `has(value.customer.phone)` and
//     works for both encodings. (A null inside an array stays a nil element,
//     so indexes keep their meaning.)
//   - Decimals are strings. The exact decimal string of the unscaled value
//     and the schema's scale, with exactly `scale` fraction digits, which is
//     what the mapping's money.minor takes without any float rounding:
//     money.minor("129.98", "USD") is 12998. A JSON order carries the same
//     strings, so `money.minor(value.total, value.currency)` maps both.
//   - Timestamps are time.Time, which the mapping takes directly as an event
//     time; a rule over a JSON record that carries RFC 3339 strings parses
//     them with time.rfc3339, so rules branch on the encoding where the
//     encodings differ (or use a helper that accepts both).
//   - Other unions lose the branch name (hamba's generic decoding wraps the
//     value in a one-key map named after the branch): rules test the value,
//     not the writer's type.
//   - Strings of a decoded value share one copy of the payload: decoding
//     allocates once for all of a record's strings, and a retained string
//     keeps that copy (not the caller's buffer) alive. DecodeRecordIn, the
//     relay's path, skips the copy: its strings point into the caller's
//     buffer, and the rest of the value lives in a reused Arena, valid until
//     the arena's next use (see DecodeRecordIn for the exact contract).
//
// # Errors
//
// Decode returns either an error matching ErrTransient (the registry could
// not be asked: unreachable, timeout, 5xx, 408, 429, 401/403, context done),
// which the caller retries and never dead-letters, or a *DecodeError (the
// record is bad: wrong magic byte, truncated header, unknown schema id, a
// schema that is not Avro or does not parse, corrupt or truncated payload,
// trailing bytes, a value over MaxByteSliceSize), which the caller
// dead-letters with its text. Error texts never hold record content or
// credentials.
//
// # Speed
//
// Decode runs a decoder compiled per schema id (an interpreter over a tree
// of schema nodes) that writes the tree above directly; HambaGeneric selects
// hamba/avro's generic decoding plus a normalizing pass instead (the
// reference: same output, several times slower). DecodeFields with a
// FieldSet builds only the fields the rules read and skips the rest of the
// payload, which is the fastest path. BenchmarkDecodeOrderMap measures all
// three on the example order.
package schemas
