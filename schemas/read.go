package schemas

import (
	"errors"
	"math"
	"strconv"
	"unsafe"
)

// reader reads the Avro binary encoding from one payload. Errors are sticky:
// the first one is kept in err and every later read returns zero values, so
// the decoder checks once per value it builds rather than after every read.
type reader struct {
	// b is the payload, which decoded strings alias (see str).
	b   []byte
	pos int
	err error
	// max is the largest string or bytes value accepted (MaxByteSliceSize).
	max int
}

var (
	errEOF       = errors.New("unexpected end of payload")
	errVarint    = errors.New("malformed varint")
	errNegLen    = errors.New("negative length")
	errUnionIdx  = errors.New("union branch index out of range")
	errEnumIdx   = errors.New("enum symbol index out of range")
	errBool      = errors.New("boolean byte is neither 0 nor 1")
	errBlockSize = errors.New("array or map block count out of range")
	errDepth     = errors.New("value nested too deeply")
)

// tooLargeError is a string or bytes value over the configured limit.
type tooLargeError struct{ n, max int64 }

func (e *tooLargeError) Error() string {
	return "string or bytes value of " + strconv.FormatInt(e.n, 10) + " bytes exceeds the limit of " +
		strconv.FormatInt(e.max, 10) + " bytes (schemas.MaxByteSliceSize)"
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.b) // stop every later read
}

// long reads a zig-zag varint of at most 10 bytes.
func (r *reader) long() int64 {
	var u uint64
	var shift uint
	for i := 0; i < 10; i++ {
		if r.pos >= len(r.b) {
			r.fail(errEOF)
			return 0
		}
		c := r.b[r.pos]
		r.pos++
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1)
		}
		shift += 7
	}
	r.fail(errVarint)
	return 0
}

// int reads an Avro int (a varint that must fit 32 bits).
func (r *reader) int() int32 {
	n := r.long()
	if n < math.MinInt32 || n > math.MaxInt32 {
		r.fail(errVarint)
		return 0
	}
	return int32(n)
}

// index reads a union branch or enum symbol index (a long) and checks that
// 0 ≤ i < n; out of range, it fails with bad. ok is false after any failure.
func (r *reader) index(n int, bad error) (i int, ok bool) {
	l := r.long()
	if r.err != nil {
		return 0, false
	}
	if l < 0 || l >= int64(n) {
		r.fail(bad)
		return 0, false
	}
	return int(l), true
}

func (r *reader) bool() bool {
	if r.pos >= len(r.b) {
		r.fail(errEOF)
		return false
	}
	c := r.b[r.pos]
	r.pos++
	if c > 1 {
		r.fail(errBool)
		return false
	}
	return c == 1
}

func (r *reader) float() float32 {
	if len(r.b)-r.pos < 4 {
		r.fail(errEOF)
		return 0
	}
	b := r.b[r.pos:]
	r.pos += 4
	return math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

func (r *reader) double() float64 {
	if len(r.b)-r.pos < 8 {
		r.fail(errEOF)
		return 0
	}
	b := r.b[r.pos:]
	r.pos += 8
	return math.Float64frombits(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56)
}

// span reads a length-prefixed value and returns it without copying.
func (r *reader) span() []byte {
	n := r.long()
	if r.err != nil {
		return nil
	}
	if n < 0 {
		r.fail(errNegLen)
		return nil
	}
	if r.max > 0 && n > int64(r.max) {
		r.fail(&tooLargeError{n: n, max: int64(r.max)})
		return nil
	}
	if n > int64(len(r.b)-r.pos) {
		r.fail(errEOF)
		return nil
	}
	s := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return s
}

// fixed returns the next n bytes without copying.
func (r *reader) fixed(n int) []byte {
	if n > len(r.b)-r.pos {
		r.fail(errEOF)
		return nil
	}
	s := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return s
}

// str returns the next string. It aliases the payload: Schema.decode reads a
// private copy that nothing modifies; DecodeRecordIn reads the caller's
// buffer, which the caller must leave alone while such a string is in use.
func (r *reader) str() string {
	b := r.span()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// bytes returns the next bytes value as a fresh slice the caller may keep.
func (r *reader) bytes() []byte {
	b := r.span()
	if r.err != nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// blockCount reads an array or map block header. It returns the number of
// items in the block (0 at the end of the array or map). A negative count is
// followed by the block's byte size, which is read and ignored here.
func (r *reader) blockCount() int {
	n := r.long()
	if n < 0 {
		if n == math.MinInt64 {
			r.fail(errBlockSize)
			return 0
		}
		n = -n
		r.long() // byte size of the block
	}
	// Every item takes at least one byte, except items of a zero-size type
	// (null, an empty record, fixed(0)); bounding by the bytes left would
	// reject those, so bound by a generous constant instead.
	if n > math.MaxInt32 {
		r.fail(errBlockSize)
		return 0
	}
	return int(n)
}

// skipBlock reads a block header and, when the writer gave the block's
// byte size (negative count), skips the whole block at once and returns -1.
func (r *reader) skipBlock() (items int) {
	n := r.long()
	if n >= 0 {
		if n > math.MaxInt32 {
			r.fail(errBlockSize)
			return 0
		}
		return int(n)
	}
	if n == math.MinInt64 {
		r.fail(errBlockSize)
		return 0
	}
	size := r.long()
	if size < 0 || size > int64(len(r.b)-r.pos) {
		r.fail(errEOF)
		return 0
	}
	r.pos += int(size)
	return -1
}
