package schemas

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hamba/avro/v2"
)

// op is what a node of a compiled program reads.
type op uint8

const (
	opNull op = iota
	opBool
	opInt
	opLong
	opFloat
	opDouble
	opString
	opBytes
	opFixed
	opEnum
	opRecord
	opArray
	opMap
	opUnion
	opDecimalBytes
	opDecimalFixed
	opTimestampMillis
	opTimestampMicros
	opDate
	opTimeMillis // int, milliseconds after midnight: surfaced as int64
	opTimeMicros // long, microseconds after midnight: surfaced as int64
)

// node is one schema node compiled for decoding. A program is a tree of
// nodes (a graph, for recursive named types) walked by an interpreter
// (decodeNode), which is several times faster than hamba's reflection-based
// generic decoding into map[string]any and writes the tree shape of this
// package directly, with no second normalizing pass.
type node struct {
	op    op
	size  int // opFixed, opDecimalFixed: the byte size
	scale int // opDecimal*: the decimal scale
	// symbolsAny are the symbols of an opEnum, boxed once, at compile time.
	symbolsAny []any
	fields     []field // opRecord
	// keep is the number of fields of a record that are kept (not skipped):
	// the size hint of its map.
	keep int
	// rtype is the shape of a record's *Record (DecodeRecord).
	rtype    *RecordType
	elem     *node   // opArray items, opMap values
	branches []*node // opUnion
	// minSize is the fewest bytes a value of this node takes (0 for null, an
	// empty record...). It bounds how many items an array block may claim.
	minSize int
	// hint (on a program's root only) sizes the slabs of the next decode
	// from the last one.
	hint *hint
	// skip marks a node whose value is read and thrown away (a field the
	// FieldSet does not ask for).
	skip bool
}

type field struct {
	name string
	n    *node
}

// maxDepth bounds the nesting of decoded values (recursive schemas).
const maxDepth = 64

// compile builds the program of schema s, projected onto fs (nil: keep all).
func compile(s avro.Schema, fs *fieldNode) (*node, error) {
	c := compiler{full: map[string]*node{}}
	n, err := c.node(s, fs, 0)
	if err != nil {
		return nil, err
	}
	// The root gets its own copy: it may be a memoized record shared with a
	// recursive reference, and only the root carries the hint.
	root := *n
	root.hint = &hint{}
	return &root, nil
}

// hint remembers how many values the last decode of a program boxed.
type hint struct {
	nStr, nInt, nTime atomic.Int32
	// nRec, nVal: the records and record fields of the last DecodeRecord.
	nRec, nVal, nText atomic.Int32
}

type compiler struct {
	// full memoizes unprojected named records, so that recursive types
	// compile to a finite graph.
	full map[string]*node
}

