package mapping

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON decodes a JSON document into the tree expressions read:
// map[string]any, []any, string, bool, nil, int64 for integer literals that
// fit (so ids and minor-unit amounts stay exact) and float64 for the other
// numbers (see money.minor for how a float64 amount is read exactly).
//
// When need is not nil, the members of objects that no rule reads are
// skipped: scanned for well-formed strings and matching brackets but not
// decoded (and not allocated). The decoded tree then holds only the keys the
// rules read, which is all expressions can observe.
func decodeJSON(data []byte, need *need) (any, error) {
	// One copy of the input: strings without escapes are substrings of it,
	// which saves an allocation per string (they keep the copy alive while
	// any of them is referenced, e.g. by an event's id).
	d := jsonDecoder{data: data, src: string(data)}
	d.ws()
	v, err := d.value(need, 0)
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.pos != len(d.data) {
		return nil, d.errf("unexpected data after the top-level value")
	}
	return v, nil
}

// DecodeJSON decodes a JSON document into the tree MapValue takes (see Map
// for the number types). It decodes everything; Map decodes only the keys
// the rules read.
func DecodeJSON(data []byte) (any, error) { return decodeJSON(data, nil) }

type jsonDecoder struct {
	data []byte
	src  string // string(data)
	pos  int
}

const maxDepth = 512

func (d *jsonDecoder) errf(msg string) error {
	return errors.New("invalid JSON at byte " + strconv.Itoa(d.pos) + ": " + msg)
}

func (d *jsonDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(need *need, depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.errf("nested too deeply")
	}
	if d.pos >= len(d.data) {
		return nil, d.errf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(need, depth)
	case c == '[':
		return d.array(need, depth)
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	default:
		return nil, d.errf("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func (d *jsonDecoder) lit(s string) error {
	if len(d.data)-d.pos < len(s) || string(d.data[d.pos:d.pos+len(s)]) != s {
		return d.errf("invalid literal")
	}
	d.pos += len(s)
	return nil
}

func (d *jsonDecoder) object(nd *need, depth int) (any, error) {
	d.pos++ // {
	full := nd == nil || nd.all
	size := 8
	if !full {
		size = len(nd.keys)
	}
	m := make(map[string]any, size)
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		d.ws()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errf("expected a string key")
		}
		kb, esc, err := d.rawString()
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errf("expected ':' after a key")
		}
		d.pos++
		d.ws()
		var key string
		var child *need
		keep := full
		if esc {
			if key, err = unescape(kb); err != nil {
				return nil, d.errf(err.Error())
			}
		}
		if !full {
			if esc {
				child, keep = nd.keys[key]
			} else {
				child, keep = nd.keys[string(kb)]
			}
		}
		if keep {
			if child != nil {
				key = child.name
			} else if !esc {
				key = d.src[d.off(kb) : d.off(kb)+len(kb)]
			}
			v, err := d.value(child, depth+1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		} else if err := d.skip(depth + 1); err != nil {
			return nil, err
		}
		d.ws()
		if d.pos >= len(d.data) {
			return nil, d.errf("unexpected end of input in an object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return m, nil
		default:
			return nil, d.errf("expected ',' or '}' in an object")
		}
	}
}

func (d *jsonDecoder) array(need *need, depth int) (any, error) {
	d.pos++ // [
	l := make([]any, 0, 4)
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return l, nil
	}
	for {
		d.ws()
		v, err := d.value(need, depth+1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		d.ws()
		if d.pos >= len(d.data) {
			return nil, d.errf("unexpected end of input in an array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return l, nil
		default:
			return nil, d.errf("expected ',' or ']' in an array")
		}
	}
}

// rawString scans a string at d.pos and returns its raw bytes (between the
// quotes) and whether it has escapes.
func (d *jsonDecoder) rawString() ([]byte, bool, error) {
	d.pos++ // "
	start := d.pos
	esc := false
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			b := d.data[start:d.pos]
			d.pos++
			return b, esc, nil
		case c == '\\':
			esc = true
			d.pos += 2
		case c < 0x20:
			return nil, false, d.errf("control character in a string")
		default:
			d.pos++
		}
	}
	return nil, false, d.errf("unterminated string")
}

func (d *jsonDecoder) str() (any, error) {
	b, esc, err := d.rawString()
	if err != nil {
		return nil, err
	}
	if !esc {
		if !utf8.Valid(b) {
			return string([]rune(string(b))), nil // invalid bytes become U+FFFD
		}
		o := d.off(b)
		return d.src[o : o+len(b)], nil
	}
	s, err := unescape(b)
	if err != nil {
		return nil, d.errf(err.Error())
	}
	return s, nil
}

// off returns the offset of b, a subslice of d.data, in d.data.
func (d *jsonDecoder) off(b []byte) int {
	return cap(d.data) - cap(b)
}

func unescape(b []byte) (string, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(b) {
			return "", errors.New("bad escape")
		}
		switch b[i] {
		case '"', '\\', '/':
			out = append(out, b[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b[i+1:])
			if !ok {
				return "", errors.New("bad \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(utf8.RuneError)
				if i+2 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
					if x, ok := hex4(b[i+3:]); ok {
						if dec := utf16.DecodeRune(r, x); dec != utf8.RuneError {
							r2 = dec
							i += 6
						}
					}
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", errors.New("bad escape \\" + string(b[i]))
		}
	}
	if !utf8.Valid(out) {
		return string([]rune(string(out))), nil
	}
	return string(out), nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (d *jsonDecoder) number() (any, error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	intStart := d.pos
	if digits() == 0 {
		return nil, d.errf("invalid number")
	}
	if d.data[intStart] == '0' && d.pos-intStart > 1 {
		return nil, d.errf("invalid number (leading zero)")
	}
	isInt := true
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		isInt = false
		if digits() == 0 {
			return nil, d.errf("invalid number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		isInt = false
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, d.errf("invalid number")
		}
	}
	text := d.data[start:d.pos]
	if isInt && len(text) <= 18 {
		var n int64
		neg := text[0] == '-'
		for _, c := range text[btoi(neg):] {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	if isInt {
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil && !math.IsInf(f, 0) {
		return nil, d.errf("invalid number")
	}
	return f, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// skip scans over one value without decoding it.
func (d *jsonDecoder) skip(depth int) error {
	if d.pos >= len(d.data) {
		return d.errf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, _, err := d.rawString()
		return err
	case c == '{' || c == '[':
		// The open levels, one bit each (set: opened with '['), so that a
		// skipped part is rejected for mismatched brackets as a decoded one
		// is. depth+level <= maxDepth bounds level.
		var arrays [maxDepth/64 + 1]uint64
		level := 0
		for d.pos < len(d.data) {
			switch b := d.data[d.pos]; b {
			case '{', '[':
				level++
				if depth+level > maxDepth {
					return d.errf("nested too deeply")
				}
				if b == '[' {
					arrays[level/64] |= 1 << (level % 64)
				} else {
					arrays[level/64] &^= 1 << (level % 64)
				}
				d.pos++
			case '}', ']':
				if isArray := arrays[level/64]&(1<<(level%64)) != 0; isArray != (b == ']') {
					return d.errf("mismatched " + strconv.QuoteRune(rune(b)))
				}
				level--
				d.pos++
				if level == 0 {
					return nil
				}
			case '"':
				if _, _, err := d.rawString(); err != nil {
					return err
				}
			default:
				d.pos++
			}
		}
		return d.errf("unexpected end of input")
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.number()
		return err
	}
	return d.errf("unexpected character " + strconv.QuoteRune(rune(d.data[d.pos])))
}
