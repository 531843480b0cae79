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
	// counts of the values boxed, to size the next decode's slabs.
	nStr, nInt, nTime int
}

func (s *slabs) boxStr(v string) any {
	if len(s.strs) == cap(s.strs) {
		s.strs = make([]string, 0, max(8, s.nStr/2))
	}
	s.nStr++
	s.strs = append(s.strs, v)
	return makeIface(stringType, unsafe.Pointer(&s.strs[len(s.strs)-1]))
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
