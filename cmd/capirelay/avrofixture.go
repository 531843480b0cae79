package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/capirelay/capirelay/mapping"
	"github.com/capirelay/capirelay/schemas"
)

// This file lets `capirelay mapping test` run fixtures of `format: avro`
// topics through the real decode path: the fixture's value (a YAML or JSON
// tree in its natural form) is converted to what hamba/avro encodes, encoded
// in the Confluent wire format with the topic's local schema, decoded with
// schemas.DecodeWireWith, and mapped with MapValue.

// fixtureSchemaID is the schema id written in the wire header of fixture
// records (DecodeWireWith ignores it).
const fixtureSchemaID = 1

// avroSchemas caches the parsed local schemas of one run, by path.
var avroSchemas = map[string]*schemas.Schema{}

// mapAvroCase encodes and decodes the fixture value of an Avro topic and
// maps it. name is the case's `record.schema` ("" for the topic's last
// schema file).
func mapAvroCase(m *mapping.Mapper, a mapping.AvroTopic, name string, rec *mapping.Record) ([]mapping.Output, error) {
	decodeErr := func(err error) error {
		return &mapping.MapError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Class: mapping.ClassDecode, Err: err}
	}
	if len(a.SchemaFiles) == 0 {
		return nil, fmt.Errorf("topic %q is format avro but names no local `schema:` file: mapping test encodes the fixture value with it; add schema: <file>.avsc to the topic", rec.Topic)
	}
	i := len(a.SchemaFiles) - 1
	if name != "" {
		if i = slices.Index(a.SchemaNames, name); i < 0 {
			return nil, fmt.Errorf("record.schema %q is not one of the topic's schema files (%s)", name, strings.Join(a.SchemaNames, ", "))
		}
	}
	s := avroSchemas[a.SchemaFiles[i]]
	if s == nil {
		var err error
		if s, err = schemas.ParseSchemaFile(a.SchemaFiles[i]); err != nil {
			return nil, err
		}
		avroSchemas[a.SchemaFiles[i]] = s
	}
	if len(rec.Value) == 0 {
		return m.MapValue(rec, nil, nil)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("record value: %v", err)
	}
	native, err := avroNative(s.Avro, v, "value")
	if err != nil {
		return nil, fmt.Errorf("the fixture value does not fit %s: %v", a.SchemaNames[i], err)
	}
	wire, err := schemas.Encode(fixtureSchemaID, s.Avro, native)
	if err != nil {
		return nil, fmt.Errorf("encoding the fixture value with %s: %v", a.SchemaNames[i], err)
	}
	tree, _, err := schemas.DecodeWireWith(s, wire)
	if err != nil {
		return nil, decodeErr(err)
	}
	return m.MapValue(rec, tree, nil)
}

