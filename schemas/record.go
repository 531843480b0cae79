package schemas

// Record is a decoded Avro record with its fields by position, as built by
// the DecodeRecord entry points: the same values Decode puts in a
// map[string]any, without building one map per record (the decoder's
// largest cost). Nested records are *Record too; arrays are []any and Avro
// maps map[string]any, as with Decode.
//
// V[i] is the value of field T.Fields[i], nil when the field is absent: a
// null (a null union branch), or a field a FieldSet did not ask for. A
// present value is never nil, so Field reports absence exactly as a missing
// map key would. A Record is immutable once returned; it may be shared.
type Record struct {
	T *RecordType
	V []any
}

// RecordType is the shape of one record of a compiled schema, shared by
// every Record decoded with it.
type RecordType struct {
	// Name is the record's full name.
	Name string
	// Fields are the field names in schema order.
	Fields []string
	// Index maps a field name to its position in Fields.
	Index map[string]int
}

func newRecordType(name string, fields []string) *RecordType {
	t := &RecordType{Name: name, Fields: fields, Index: make(map[string]int, len(fields))}
	for i, f := range fields {
		t.Index[f] = i
	}
	return t
}

// Field returns the value of the field name and whether it is present (the
// record has such a field and it is not null): a map lookup on the record of
// Decode.
func (r *Record) Field(name string) (any, bool) {
	fs := r.T.Fields
	if len(fs) <= 16 {
		// A scan beats hashing the name for a small record: most names
		// differ from the one sought in length, a single comparison.
		for i, f := range fs {
			if f == name {
				v := r.V[i]
				return v, v != nil
			}
		}
		return nil, false
	}
	i, ok := r.T.Index[name]
	if !ok {
		return nil, false
	}
	v := r.V[i]
	return v, v != nil
}

// AsMap returns the record in Decode's tree shape: a fresh map[string]any of
// its present fields, with nested records converted too (recursively, into
// arrays and maps). Leaf values are shared, not copied.
func (r *Record) AsMap() map[string]any {
	return r.asMap(0)
}

func (r *Record) asMap(depth int) map[string]any {
	n := 0
	for _, v := range r.V {
		if v != nil {
			n++
		}
	}
	m := make(map[string]any, n)
	for i, v := range r.V {
		if v != nil {
			m[r.T.Fields[i]] = plain(v, depth+1)
		}
	}
	return m
}

// Plain converts a value of DecodeRecord into the tree of Decode: every
// *Record becomes a map[string]any (arrays and maps holding records are
// copied; anything else is returned as is).
func Plain(v any) any { return plain(v, 0) }

func plain(v any, depth int) any {
	switch x := v.(type) {
	case *Record:
		return x.asMap(depth)
	case []any:
		if !needsPlain(x, depth) {
			return v
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e, depth+1)
		}
		return out
	case map[string]any:
		if !holdsRecords(x, depth) {
			return v
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e, depth+1)
		}
		return out
	}
	return v
}

func holdsRecords(m map[string]any, depth int) bool {
	if depth > 2*maxDepth {
		return false
	}
	for _, e := range m {
		switch x := e.(type) {
		case *Record:
			return true
		case []any:
			for _, y := range x {
				if needsPlain(y, depth+1) {
					return true
				}
			}
		case map[string]any:
			if holdsRecords(x, depth+1) {
				return true
			}
		}
	}
	return false
}

func needsPlain(v any, depth int) bool {
	switch x := v.(type) {
	case *Record:
		return true
	case []any:
		if depth > 2*maxDepth {
			return false
		}
		for _, y := range x {
			if needsPlain(y, depth+1) {
				return true
			}
		}
	case map[string]any:
		return holdsRecords(x, depth+1)
	}
	return false
}