func (c *compiler) node(s avro.Schema, fs *fieldNode, depth int) (*node, error) {
	if depth > 4*maxDepth {
		return nil, errors.New("schema nested too deeply")
	}
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	var logical avro.LogicalType
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		logical = l.Logical().Type()
	}
	switch s.Type() {
	case avro.Null:
		return &node{op: opNull}, nil
	case avro.Boolean:
		return &node{op: opBool, minSize: 1}, nil
	case avro.Int:
		switch logical {
		case avro.Date:
			return &node{op: opDate, minSize: 1}, nil
		case avro.TimeMillis:
			return &node{op: opTimeMillis, minSize: 1}, nil
		}
		return &node{op: opInt, minSize: 1}, nil
	case avro.Long:
		switch logical {
		case avro.TimestampMillis, avro.LocalTimestampMillis:
			return &node{op: opTimestampMillis, minSize: 1}, nil
		case avro.TimestampMicros, avro.LocalTimestampMicros:
			return &node{op: opTimestampMicros, minSize: 1}, nil
		case avro.TimeMicros:
			return &node{op: opTimeMicros, minSize: 1}, nil
		}
		return &node{op: opLong, minSize: 1}, nil
	case avro.Float:
		return &node{op: opFloat, minSize: 4}, nil
	case avro.Double:
		return &node{op: opDouble, minSize: 8}, nil
	case avro.String:
		return &node{op: opString, minSize: 1}, nil // uuid too: a string
	case avro.Bytes:
		if d, ok := s.(avro.LogicalTypeSchema).Logical().(*avro.DecimalLogicalSchema); ok && logical == avro.Decimal {
			return &node{op: opDecimalBytes, scale: d.Scale(), minSize: 1}, nil
		}
		return &node{op: opBytes, minSize: 1}, nil
	case avro.Fixed:
		fx := s.(*avro.FixedSchema)
		if d, ok := fx.Logical().(*avro.DecimalLogicalSchema); ok && logical == avro.Decimal {
			return &node{op: opDecimalFixed, size: fx.Size(), scale: d.Scale(), minSize: fx.Size()}, nil
		}
		return &node{op: opFixed, size: fx.Size(), minSize: fx.Size()}, nil // duration too: 12 raw bytes
	case avro.Enum:
		syms := s.(*avro.EnumSchema).Symbols()
		boxed := make([]any, len(syms))
		for i, sym := range syms {
			boxed[i] = sym
		}
		return &node{op: opEnum, symbolsAny: boxed, minSize: 1}, nil
	case avro.Array:
		elem, err := c.node(s.(*avro.ArraySchema).Items(), fs, depth+1)
		if err != nil {
			return nil, err
		}
		return &node{op: opArray, elem: elem, minSize: 1}, nil
	case avro.Map:
		// A projection does not reach into maps: their keys are data, not
		// schema. A map is decoded whole or skipped whole.
		elem, err := c.node(s.(*avro.MapSchema).Values(), nil, depth+1)
		if err != nil {
			return nil, err
		}
		return &node{op: opMap, elem: elem, minSize: 1}, nil
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		n := &node{op: opUnion, minSize: 1}
		for _, t := range types {
			b, err := c.node(t, fs, depth+1)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, b)
		}
		return n, nil
	case avro.Record, avro.Error:
		return c.record(s.(*avro.RecordSchema), fs, depth)
	}
	return nil, fmt.Errorf("unsupported Avro type %q", s.Type())
}

func (c *compiler) record(rs *avro.RecordSchema, fs *fieldNode, depth int) (*node, error) {
	if fs == nil || fs.all {
		if n, ok := c.full[rs.FullName()]; ok {
			return n, nil
		}
	}
	n := &node{op: opRecord}
	if fs == nil || fs.all {
		c.full[rs.FullName()] = n // before the fields: recursion ends here
		fs = nil
	}
	for _, f := range rs.Fields() {
		var sub *fieldNode
		skip := false
		if fs != nil {
			sub = fs.children[f.Name()]
			skip = sub == nil
		}
		fn, err := c.node(f.Type(), sub, depth+1)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name(), err)
		}
		if skip {
			// Shallow copy: the node may be shared (memoized) and must not
			// be marked skipped where it is kept.
			cp := *fn
			cp.skip = true
			fn = &cp
		} else {
			n.keep++
		}
		n.fields = append(n.fields, field{name: f.Name(), n: fn})
		n.minSize += fn.minSize
	}
	names := make([]string, len(n.fields))
	for i, f := range n.fields {
		names[i] = f.name
	}
	n.rtype = newRecordType(rs.FullName(), names)
	return n, nil
}

// observe records the counts of a successful decode, capped at 1<<16. A
// count above the hint replaces it at once; a smaller one keeps the hint
// until it falls below three quarters of it, then replaces it, so one
// outlier does not size every later slab but small dips do not shrink it.
func (h *hint) observe(s *slabs, records bool) {
	set := func(a *atomic.Int32, n int) {
		old := int(a.Load())
		if n > old || n < old*3/4 {
			a.Store(int32(min(n, 1<<16)))
		}
	}
	set(&h.nStr, s.nStr)
	set(&h.nInt, s.nInt)
	set(&h.nTime, s.nTime)
	if records {
		set(&h.nRec, s.nRec)
		set(&h.nVal, s.nVal)
		set(&h.nText, s.nText)
	}
}
