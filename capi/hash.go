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
	if looksHashed(raw) {
		switch h.PolicyFor(f) {
		case PrehashedAccept:
			return strings.ToLower(strings.TrimSpace(raw)), nil
		case PrehashedReject:
			return "", ErrPrehashed
		}
	}
	norm, err := Normalize(f, raw)
	if err != nil {
		return "", err
	}
	return SHA256Hex(norm), nil
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
	var buf [64]byte
	hex.Encode(buf[:], sum[:])
	return string(buf[:])
}

// Normalize applies the field's normalization rule (see Hash) without hashing.
func Normalize(f IdentityField, raw string) (string, error) {
	var s string
	switch f {
	case FieldEmail:
		s = strings.ToLower(strings.TrimSpace(raw))
	case FieldPhone:
		return normalizePhone(raw)
	case FieldExternalID:
		s = strings.TrimSpace(raw)
	case FieldFirstName, FieldLastName:
		s = normalizeName(raw)
	default:
		return "", errors.New("unknown identity field")
	}
	if s == "" {
		return "", ErrEmptyIdentity
	}
	return s, nil
}

func normalizePhone(raw string) (string, error) {
	var buf [32]byte
	digits := buf[:0]
	seenDigit := false
	plus := false
	for _, r := range raw {
		switch {
		case r >= '0' && r <= '9':
			if !seenDigit && r == '0' {
				continue // leading zeros (after any '+') are dropped
			}
			seenDigit = true
			if len(digits) == 16 {
				return "", ErrPhoneDigits
			}
			digits = append(digits, byte(r))
		case unicode.IsSpace(r) || r == '(' || r == ')' || r == '.' || r == '-':
		case r == '+' && !seenDigit && !plus:
			plus = true
		default:
			return "", ErrPhoneCharacters
		}
	}
	if len(digits) < 8 || len(digits) > 15 {
		return "", ErrPhoneDigits
	}
	return string(digits), nil
}

func normalizeName(raw string) string {
	var b strings.Builder
	b.Grow(len(raw))
	for _, r := range raw {
		switch {
		case unicode.IsSpace(r):
		case r < utf8.RuneSelf && unicode.IsPunct(r), r < utf8.RuneSelf && unicode.IsSymbol(r):
			// ASCII punctuation as the doc means it: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
