package schemas

import (
	"time"
	"unsafe"
)

// Boxing without an allocation per value.
//
// Storing a string, int64 or time.Time in an `any` copies the value to a new
// heap object (a string's header is 16 bytes, a time.Time 24): for a typical
// order that is two dozen allocations, about half of the decoder's. The
// decoder instead appends the values of one record to a few slabs (one
// backing array per type, sized from the previous record of the same
// program) and builds each interface value pointing at its slab element,
// which is exactly the representation the runtime would have built, minus
// the allocation. This is sound because:
//
//   - an interface's data word is an ordinary pointer the garbage collector
//     follows; an interior pointer into a slab keeps the slab alive;
//   - slab elements are written once, before their interface value exists,
//     and never again (a full slab is replaced, not reused), so the boxed
//     values are as immutable as the runtime's own boxes;
//   - the layout of an empty interface (type word, data word) is the one
//     reflect and every reflection library (reflect2, used by hamba/avro)
//     rely on; TestBoxing in box_test.go checks it on every platform the tests
//     run on.

// eface is the layout of an empty interface.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

func typeWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).typ }

var (
	stringType = typeWord("")
	int64Type  = typeWord(int64(0))
	timeType   = typeWord(time.Time{})
	listType   = typeWord([]any(nil))
)

func makeIface(typ, data unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, data
	return v
}

// slabs hold the boxed values of one decode.
type slabs struct {
	strs  []string
	ints  []int64
	times []time.Time
	// recs and vals hold the records of a DecodeRecord and their fields.
	recs []Record
	vals []any
	// text holds the decimal strings (DecodeRecord: the spare capacity of
	// the payload copy).
	text []byte
	// counts of the values boxed, to size the next decode's slabs.
	nStr, nInt, nTime, nRec, nVal, nText int
}

// newRecord returns a record of type t with n absent fields, from the slabs:
// the records of one decode take two allocations in all, not one map each.
func (s *slabs) newRecord(t *RecordType, n int) *Record {
	r := s.allocRecord()
	r.T, r.V = t, s.takeVals(n)
	return r
}

// allocRecord returns a zero record from the recs slab (zeroed, as an
// Arena's slab holds the records of its previous value).
func (s *slabs) allocRecord() *Record {
	if len(s.recs) == cap(s.recs) {
		s.recs = make([]Record, 0, max(4, s.nRec/2))
	}
	s.nRec++
	s.recs = s.recs[:len(s.recs)+1]
	r := &s.recs[len(s.recs)-1]
	*r = Record{}
	return r
}

// takeVals returns n nil values from the vals slab (capacity n: an append
// to them copies).
func (s *slabs) takeVals(n int) []any {
	if cap(s.vals)-len(s.vals) < n {
		s.vals = make([]any, 0, max(n, 16, s.nVal/2))
	}
	s.nVal += n
	l := len(s.vals)
	s.vals = s.vals[:l+n]
	v := s.vals[l : l+n : l+n]
	clear(v) // an Arena's slab holds its previous value
	return v
}

// boxList boxes an array's []any with its slice header in the recs slab (a
// Record's V, with no type: never seen as a Record), instead of a new
// 24-byte heap object.
func (s *slabs) boxList(l []any) any {
	r := s.allocRecord()
	r.V = l
	return makeIface(listType, unsafe.Pointer(&r.V))
}

func (s *slabs) boxStr(v string) any {
	if len(s.strs) == cap(s.strs) {
		s.strs = make([]string, 0, max(8, s.nStr/2))
	}
	s.nStr++
	s.strs = append(s.strs, v)
	return makeIface(stringType, unsafe.Pointer(&s.strs[len(s.strs)-1]))
}

// boxDecimal boxes the decimal string of b (see formatDecimal), written to
// the text slab: the decimals of one decode share one allocation. Like the
// other slabs, text is append-only, so a string never changes.
func (s *slabs) boxDecimal(b []byte, scale int) any {
	var buf [64]byte
	d := appendDecimal(buf[:0], b, scale) // never empty: at least "0"
	if cap(s.text)-len(s.text) < len(d) {
		s.text = make([]byte, 0, max(64, len(d)))
	}
	l := len(s.text)
	s.nText += len(d)
	s.text = append(s.text, d...)
	return s.boxStr(unsafe.String(&s.text[l], len(d)))
}

func (s *slabs) boxInt(v int64) any {
	if v >= 0 && v < 256 {
		return v // the runtime boxes small values without allocating
	}
	if len(s.ints) == cap(s.ints) {
		s.ints = make([]int64, 0, max(4, s.nInt/2))
	}
	s.nInt++
	s.ints = append(s.ints, v)
	return makeIface(int64Type, unsafe.Pointer(&s.ints[len(s.ints)-1]))
}

func (s *slabs) boxTime(v time.Time) any {
	if len(s.times) == cap(s.times) {
		s.times = make([]time.Time, 0, max(2, s.nTime/2))
	}
	s.nTime++
	s.times = append(s.times, v)
	return makeIface(timeType, unsafe.Pointer(&s.times[len(s.times)-1]))
}

// Arena is reusable memory for the values of Decoder.DecodeRecordIn: the
// slabs of records, field lists and boxed strings, integers and times of
// one value, emptied and refilled by the next. It holds the memory of the
// largest value decoded in it (and, until it is reused, keeps its last
// value's payload reachable). See DecodeRecordIn for what stays valid when.
type Arena struct {
	strs  []string
	ints  []int64
	times []time.Time
	recs  []Record
	vals  []any
}

// Reset drops the arena's memory; the next decode starts from scratch.
// Values decoded in it stay valid (they keep what they use reachable).
func (a *Arena) Reset() { *a = Arena{} }

// take returns a's slabs, emptied, for one decode.
func (a *Arena) take() slabs {
	return slabs{strs: a.strs[:0], ints: a.ints[:0], times: a.times[:0], recs: a.recs[:0], vals: a.vals[:0]}
}

// keep sizes a's slabs for the next decode after one that used s: a slab
// that overflowed is replaced by one that holds all of s's values; the
// others are kept.
func (a *Arena) keep(s *slabs) {
	if s.nStr > cap(a.strs) {
		a.strs = make([]string, 0, s.nStr)
	}
	if s.nInt > cap(a.ints) {
		a.ints = make([]int64, 0, s.nInt)
	}
	if s.nTime > cap(a.times) {
		a.times = make([]time.Time, 0, s.nTime)
	}
	if s.nRec > cap(a.recs) {
		a.recs = make([]Record, 0, s.nRec)
	}
	if s.nVal > cap(a.vals) {
		a.vals = make([]any, 0, s.nVal)
	}
}
