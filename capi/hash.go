package capi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IdentityField names a hashed user field, for Hasher's per-field policy.
type IdentityField uint8

// The hashed identity fields.
const (
	FieldEmail IdentityField = iota
	FieldPhone
	FieldExternalID
	FieldFirstName
	FieldLastName
	numIdentityFields
)

var identityFieldNames = [numIdentityFields]string{"email", "phone", "external_id", "first_name", "last_name"}

// String returns the field's name as used in rule files ("email", "phone", ...).
func (f IdentityField) String() string {
	if f < numIdentityFields {
		return identityFieldNames[f]
	}
	return "unknown"
}

// PrehashedPolicy says what Hasher does with an input that already looks like a
// SHA-256 (64 hex characters).
type PrehashedPolicy uint8

const (
	// PrehashedAccept passes a 64-hex input through, lowercased, as the hash.
	// It is the default for email, phone and names: none of them can look like
	// 64 hex characters once normalized, so the input can only be a hash.
	PrehashedAccept PrehashedPolicy = iota
	// PrehashedReject makes a 64-hex input an error (the relay then
	// dead-letters the record): for deployments that require raw identities
	// so that the relay's normalization is the only one applied.
	PrehashedReject
	// PrehashedAsRaw treats a 64-hex input as a raw value and hashes it like
	// any other. It is the default for external ids, which are opaque: a
	// customer id may legitimately be a 64-hex string (itself a digest), and
	// the browser pixel hashes the same raw id.
	PrehashedAsRaw
)

// Hasher normalizes and hashes identity fields exactly as the API documents.
// The zero Hasher uses the default policies (see PrehashedPolicy). A Hasher is
// safe for concurrent use.
type Hasher struct {
	// Policy overrides the pre-hashed policy per field. A field absent from the
	// map keeps its default.
	Policy map[IdentityField]PrehashedPolicy
}

// PolicyFor returns the policy in effect for f.
func (h *Hasher) PolicyFor(f IdentityField) PrehashedPolicy {
	if p, ok := h.Policy[f]; ok {
		return p
	}
	if f == FieldExternalID {
		return PrehashedAsRaw
	}
	return PrehashedAccept
}

// Errors of Hasher.Hash. They carry no part of the input: identities must not
// reach logs or dead-letter headers.
var (
	ErrEmptyIdentity   = errors.New("empty after normalization")
	ErrPhoneDigits     = errors.New("phone number must have 8 to 15 digits after normalization")
	ErrPhoneCharacters = errors.New("phone number may hold only digits, spaces, '(', ')', '.', '-' and a leading '+'")
	ErrPrehashed       = errors.New("looks like a SHA-256 hash, and this field's policy rejects pre-hashed input")
)

// Hash normalizes raw per the field's rule and returns the lowercase hex
// SHA-256 of the result:
//
//	email:       trim, lowercase
//	phone:       drop whitespace ( ) . -, then a leading '+' and leading zeros;
//	             8 to 15 digits must remain (country code kept)
//	external_id: trim, case kept
//	names:       lowercase (Unicode), drop all whitespace and ASCII
//	             punctuation, keep non-ASCII letters ("O'Connor" → "oconnor")
//
// An input that is already 64 hex characters is handled per PolicyFor.
func (h *Hasher) Hash(f IdentityField, raw string) (string, error) {
	var buf [64]byte
	out, err := h.AppendHash(buf[:0], f, raw)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// AppendHash is Hash appending the 64 lowercase hex characters to dst: the
// same result without allocating (for input up to a few hundred bytes). On
// error dst is returned unchanged.
func (h *Hasher) AppendHash(dst []byte, f IdentityField, raw string) ([]byte, error) {
	if looksHashed(raw) {
		switch h.PolicyFor(f) {
		case PrehashedAccept:
			// 64 ASCII hex digits: lowercasing them is strings.ToLower.
			return appendLowerASCII(dst, strings.TrimSpace(raw)), nil
		case PrehashedReject:
			return dst, ErrPrehashed
		}
	}
	var buf [256]byte
	norm, err := appendNormalize(buf[:0], f, raw)
	if err != nil {
		return dst, err
	}
	sum := sha256.Sum256(norm)
	return hex.AppendEncode(dst, sum[:]), nil
}

func looksHashed(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) != 64 {
		return false
	}
	for i := 0; i < 64; i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// SHA256Hex returns the lowercase hex SHA-256 of s.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	var buf [2 * sha256.Size]byte // not hex.EncodeToString: one allocation, not two
	return string(hex.AppendEncode(buf[:0], sum[:]))
}

