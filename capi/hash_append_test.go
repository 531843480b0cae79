package capi

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// refNormalize is Normalize as it was written before the append fast paths
// (strings built rune by rune): the reference AppendHash and Normalize are
// checked against.
func refNormalize(f IdentityField, raw string) (string, error) {
	var s string
	switch f {
	case FieldEmail:
		s = strings.ToLower(strings.TrimSpace(raw))
	case FieldPhone:
		var buf [32]byte
		digits := buf[:0]
		seenDigit, plus := false, false
		for _, r := range raw {
			switch {
			case r >= '0' && r <= '9':
				if !seenDigit && r == '0' {
					continue
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
	case FieldExternalID:
		s = strings.TrimSpace(raw)
	case FieldFirstName, FieldLastName:
		var b strings.Builder
		for _, r := range raw {
			switch {
			case unicode.IsSpace(r):
			case r < utf8.RuneSelf && unicode.IsPunct(r), r < utf8.RuneSelf && unicode.IsSymbol(r):
			default:
				b.WriteRune(unicode.ToLower(r))
			}
		}
		s = b.String()
	default:
		return "", errors.New("unknown identity field")
	}
	if s == "" {
		return "", ErrEmptyIdentity
	}
	return s, nil
}

// refHash is Hash as it was written before AppendHash.
func refHash(h *Hasher, f IdentityField, raw string) (string, error) {
	if looksHashed(raw) {
		switch h.PolicyFor(f) {
		case PrehashedAccept:
			return strings.ToLower(strings.TrimSpace(raw)), nil
		case PrehashedReject:
			return "", ErrPrehashed
		}
	}
	norm, err := refNormalize(f, raw)
	if err != nil {
		return "", err
	}
	return SHA256Hex(norm), nil
}

var hashInputs = []string{
	"", " ", "user@example.com", "  User@Example.COM \n", " User@Example.com ", "ÉLODIE@Exemple.FR", "İstanbul@x.tr",
	"+1 (415) 555-2671", "001.415.555.2671", "+44 020 7946 0958", "0044 20 7946 0958", "1234567", "12345678",
	"123456789012345", "1234567890123456", "12345678901234567890", "+1 415 CALL-NOW", "1+4155552671", "++14155552671",
	"+1\u00a0415\u2003555\u20092671", "+1\t415\n555\r2671", "(0)415-555-2671", "415.555.2671 ext 3", "\xff4155552671",
	"٤١٥٥٥٥٢٦٧١٢", "0000000000", "+0 415 555 2671", "1-800-FLOWERS", "+１ 415 555 2671",
	" customer_123\t", "Customer_123", "cust_42", "O'Connor", "José", "Mary Jane", "Smith-Jones, Jr.", "山田", "'.-",
	" A.d-a ", "Love Lace", "ǅemal", "\xc3", "a\x00b", "ΣΊΣΥΦΟΣ", "K\u212a",
	strings.Repeat("a", 300) + "@example.com", strings.Repeat("Ab", 200),
	"b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
	" B4C9A289323B21A01C3E940F150EB9B8C542587F1ABFD8F0E1CC1FFC5E475514 ",
	"b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e47551",
}

func checkHashEquivalence(t *testing.T, raw string) {
	t.Helper()
	hashers := []*Hasher{{}, {Policy: map[IdentityField]PrehashedPolicy{FieldEmail: PrehashedReject, FieldPhone: PrehashedAsRaw, FieldExternalID: PrehashedAccept}}}
	for f := FieldEmail; f <= numIdentityFields; f++ {
		wantN, wantNErr := refNormalize(f, raw)
		gotN, gotNErr := Normalize(f, raw)
		if gotN != wantN || (gotNErr == nil) != (wantNErr == nil) || gotNErr != nil && gotNErr.Error() != wantNErr.Error() {
			t.Errorf("Normalize(%s, %q) = %q, %v; before: %q, %v", f, raw, gotN, gotNErr, wantN, wantNErr)
		}
		for _, h := range hashers {
			want, wantErr := refHash(h, f, raw)
			got, err := h.Hash(f, raw)
			if got != want || (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Errorf("Hash(%s, %q) = %q, %v; before: %q, %v", f, raw, got, err, want, wantErr)
			}
			prefix := []byte("xyz")
			b, err := h.AppendHash(prefix, f, raw)
			if string(b) != "xyz"+want || (err == nil) != (wantErr == nil) {
				t.Errorf("AppendHash(%s, %q) = %q, %v; want xyz%q, %v", f, raw, b, err, want, wantErr)
			}
		}
	}
}

func TestAppendHashMatchesHash(t *testing.T) {
	for _, raw := range hashInputs {
		checkHashEquivalence(t, raw)
	}
}

func FuzzAppendHash(f *testing.F) {
	for _, raw := range hashInputs {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkHashEquivalence(t, raw) })
}

func TestAppendHashAllocs(t *testing.T) {
	var h Hasher
	buf := make([]byte, 0, 64*3)
	n := testing.AllocsPerRun(100, func() {
		b := buf[:0]
		b, _ = h.AppendHash(b, FieldEmail, " User@Example.com ")
		b, _ = h.AppendHash(b, FieldPhone, "+1 (415) 555-2671")
		_, _ = h.AppendHash(b, FieldFirstName, "O'Connor")
	})
	if n != 0 {
		t.Errorf("AppendHash allocates %v times, want 0", n)
	}
}
