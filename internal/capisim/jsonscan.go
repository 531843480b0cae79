package capisim

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, strict JSON scanner. The simulator does not decode requests with
// encoding/json: it walks the bytes once, checks every field where it stands
// and keeps only what the checks and the dedup key need. That is strict where
// encoding/json is lenient (duplicate keys, invalid UTF-8, integers written as
// 1e3 or 2.0 are rejected) and costs no reflection.

// maxDepth bounds nesting inside values the simulator does not interpret
// (custom data properties, ignored unknown fields).
const maxDepth = 1000

// syntaxError is malformed JSON at byte offset off.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.off, e.msg)
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(msg string) error { return &syntaxError{off: s.i, msg: msg} }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, 0 at the end of input.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// kindOf names the JSON type of a value starting with byte c, for error
// messages. Callers check isValueStart(c) first.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// nextKey reads the next key of an object whose '{' is consumed. first is
// true for the first call. It returns ok=false after consuming '}'.
func (s *scanner) nextKey(first bool) (key []byte, ok bool, err error) {
	c := s.peek()
	if c == '}' {
		s.i++
		return nil, false, nil
	}
	if !first {
		if c != ',' {
			if c == 0 {
				return nil, false, s.fail("unexpected end of input in object")
			}
			return nil, false, s.fail("expected ',' or '}' in object")
		}
		s.i++
		c = s.peek()
	}
	if c != '"' {
		if c == 0 {
			return nil, false, s.fail("unexpected end of input in object")
		}
		return nil, false, s.fail("expected a string key in object")
	}
	key, err = s.str()
	if err != nil {
		return nil, false, err
	}
	if s.peek() != ':' {
		return nil, false, s.fail("expected ':' after object key")
	}
	s.i++
	return key, true, nil
}

// nextElem prepares the next element of an array whose '[' is consumed. It
// returns false after consuming ']'.
func (s *scanner) nextElem(first bool) (bool, error) {
	c := s.peek()
	if c == ']' {
		s.i++
		return false, nil
	}
	if !first {
		if c != ',' {
			if c == 0 {
				return false, s.fail("unexpected end of input in array")
			}
			return false, s.fail("expected ',' or ']' in array")
		}
		s.i++
		if s.peek() == ']' {
			return false, s.fail("trailing ',' in array")
		}
	}
	if s.peek() == 0 {
		return false, s.fail("unexpected end of input in array")
	}
	return true, nil
}

// str reads a string starting at '"'. Without escapes it returns a view into
// the input (no allocation); with escapes, a decoded copy.
func (s *scanner) str() ([]byte, error) {
	raw, escaped, err := s.scanStr()
	if err != nil || !escaped {
		return raw, err
	}
	return unescape(raw), nil
}

// skipStr checks a string without decoding it.
func (s *scanner) skipStr() error {
	_, _, err := s.scanStr()
	return err
}

// scanStr checks the string starting at '"' and moves past it. It returns
// the bytes between the quotes, undecoded, and whether they hold escapes.
func (s *scanner) scanStr() (raw []byte, escaped bool, err error) {
	s.i++ // opening quote
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		for s.i < len(s.b) && plainASCII[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return nil, false, &syntaxError{off: start, msg: "invalid UTF-8 in string"}
			}
			return raw, escaped, nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, false, s.fail("unexpected end of input in string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+5 >= len(s.b) || !isHex(s.b[s.i+2]) || !isHex(s.b[s.i+3]) || !isHex(s.b[s.i+4]) || !isHex(s.b[s.i+5]) {
					return nil, false, s.fail(`invalid \u escape in string`)
				}
				s.i += 6
			default:
				return nil, false, s.fail("invalid escape in string")
			}
			escaped = true
			continue
		case c < 0x20:
			return nil, false, s.fail("control character in string")
		case c >= 0x80:
			ascii = false
		}
		s.i++
	}
	return nil, false, s.fail("unexpected end of input in string")
}

// plainASCII marks the bytes that need no attention inside a string.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	default:
		return rune(c-'A') + 10
	}
}

// unescape decodes a syntactically checked string body. Unpaired surrogates
// become U+FFFD, as in encoding/json.
func unescape(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			out = append(out, raw[i+1])
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
			r := hexVal(raw[i+2])<<12 | hexVal(raw[i+3])<<8 | hexVal(raw[i+4])<<4 | hexVal(raw[i+5])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+5 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 := hexVal(raw[i+2])<<12 | hexVal(raw[i+3])<<8 | hexVal(raw[i+4])<<4 | hexVal(raw[i+5])
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						out = utf8.AppendRune(out, d)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		}
		i += 2
	}
	return out
}

// number reads a JSON number and reports whether it is written as an integer
// (no fraction, no exponent).
func (s *scanner) number() (raw []byte, isInt bool, err error) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return nil, false, s.fail("invalid number")
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	default:
		return nil, false, s.fail("invalid number")
	}
	isInt = true
	if s.i < len(s.b) && s.b[s.i] == '.' {
		isInt = false
		s.i++
		if !s.digits() {
			return nil, false, s.fail("invalid number: digit expected after '.'")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		isInt = false
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return nil, false, s.fail("invalid number: digit expected in exponent")
		}
	}
	if s.i < len(s.b) {
		// A number must end at a delimiter: "12a" or "01" is malformed.
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r', ',', '}', ']':
		default:
			return nil, false, s.fail("invalid number")
		}
	}
	return s.b[start:s.i], isInt, nil
}

func (s *scanner) digits() bool {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n > 0
}

// parseInt64 converts an integer literal checked by number.
func parseInt64(raw []byte) (int64, bool) {
	neg := false
	if raw[0] == '-' {
		neg = true
		raw = raw[1:]
	}
	var u uint64
	for _, c := range raw {
		d := uint64(c - '0')
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + d
		if u > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true // -(1<<63) wraps to itself, which is right
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// literal reads true, false or null.
func (s *scanner) literal() (byte, error) {
	rest := s.b[s.i:]
	var lit string
	switch s.b[s.i] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	case 'n':
		lit = "null"
	}
	if lit == "" || len(rest) < len(lit) || string(rest[:len(lit)]) != lit {
		return 0, s.fail("invalid literal")
	}
	s.i += len(lit)
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r', ',', '}', ']':
		default:
			return 0, s.fail("invalid literal")
		}
	}
	return lit[0], nil
}

// skip checks and skips one value of any type. depth is the nesting level of
// the value; deeper than maxDepth is rejected.
func (s *scanner) skip(depth int) error {
	switch c := s.peek(); c {
	case 0:
		return s.fail("unexpected end of input, value expected")
	case '{':
		if depth >= maxDepth {
			return s.fail("nesting too deep")
		}
		s.i++
		for first := true; ; first = false {
			_, ok, err := s.nextKey(first)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case '[':
		if depth >= maxDepth {
			return s.fail("nesting too deep")
		}
		s.i++
		for first := true; ; first = false {
			ok, err := s.nextElem(first)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case '"':
		return s.skipStr()
	case 't', 'f', 'n':
		_, err := s.literal()
		return err
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			_, _, err := s.number()
			return err
		}
		return s.fail("invalid character, value expected")
	}
}