// Normalize applies the field's normalization rule (see Hash) without hashing.
func Normalize(f IdentityField, raw string) (string, error) {
	var buf [256]byte
	norm, err := appendNormalize(buf[:0], f, raw)
	if err != nil {
		return "", err
	}
	return string(norm), nil
}

// appendNormalize appends Normalize(f, raw) to dst, without allocating when
// it fits dst's capacity (names and emails with non-ASCII letters go through
// the Unicode case mapping, which may allocate). A test checks it against a
// reference implementation byte for byte.
func appendNormalize(dst []byte, f IdentityField, raw string) ([]byte, error) {
	start := len(dst)
	switch f {
	case FieldEmail:
		s := strings.TrimSpace(raw)
		if isASCII(s) {
			dst = appendLowerASCII(dst, s)
		} else {
			dst = append(dst, strings.ToLower(s)...)
		}
	case FieldPhone:
		return appendPhone(dst, raw)
	case FieldExternalID:
		dst = append(dst, strings.TrimSpace(raw)...)
	case FieldFirstName, FieldLastName:
		dst = appendName(dst, raw)
	default:
		return dst, errors.New("unknown identity field")
	}
	if len(dst) == start {
		return dst, ErrEmptyIdentity
	}
	return dst, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendLowerASCII appends s with A-Z lowercased (s must be ASCII).
func appendLowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// The classes of phoneClass: a byte >= 0x80 (the zero value) starts a
// multi-byte rune, decoded and checked on its own.
const (
	phoneNonASCII = iota
	phoneDigit
	phoneSkip  // whitespace ( ) . -
	phoneOther // '+' (allowed once, before any digit) or invalid
)

var phoneClass = func() (t [256]uint8) {
	for c := range utf8.RuneSelf {
		switch {
		case c >= '0' && c <= '9':
			t[c] = phoneDigit
		case unicode.IsSpace(rune(c)) || c == '(' || c == ')' || c == '.' || c == '-':
			t[c] = phoneSkip
		default:
			t[c] = phoneOther
		}
	}
	return t
}()

// appendPhone appends the normalized digits of a phone number to dst.
func appendPhone(dst []byte, raw string) ([]byte, error) {
	start := len(dst)
	seenDigit := false
	plus := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch phoneClass[c] { // the ASCII bytes, decided by a table
		case phoneDigit:
			if !seenDigit && c == '0' {
				continue // leading zeros (after any '+') are dropped
			}
			seenDigit = true
			if len(dst)-start == 16 {
				return dst[:start], ErrPhoneDigits
			}
			dst = append(dst, c)
			continue
		case phoneSkip:
			continue
		case phoneOther:
			if c != '+' || seenDigit || plus {
				return dst[:start], ErrPhoneCharacters
			}
			plus = true
			continue
		}
		// A multi-byte rune: only Unicode whitespace is allowed (an invalid
		// byte decodes as U+FFFD, which is not).
		r, size := utf8.DecodeRuneInString(raw[i:])
		i += size - 1
		if !unicode.IsSpace(r) {
			return dst[:start], ErrPhoneCharacters
		}
	}
	if n := len(dst) - start; n < 8 || n > 15 {
		return dst[:start], ErrPhoneDigits
	}
	return dst, nil
}

// appendName appends the normalized name to dst.
func appendName(dst []byte, raw string) []byte {
	for _, r := range raw {
		switch {
		case unicode.IsSpace(r):
		case r < utf8.RuneSelf && unicode.IsPunct(r), r < utf8.RuneSelf && unicode.IsSymbol(r):
			// ASCII punctuation as the doc means it: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
		case r < utf8.RuneSelf:
			if r >= 'A' && r <= 'Z' {
				r += 'a' - 'A'
			}
			dst = append(dst, byte(r))
		default:
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
	}
	return dst
}