// avroNative converts a natural JSON tree (json.Number numbers) into
// hamba/avro's encoding input for schema s: unions as {branch: value},
// timestamps from RFC 3339 strings (or ints in the schema's unit), dates from
// YYYY-MM-DD, decimals from decimal strings or numbers, bytes from strings.
// path names the place in errors (value.items[0].qty).
func avroNative(s avro.Schema, v any, path string) (any, error) {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	bad := func(want string) error {
		return fmt.Errorf("%s: want %s, got %s", path, want, jsonKind(v))
	}
	var logical avro.LogicalType
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		logical = l.Logical().Type()
	}
	switch x := s.(type) {
	case *avro.UnionSchema:
		if v == nil {
			if slices.ContainsFunc(x.Types(), func(b avro.Schema) bool { return b.Type() == avro.Null }) {
				return nil, nil
			}
			return nil, bad("a value (the union has no null)")
		}
		var errs []string
		for _, b := range x.Types() {
			if b.Type() == avro.Null {
				continue
			}
			n, err := avroNative(b, v, path)
			if err == nil {
				return map[string]any{unionName(b): n}, nil
			}
			errs = append(errs, err.Error())
		}
		return nil, errors.New(strings.Join(errs, "; or "))
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, bad("a record " + x.FullName() + " (a mapping)")
		}
		out := make(map[string]any, len(x.Fields()))
		for k := range m {
			if !slices.ContainsFunc(x.Fields(), func(f *avro.Field) bool { return f.Name() == k }) {
				return nil, fmt.Errorf("%s.%s: no field %q in record %s", path, k, k, x.FullName())
			}
		}
		for _, f := range x.Fields() {
			fv, ok := m[f.Name()]
			if !ok {
				if f.HasDefault() {
					continue // hamba writes the default
				}
				if u, isU := f.Type().(*avro.UnionSchema); isU && slices.ContainsFunc(u.Types(), func(b avro.Schema) bool { return b.Type() == avro.Null }) {
					out[f.Name()] = nil
					continue
				}
				return nil, fmt.Errorf("%s.%s: missing (record %s requires it)", path, f.Name(), x.FullName())
			}
			n, err := avroNative(f.Type(), fv, path+"."+f.Name())
			if err != nil {
				return nil, err
			}
			out[f.Name()] = n
		}
		return out, nil
	case *avro.ArraySchema:
		l, ok := v.([]any)
		if !ok {
			return nil, bad("a list")
		}
		out := make([]any, len(l))
		for i, e := range l {
			n, err := avroNative(x.Items(), e, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, bad("a map")
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			n, err := avroNative(x.Values(), e, path+"["+strconv.Quote(k)+"]")
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case *avro.EnumSchema:
		str, ok := v.(string)
		if !ok || !slices.Contains(x.Symbols(), str) {
			return nil, bad("one of the symbols " + strings.Join(x.Symbols(), ", ") + " of enum " + x.FullName())
		}
		return str, nil
	case *avro.FixedSchema:
		if logical == avro.Decimal {
			return decimalRat(v, path)
		}
		str, ok := v.(string)
		if !ok || len(str) != x.Size() {
			return nil, bad(strconv.Itoa(x.Size()) + " bytes (a string)")
		}
		return []byte(str), nil
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			return nil, bad("null")
		}
		return nil, nil
	case avro.Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, bad("a bool")
	case avro.String:
		if str, ok := v.(string); ok {
			return str, nil
		}
		return nil, bad("a string")
	case avro.Bytes:
		if logical == avro.Decimal {
			return decimalRat(v, path)
		}
		if str, ok := v.(string); ok {
			return []byte(str), nil
		}
		return nil, bad("bytes (a string)")
	case avro.Float, avro.Double:
		n, ok := v.(json.Number)
		if !ok {
			return nil, bad("a number")
		}
		f, err := n.Float64()
		if err != nil {
			return nil, bad("a number")
		}
		if s.Type() == avro.Float {
			return float32(f), nil
		}
		return f, nil
	case avro.Int:
		if logical == avro.Date {
			if str, ok := v.(string); ok {
				t, err := time.Parse(time.DateOnly, str)
				if err != nil {
					return nil, bad("a date YYYY-MM-DD")
				}
				return t, nil
			}
		}
		n, ok := v.(json.Number)
		if !ok {
			return nil, bad("an int")
		}
		i, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil {
			return nil, bad("an int (32 bits)")
		}
		if logical == avro.Date {
			return time.Unix(i*86400, 0).UTC(), nil
		}
		return int(i), nil
	case avro.Long:
		ts := logical == avro.TimestampMillis || logical == avro.TimestampMicros || logical == avro.LocalTimestampMillis || logical == avro.LocalTimestampMicros
		if str, ok := v.(string); ok && ts {
			t, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return nil, bad("an RFC 3339 timestamp")
			}
			return t, nil
		}
		n, ok := v.(json.Number)
		if !ok {
			if ts {
				return nil, bad("a timestamp (RFC 3339 string or int)")
			}
			return nil, bad("an int")
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return nil, bad("an int (64 bits)")
		}
		switch logical {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			return time.UnixMilli(i).UTC(), nil
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			return time.UnixMicro(i).UTC(), nil
		}
		return i, nil
	}
	return nil, fmt.Errorf("%s: schema type %s is not supported in fixtures", path, s.Type())
}

// decimalRat reads a decimal fixture value: a decimal string or a number.
func decimalRat(v any, path string) (*big.Rat, error) {
	var str string
	switch x := v.(type) {
	case string:
		str = strings.TrimSpace(x)
	case json.Number:
		str = string(x)
	default:
		return nil, fmt.Errorf("%s: want a decimal (a string such as \"129.98\" or a number), got %s", path, jsonKind(v))
	}
	r, ok := new(big.Rat).SetString(str)
	if !ok || strings.ContainsAny(str, "/eE") {
		return nil, fmt.Errorf("%s: want a decimal such as \"129.98\", got %q", path, str)
	}
	return r, nil
}

// unionName is the name hamba/avro gives a union branch.
func unionName(s avro.Schema) string {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		name += "." + string(l.Logical().Type())
	}
	return name
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "the string " + strconv.Quote(x)
	case json.Number:
		return "the number " + string(x)
	case bool:
		return "a bool"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
