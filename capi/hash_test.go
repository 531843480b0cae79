package capi

import (
	"errors"
	"strings"
	"testing"
)

// The test vectors of the API documentation: normalized input → hash.
func TestHashVectors(t *testing.T) {
	vectors := []struct {
		field IdentityField
		raw   string
		want  string
	}{
		{FieldEmail, "user@example.com", "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"},
		{FieldPhone, "14155552671", "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"},
		{FieldExternalID, "customer_123", "18f69bcd2f9cc9c38195e722b2a5590429840ea5090971d2256e026926e55fa1"},
		{FieldFirstName, "ada", "fdee430d40bd57deeac186cd9790033d0f06f909a8806e7ce6e717ab7c7d5029"},
		{FieldLastName, "lovelace", "fb1e7ec987523d2cb9e022cec1d6ae7c99dc46edfae4fe51254025fe4bea571f"},
		// The same vectors reached from raw input through normalization.
		{FieldEmail, "  User@Example.COM \n", "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"},
		{FieldPhone, "+1 (415) 555-2671", "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"},
		{FieldPhone, "001.415.555.2671", "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"},
		{FieldExternalID, " customer_123\t", "18f69bcd2f9cc9c38195e722b2a5590429840ea5090971d2256e026926e55fa1"},
		{FieldFirstName, " A.d-a ", "fdee430d40bd57deeac186cd9790033d0f06f909a8806e7ce6e717ab7c7d5029"},
		{FieldLastName, "Love Lace", "fb1e7ec987523d2cb9e022cec1d6ae7c99dc46edfae4fe51254025fe4bea571f"},
	}
	var h Hasher
	for _, v := range vectors {
		got, err := h.Hash(v.field, v.raw)
		if err != nil {
			t.Errorf("%s %q: %v", v.field, v.raw, err)
			continue
		}
		if got != v.want {
			t.Errorf("%s %q = %s, want %s", v.field, v.raw, got, v.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		field   IdentityField
		raw     string
		want    string
		wantErr error
	}{
		{FieldEmail, " A@B.C ", "a@b.c", nil},
		{FieldEmail, "   ", "", ErrEmptyIdentity},
		{FieldPhone, "+1 (415) 555-2671", "14155552671", nil},
		{FieldPhone, "+44 020 7946 0958", "44020794609" + "58", nil},
		{FieldPhone, "0044 20 7946 0958", "442079460958", nil},
		{FieldPhone, "1234567", "", ErrPhoneDigits},
		{FieldPhone, "12345678", "12345678", nil},
		{FieldPhone, "123456789012345", "123456789012345", nil},
		{FieldPhone, "1234567890123456", "", ErrPhoneDigits},
		{FieldPhone, "+1 415 CALL-NOW", "", ErrPhoneCharacters},
		{FieldPhone, "1+4155552671", "", ErrPhoneCharacters},
		{FieldExternalID, " Customer_123 ", "Customer_123", nil},
		{FieldFirstName, "O'Connor", "oconnor", nil},
		{FieldFirstName, "José", "josé", nil},
		{FieldFirstName, "Mary Jane", "maryjane", nil},
		{FieldFirstName, "ÉLODIE", "élodie", nil},
		{FieldLastName, "Smith-Jones, Jr.", "smithjonesjr", nil},
		{FieldLastName, "山田", "山田", nil},
		{FieldLastName, "'.-", "", ErrEmptyIdentity},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.field, tt.raw)
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("Normalize(%s, %q) = %q, %v; want %q, %v", tt.field, tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPrehashedPolicy(t *testing.T) {
	hashed := SHA256Hex("user@example.com")
	upper := strings.ToUpper(hashed)
	def := Hasher{}
	for _, f := range []IdentityField{FieldEmail, FieldPhone, FieldFirstName, FieldLastName} {
		got, err := def.Hash(f, upper)
		if err != nil || got != hashed {
			t.Errorf("default %s: pre-hashed input should pass through lowercased, got %q %v", f, got, err)
		}
	}
	got, err := def.Hash(FieldExternalID, hashed)
	if err != nil || got != SHA256Hex(hashed) {
		t.Errorf("default external_id: a 64-hex id is an opaque raw id and must be hashed, got %q %v", got, err)
	}
	strict := Hasher{Policy: map[IdentityField]PrehashedPolicy{FieldEmail: PrehashedReject, FieldExternalID: PrehashedAccept}}
	if _, err := strict.Hash(FieldEmail, hashed); !errors.Is(err, ErrPrehashed) {
		t.Errorf("reject policy: got %v", err)
	}
	if got, _ := strict.Hash(FieldExternalID, hashed); got != hashed {
		t.Errorf("accept policy on external_id: got %q", got)
	}
	if got, _ := strict.Hash(FieldEmail, "a@b.c"); got != SHA256Hex("a@b.c") {
		t.Errorf("raw email under reject policy must still hash, got %q", got)
	}
}

func TestHashErrorsCarryNoInput(t *testing.T) {
	var h Hasher
	for _, raw := range []string{"+1 555 SECRET-PHONE", "1234"} {
		_, err := h.Hash(FieldPhone, raw)
		if err == nil || strings.Contains(err.Error(), raw) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error for %q must not echo it: %v", raw, err)
		}
	}
}
