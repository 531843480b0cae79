package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
)

// decodeGeneric is the reference engine: hamba/avro's generic decoding into
// map[string]any, then normalize to this package's tree shape. It reports
// the same error classes as the compiled engine.
func (s *Schema) decodeGeneric(g *generic, payload []byte) (any, error) {
	r := g.pool.Get().(*avro.Reader)
	defer g.pool.Put(r)
	r.Error = nil
	r.Reset(payload)
	var v any
	r.ReadVal(s.Avro, &v)
	if err := r.Error; err != nil {
		if strings.Contains(err.Error(), "MaxByteSliceSize") {
			return nil, &DecodeError{SchemaID: s.ID, Reason: ReasonTooLarge, Err: err}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errEOF
		}
		return nil, &DecodeError{SchemaID: s.ID, Reason: ReasonCorrupt, Err: err}
	}
	r.Peek() // sets r.Error to io.EOF at the end of the payload
	if r.Error == nil {
		return nil, &DecodeError{SchemaID: s.ID, Reason: ReasonTrailing, Err: errors.New("payload bytes left after the value")}
	}
	out, err := normalize(s.Avro, v, 0)
	if err != nil {
		return nil, &DecodeError{SchemaID: s.ID, Reason: ReasonCorrupt, Err: err}
	}
	return out, nil
}

// generic holds the hamba configuration of the generic engine and a pool of
// its readers (as hamba's own Unmarshal pools them).
type generic struct {
	api  avro.API
	pool sync.Pool
}

func newGeneric(maxBytes int) *generic {
	m := maxBytes
	if m == 0 {
		m = -1 // hamba: negative disables the limit
	}
	g := &generic{api: avro.Config{MaxByteSliceSize: m}.Freeze()}
	g.pool.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(g.api)) }
	return g
}

// normalize converts a value of hamba's generic decoding of schema s into the
// tree shape of this package (see the package documentation).
func normalize(s avro.Schema, v any, depth int) (any, error) {
	if depth > 4*maxDepth {
		return nil, errDepth
	}
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if v == nil {
		return nil, nil
	}
	var logical avro.LogicalType
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		logical = l.Logical().Type()
	}
	switch s.Type() {
	case avro.Null:
		return nil, nil
	case avro.Int:
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case time.Duration: // time-millis
			return int64(x / time.Millisecond), nil
		case time.Time: // date
			return x.UTC(), nil
		}
	case avro.Long:
		switch x := v.(type) {
		case int64:
			return x, nil
		case time.Duration: // time-micros
			return int64(x / time.Microsecond), nil
		case time.Time:
			return x.UTC(), nil
		}
	case avro.Float:
		if x, ok := v.(float32); ok {
			return float64(x), nil
		}
	case avro.Double, avro.String, avro.Boolean, avro.Enum:
		return v, nil
	case avro.Bytes:
		if logical == avro.Decimal {
			if x, ok := v.(*big.Rat); ok {
				return x.FloatString(s.(avro.LogicalTypeSchema).Logical().(*avro.DecimalLogicalSchema).Scale()), nil
			}
		}
		if x, ok := v.([]byte); ok {
			return x, nil
		}
	case avro.Fixed:
		fx := s.(*avro.FixedSchema)
		switch x := v.(type) {
		case *big.Rat:
			return x.FloatString(fx.Logical().(*avro.DecimalLogicalSchema).Scale()), nil
		case avro.LogicalDuration:
			b := make([]byte, 12)
			binary.LittleEndian.PutUint32(b[0:], x.Months)
			binary.LittleEndian.PutUint32(b[4:], x.Days)
			binary.LittleEndian.PutUint32(b[8:], x.Milliseconds)
			return b, nil
		}
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			return b, nil
		}
	case avro.Array:
		x, ok := v.([]any)
		if !ok {
			break
		}
		items := s.(*avro.ArraySchema).Items()
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(items, e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case avro.Map:
		x, ok := v.(map[string]any)
		if !ok {
			break
		}
		vs := s.(*avro.MapSchema).Values()
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(vs, e, depth+1)
			if err != nil {
				return nil, err
			}
			if n != nil {
				out[k] = n
			}
		}
		return out, nil
	case avro.Record, avro.Error:
		x, ok := v.(map[string]any)
		if !ok {
			break
		}
		fields := s.(*avro.RecordSchema).Fields()
		out := make(map[string]any, len(fields))
		for _, f := range fields {
			n, err := normalize(f.Type(), x[f.Name()], depth+1)
			if err != nil {
				return nil, err
			}
			if n != nil {
				out[f.Name()] = n
			}
		}
		return out, nil
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		// Branch values come wrapped in a one-key map named after the
		// branch, except for nullable unions, which hamba unwraps itself.
		if x, ok := v.(map[string]any); ok && len(x) == 1 {
			for name, e := range x {
				for _, t := range types {
					if unionName(t) == name {
						return normalize(t, e, depth+1)
					}
				}
			}
		}
		for _, t := range types {
			if t.Type() == avro.Null {
				continue
			}
			if n, err := normalize(t, v, depth+1); err == nil {
				return n, nil
			}
		}
	}
	return nil, fmt.Errorf("unexpected %T for Avro %s", v, s.Type())
}

// unionName is the key hamba's generic decoding gives a union branch.
func unionName(s avro.Schema) string {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
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
