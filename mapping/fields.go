package mapping

import "time"

// Fields is a record of a decoded value that is read field by field instead
// of as a map[string]any: *schemas.Record, which schemas.Decoder.DecodeRecord
// builds. MapValue accepts it anywhere the tree holds a map (the value
// itself, nested records, list elements, map values), with the semantics of
// the map it stands for: the rules, has(), `?.` and contents.each see the
// same thing, and the events are identical.
type Fields interface {
	// Field returns the value of a field and whether it is present: false
	// for a field the record does not have and for a null (absent) one,
	// exactly as a missing map key.
	Field(name string) (any, bool)
	// AsMap returns the record as the map[string]any of the plain tree, with
	// nested records converted too. Only the CEL fallback and values copied
	// into an event (custom properties, variant_dict) need it.
	AsMap() map[string]any
}

// plainTree returns x with every Fields converted to its map (lists and maps
// that hold records are copied; anything else is returned as is), for CEL
// and for values put into an event.
func plainTree(x any) any {
	switch v := x.(type) {
	case Fields:
		return v.AsMap()
	case []any:
		if !holdsFields(v) {
			return x
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plainTree(e)
		}
		return out
	case map[string]any:
		if !mapHoldsFields(v) {
			return x
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = plainTree(e)
		}
		return out
	}
	return x
}

func holdsFields(l []any) bool {
	for _, e := range l {
		if needsPlain(e) {
			return true
		}
	}
	return false
}

func mapHoldsFields(m map[string]any) bool {
	for _, e := range m {
		if needsPlain(e) {
			return true
		}
	}
	return false
}

func needsPlain(x any) bool {
	switch v := x.(type) {
	case Fields:
		return true
	case []any:
		return holdsFields(v)
	case map[string]any:
		return mapHoldsFields(v)
	}
	return false
}

// detachTree returns a deep copy of x, the plain tree of a decoded value
// (Fields converted to maps), that shares no memory with x but string bytes:
// every list and map is new, and every leaf is boxed anew. A decoder may
// build its values in memory it reuses for the next record
// (schemas.DecodeRecordIn): a value put into an event must not point there.
func detachTree(x any) any {
	switch v := x.(type) {
	case nil:
		return nil
	case Fields:
		return detachTree(v.AsMap())
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = detachTree(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = detachTree(e)
		}
		return out
	case string:
		return string(v) // a new box: the old one may be reused
	case int64:
		return int64(v)
	case float64:
		return float64(v)
	case bool:
		return v
	case time.Time:
		return time.Time(v)
	case []byte:
		return append([]byte(nil), v...)
	}
	// Any other type is not built by this package's decoders; copying the
	// interface value is all that can be done generically.
	return x
}
