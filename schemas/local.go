package schemas

import (
	"embed"
	"fmt"
	"os"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// FS holds the .avsc files of the example domain events:
//
//   - order.v1.avsc: com.example.shop.Order, money as decimal(12,2) bytes
//     (total, items[].unit_price);
//   - order.v2.avsc: the same subject evolved: money as long minor units
//     (total_cents, items[].unit_price_cents) and an optional coupon;
//   - signup.avsc: com.example.accounts.Signup.
//
// Field names match the JSON records of deploy/examples/web-shop and
// deploy/examples/signups, so one rule set maps both encodings.
//
//go:embed *.avsc
var FS embed.FS

// Names of the embedded schema files.
const (
	OrderV1 = "order.v1.avsc"
	OrderV2 = "order.v2.avsc"
	Signup  = "signup.avsc"
)

// Embedded returns the text of an embedded schema file (OrderV1, ...).
func Embedded(name string) (string, error) {
	b, err := FS.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("schemas: no embedded schema %q", name)
	}
	return string(b), nil
}

// ParseEmbedded parses an embedded schema file (OrderV1, ...) as a local
// schema (ID 0).
func ParseEmbedded(name string) (*Schema, error) {
	text, err := Embedded(name)
	if err != nil {
		return nil, err
	}
	return ParseSchema(text)
}

// ParseSchemaFile parses a local .avsc file into its own schema cache, for
// decoding with no registry (fixtures, `capirelay check` offline). Errors
// name the file.
func ParseSchemaFile(path string) (*Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	s, err := ParseSchema(string(b))
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", path, err)
	}
	return s, nil
}

// ParseSchema parses Avro schema text into its own schema cache. The
// returned Schema has ID 0.
func ParseSchema(text string) (*Schema, error) {
	cache := &avro.SchemaCache{}
	as, err := avro.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, err
	}
	s, err := newSchema(0, as, cache)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeWith decodes a bare Avro payload (no wire-format header) written with
// s, into the same tree Decoder.Decode returns, with the default
// MaxByteSliceSize. Errors are *DecodeError.
func DecodeWith(s *Schema, payload []byte) (any, error) {
	return s.decode(payload, nil, DefaultMaxByteSliceSize, false)
}

// DecodeWireWith decodes a Confluent wire-format value with the local schema
// s whatever id its header carries (a local .avsc stands for the registry).
// It returns the id of the header.
func DecodeWireWith(s *Schema, b []byte) (any, int, error) {
	return decodeWire(s, b, false)
}

// DecodeWireRecordWith is DecodeWireWith building records as *Record (see
// Decoder.DecodeRecord).
func DecodeWireRecordWith(s *Schema, b []byte) (any, int, error) {
	return decodeWire(s, b, true)
}

// decodeWire strips the header of b and decodes the payload with s; a
// *DecodeError carries the header's schema id.
func decodeWire(s *Schema, b []byte, records bool) (any, int, error) {
	id, payload, err := splitHeader(b)
	if err != nil {
		return nil, 0, err
	}
	v, err := s.decode(payload, nil, DefaultMaxByteSliceSize, records)
	if de, ok := err.(*DecodeError); ok {
		de.SchemaID = id
	}
	return v, id, err
}

// Encode encodes v with schema into the Confluent wire format under
// schemaID: for tests, fixtures and the demo producer. v is what hamba/avro
// encodes: a map[string]any per record (a union value as the bare value, or
// nil for null), int/int32/int64, time.Time for timestamps, *big.Rat for
// decimals, []byte for bytes.
func Encode(schemaID int, schema avro.Schema, v any) ([]byte, error) {
	payload, err := avro.Marshal(schema, v)
	if err != nil {
		return nil, err
	}
	var h sr.ConfluentHeader
	b, _ := h.AppendEncode(make([]byte, 0, 5+len(payload)), schemaID, nil) // never fails
	return append(b, payload...), nil
}
