package schemas

import (
	"math/big"
	"strconv"
	"time"
)

// state is one decode: the reader and the slabs of its boxed values.
type state struct {
	reader
	slabs
	// records makes records *Record instead of map[string]any.
	records bool
}

// decodeNode decodes one value of n from r into the tree shape of this
// package (see the package documentation). nil stands for an Avro null; the
// record and map cases drop nil values, so that a null field is absent.
func decodeNode(r *state, n *node, depth int) any {
	switch n.op {
	case opNull:
		return nil
	case opString:
		return r.boxStr(r.str())
	case opLong:
		return r.boxInt(r.long())
	case opInt:
		return r.boxInt(int64(r.int()))
	case opRecord:
		if depth > maxDepth {
			r.fail(errDepth)
			return nil
		}
		if r.records {
			rec := r.newRecord(n.rtype, len(n.fields))
			for i := range n.fields {
				f := &n.fields[i]
				if f.n.skip {
					skipNode(r, f.n, depth+1)
					continue
				}
				rec.V[i] = decodeNode(r, f.n, depth+1) // nil (null): absent
			}
			if r.err != nil {
				return nil
			}
			return rec
		}
		m := make(map[string]any, n.keep)
		for i := range n.fields {
			f := &n.fields[i]
			if f.n.skip {
				skipNode(r, f.n, depth+1)
				continue
			}
			if v := decodeNode(r, f.n, depth+1); v != nil {
				m[f.name] = v
			}
		}
		if r.err != nil {
			return nil
		}
		return m
	case opUnion:
		i, ok := r.index(len(n.branches), errUnionIdx)
		if !ok {
			return nil
		}
		return decodeNode(r, n.branches[i], depth)
	case opArray:
		if depth > maxDepth {
			r.fail(errDepth)
			return nil
		}
		var out []any
		for {
			c := r.blockCount()
			if r.err != nil {
				return nil
			}
			if c == 0 {
				break
			}
			if !r.plausible(c, n.elem.minSize, len(out)) {
				return nil
			}
			if out == nil {
				if r.records {
					out = r.takeVals(c)[:0]
				} else {
					out = make([]any, 0, c)
				}
			}
			for ; c > 0; c-- {
				out = append(out, decodeNode(r, n.elem, depth+1))
			}
			if r.err != nil {
				return nil
			}
		}
		if out == nil {
			out = []any{}
		}
		if r.records {
			return r.boxList(out)
		}
		return out
	case opMap:
		if depth > maxDepth {
			r.fail(errDepth)
			return nil
		}
		var m map[string]any
		for {
			c := r.blockCount()
			if r.err != nil {
				return nil
			}
			if c == 0 {
				break
			}
			if !r.plausible(c, 1+n.elem.minSize, len(m)) {
				return nil
			}
			if m == nil {
				m = make(map[string]any, c)
			}
			for ; c > 0; c-- {
				k := r.str()
				if v := decodeNode(r, n.elem, depth+1); v != nil {
					m[k] = v
				}
			}
			if r.err != nil {
				return nil
			}
		}
		if m == nil {
			m = map[string]any{}
		}
		return m
	case opBool:
		return r.bool()
	case opFloat:
		return float64(r.float())
	case opDouble:
		return r.double()
	case opBytes:
		return r.bytes()
	case opFixed:
		b := r.fixed(n.size)
		if r.err != nil {
			return nil
		}
		return append([]byte(nil), b...)
	case opEnum:
		i, ok := r.index(len(n.symbolsAny), errEnumIdx)
		if !ok {
			return nil
		}
		return n.symbolsAny[i]
	case opDecimalBytes:
		b := r.span()
		if r.err != nil {
			return nil
		}
		return r.boxDecimal(b, n.scale)
	case opDecimalFixed:
		b := r.fixed(n.size)
		if r.err != nil {
			return nil
		}
		return r.boxDecimal(b, n.scale)
	case opTimestampMillis:
		return r.boxTime(time.UnixMilli(r.long()).UTC())
	case opTimestampMicros:
		return r.boxTime(time.UnixMicro(r.long()).UTC())
	case opDate:
		return r.boxTime(time.Unix(int64(r.int())*86400, 0).UTC())
	case opTimeMillis:
		return r.boxInt(int64(r.int()))
	case opTimeMicros:
		return r.boxInt(r.long())
	}
	r.fail(errUnionIdx) // unreachable: compile rejects unknown types
	return nil
}

