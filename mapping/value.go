package mapping

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// kind is the kind of an evaluated value.
type kind uint8

const (
	kAbsent kind = iota // missing key, optional.none: the field is not sent
	kNull               // a null value: also not sent, but == null is true
	kString
	kInt
	kFloat
	kBool
	kTime  // n holds Unix milliseconds
	kOther // a holds a decoded tree value: map[string]any, []any, ...
)

// val is the result of evaluating an expression, unboxed so that the fast
// paths do not allocate.
type val struct {
	k kind
	s string
	n int64 // kInt, kBool (0/1), kTime (Unix ms), kFloat (math.Float64bits)
	a any
}

func floatVal(f float64) val { return val{k: kFloat, n: int64(math.Float64bits(f))} }

// float returns the value of a kFloat.
func (v val) float() float64 { return math.Float64frombits(uint64(v.n)) }

// missing reports whether v is absent or null: the field is then not sent.
func (v val) missing() bool { return v.k <= kNull }

func (v val) typeName() string {
	switch v.k {
	case kAbsent:
		return "absent"
	case kNull:
		return "null"
	case kString:
		return "string"
	case kInt:
		return "int"
	case kFloat:
		return "double"
	case kBool:
		return "bool"
	case kTime:
		return "timestamp"
	}
	switch v.a.(type) {
	case map[string]any, Fields:
		return "map"
	case []any:
		return "list"
	}
	return reflect.TypeOf(v.a).String()
}

// fromAny converts a decoded tree value.
func fromAny(x any) val {
	if s, ok := x.(string); ok { // the common case first
		return val{k: kString, s: s}
	}
	switch v := x.(type) {
	case nil:
		return val{k: kNull}
	case int64:
		return val{k: kInt, n: v}
	case float64:
		return floatVal(v)
	case bool:
		if v {
			return val{k: kBool, n: 1}
		}
		return val{k: kBool}
	case int:
		return val{k: kInt, n: int64(v)}
	case int32:
		return val{k: kInt, n: int64(v)}
	case float32:
		return floatVal(float64(v))
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return val{k: kInt, n: n}
		}
		f, _ := v.Float64()
		return floatVal(f)
	case time.Time:
		return val{k: kTime, n: v.UnixMilli()}
	}
	return val{k: kOther, a: x}
}

// errNoSuchKey reports whether a CEL error is a missing key or field, which
// makes a field absent rather than failing the record.
func isNoSuchKey(msg string) bool {
	return strings.HasPrefix(msg, "no such key") || strings.HasPrefix(msg, "no such attribute") ||
		strings.HasPrefix(msg, "index out of")
}

// fromRef converts a CEL result.
func fromRef(v ref.Val) (val, error) {
	switch x := v.(type) {
	case *types.Err:
		if isNoSuchKey(x.Error()) {
			return val{}, nil
		}
		return val{}, x
	case types.Null:
		return val{k: kNull}, nil
	case types.String:
		return val{k: kString, s: string(x)}, nil
	case types.Int:
		return val{k: kInt, n: int64(x)}, nil
	case types.Uint:
		if uint64(x) > math.MaxInt64 {
			return val{}, errors.New("unsigned integer out of the int64 range")
		}
		return val{k: kInt, n: int64(x)}, nil
	case types.Double:
		return floatVal(float64(x)), nil
	case types.Bool:
		if x {
			return val{k: kBool, n: 1}, nil
		}
		return val{k: kBool}, nil
	case types.Timestamp:
		return val{k: kTime, n: x.Time.UnixMilli()}, nil
	case *types.Optional:
		if !x.HasValue() {
			return val{}, nil
		}
		return fromRef(x.GetValue())
	case *types.Unknown:
		return val{}, errors.New("expression result is unknown")
	}
	n, err := toNative(v, 0)
	if err != nil {
		return val{}, err
	}
	return val{k: kOther, a: n}, nil
}

// toNative converts a CEL value into the Go values that capi can encode as
// JSON: nil, string, int64, float64, bool, []any, map[string]any.
// Timestamps become RFC 3339 strings and durations strings like "1.5s".
func toNative(v ref.Val, depth int) (any, error) {
	if depth > 32 {
		return nil, errors.New("value nested more than 32 levels deep")
	}
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.String:
		return string(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		if uint64(x) > math.MaxInt64 {
			return nil, errors.New("unsigned integer out of the int64 range")
		}
		return int64(x), nil
	case types.Double:
		return float64(x), nil
	case types.Bool:
		return bool(x), nil
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return x.Duration.String(), nil
	case types.Bytes:
		return []byte(x), nil
	case *types.Err:
		return nil, x
	case *types.Optional:
		if !x.HasValue() {
			return nil, nil
		}
		return toNative(x.GetValue(), depth+1)
	}
	// Values of the decoded tree come back unchanged.
	switch n := v.Value().(type) {
	case map[string]any, []any:
		return n, nil
	}
	if l, ok := v.(traits.Lister); ok {
		size := int(l.Size().(types.Int))
		out := make([]any, 0, size)
		it := l.Iterator()
		for it.HasNext() == types.True {
			e, err := toNative(it.Next(), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	if m, ok := v.(traits.Mapper); ok {
		out := make(map[string]any, int(m.Size().(types.Int)))
		it := m.Iterator()
		for it.HasNext() == types.True {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, errors.New("map key " + strconv.Quote(k.Type().TypeName()) + " is not a string")
			}
			e, err := toNative(m.Get(k), depth+1)
			if err != nil {
				return nil, err
			}
			out[string(ks)] = e
		}
		return out, nil
	}
	return nil, errors.New("unsupported value of type " + v.Type().TypeName())
}