// plausible checks an array or map block count against the bytes left, so a
// few corrupt bytes cannot make the decoder allocate or loop without bound.
// have is the number of items already decoded in earlier blocks.
func (r *reader) plausible(c, minSize, have int) bool {
	left := len(r.b) - r.pos
	if minSize > 0 {
		if c > left/minSize {
			r.fail(errEOF)
			return false
		}
		return true
	}
	// Zero-size items (nulls, empty records): cap the total count.
	if c+have > maxZeroSizeItems {
		r.fail(errBlockSize)
		return false
	}
	return true
}

// maxZeroSizeItems caps arrays of zero-byte items (e.g. an array of nulls),
// which the payload size cannot bound.
const maxZeroSizeItems = 1 << 16

// skipNode reads past one value of n without building it.
func skipNode(r *state, n *node, depth int) {
	switch n.op {
	case opNull:
	case opBool:
		r.bool()
	case opLong, opTimestampMillis, opTimestampMicros, opTimeMicros:
		r.long()
	case opInt, opDate, opTimeMillis:
		r.int()
	case opEnum:
		r.index(len(n.symbolsAny), errEnumIdx)
	case opFloat:
		r.fixed(4)
	case opDouble:
		r.fixed(8)
	case opString, opBytes, opDecimalBytes:
		r.span()
	case opFixed, opDecimalFixed:
		r.fixed(n.size)
	case opRecord:
		if depth > maxDepth {
			r.fail(errDepth)
			return
		}
		for i := range n.fields {
			skipNode(r, n.fields[i].n, depth+1)
		}
	case opUnion:
		if i, ok := r.index(len(n.branches), errUnionIdx); ok {
			skipNode(r, n.branches[i], depth)
		}
	case opArray, opMap:
		if depth > maxDepth {
			r.fail(errDepth)
			return
		}
		total := 0
		for r.err == nil {
			c := r.skipBlock()
			if c == 0 || r.err != nil {
				return
			}
			if c < 0 {
				continue // skipped by byte size
			}
			per := n.elem.minSize
			if n.op == opMap {
				per++
			}
			if !r.plausible(c, per, total) {
				return
			}
			total += c
			for ; c > 0 && r.err == nil; c-- {
				if n.op == opMap {
					r.span()
				}
				skipNode(r, n.elem, depth+1)
			}
		}
	}
}

// formatDecimal renders the two's-complement big-endian unscaled value b with
// scale digits after the point: exact, e.g. ([]byte{0x32,0xc6}, 2) → "129.98",
// (0xff, 2) → "-0.01", (0x00, 0) → "0". An empty b is zero.
func formatDecimal(b []byte, scale int) string {
	var buf [64]byte
	return string(appendDecimal(buf[:0], b, scale))
}

// appendDecimal appends formatDecimal(b, scale) to out.
func appendDecimal(out, b []byte, scale int) []byte {
	var digits []byte
	neg := false
	if len(b) <= 8 {
		var v int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			v = -1
		}
		for _, c := range b {
			v = v<<8 | int64(c)
		}
		neg = v < 0
		u := uint64(v)
		if neg {
			u = -u // two's complement magnitude; exact even for MinInt64
		}
		var buf [24]byte
		digits = strconv.AppendUint(buf[:0], u, 10)
	} else {
		x := new(big.Int).SetBytes(b)
		if b[0]&0x80 != 0 {
			x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			neg = true
			x.Neg(x)
		}
		digits = x.Append(nil, 10)
	}
	if scale <= 0 {
		if neg {
			out = append(out, '-')
		}
		return append(out, digits...)
	}
	// Pad to at least scale+1 digits: 5 with scale 2 is "0.05".
	pad := max(scale+1-len(digits), 0)
	if neg {
		out = append(out, '-')
	}
	intLen := len(digits) + pad - scale
	for i := 0; i < pad+len(digits); i++ {
		if i == intLen {
			out = append(out, '.')
		}
		if i < pad {
			out = append(out, '0')
		} else {
			out = append(out, digits[i-pad])
		}
	}
	return out
}
