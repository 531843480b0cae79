package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/secret"
)

// webShopFields are the paths the web-shop rules read (for both versions).
var webShopFields = NewFieldSet(
	"status", "order_id", "created_at", "checkout_url", "attribution.oppref",
	"customer.email", "customer.phone", "customer.id", "customer.country",
	"client.ip", "client.user_agent", "total", "total_cents", "currency",
	"items.sku", "items.title", "items.qty", "items.unit_price", "items.unit_price_cents",
)

// project removes from want what fs does not ask for (the reference
// semantics of DecodeFields).
func project(v any, n *fieldNode) any {
	if n == nil || n.all {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if c := n.children[k]; c != nil {
				out[k] = project(e, c)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = project(e, n)
		}
		return out
	}
	return v
}

func TestDecodeFields(t *testing.T) {
	reg := newTestRegistry(t)
	d := reg.decoder(t)
	v1 := encode(t, idOrderV1, OrderV1, orderV1())
	v2 := encode(t, idOrderV2, OrderV2, orderV2())
	su := encode(t, idSignup, Signup, signup())
	sets := []*FieldSet{
		nil,
		{},
		webShopFields,
		NewFieldSet("order_id"),
		NewFieldSet("customer"),
		NewFieldSet("customer.email", "customer"), // prefix wins
		NewFieldSet("items.qty"),
		NewFieldSet("attribution.oppref", "coupon"),
		NewFieldSet("no_such_field", "customer.nope"),
		NewFieldSet("email", "platform", "signed_up_at", "marketing_opt_in"),
		NewFieldSet(),
	}
	for _, rec := range []struct {
		b    []byte
		want map[string]any
	}{{v1, wantOrderV1()}, {v2, wantOrderV2()}, {su, wantSignup()}} {
		for _, fs := range sets {
			got, _, err := d.DecodeFields(bg, rec.b, fs)
			if err != nil {
				t.Fatalf("%v: %v", fs.Paths(), err)
			}
			want := project(rec.want, fs.tree())
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%v:\n got %#v\nwant %#v", fs.Paths(), got, want)
			}
		}
	}
	// The web-shop set keeps everything the rules read, and nothing else.
	got, _, _ := d.DecodeFields(bg, v2, webShopFields)
	if _, ok := got.(map[string]any)["coupon"]; ok {
		t.Error("coupon decoded though not asked for")
	}
	// Skipped fields are still validated: a truncated payload fails.
	var de *DecodeError
	if _, _, err := d.DecodeFields(bg, v1[:len(v1)-1], NewFieldSet("order_id")); !errors.As(err, &de) || de.Reason != ReasonCorrupt {
		t.Errorf("truncated payload with a projection: %v", err)
	}
	if _, _, err := d.DecodeFields(bg, append(append([]byte(nil), v1...), 1), NewFieldSet("order_id")); !errors.As(err, &de) || de.Reason != ReasonTrailing {
		t.Errorf("trailing bytes with a projection: %v", err)
	}
	if k := NewFieldSet("b", "a", "a").Key(); k != NewFieldSet("a", "b").Key() {
		t.Errorf("keys differ for the same paths: %q", k)
	}
	if p := NewFieldSet("b", "a.c").Paths(); !reflect.DeepEqual(p, []string{"a.c", "b"}) {
		t.Errorf("Paths() = %q", p)
	}
}

// TestDecodeFieldsSkipsBlocks: arrays and maps written with block byte sizes
// are skipped whole.
func TestDecodeFieldsSkipsBlocks(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"R","fields":[
		{"name":"a","type":{"type":"array","items":"string"}},
		{"name":"m","type":{"type":"map","values":"long"}},
		{"name":"z","type":"string"}]}`)
	// a: one block of 2 items with byte size 4: "x","y"; m: one block of 1
	// entry with byte size 3: "k" → 1; z: "end".
	payload := []byte{3, 8, 2, 'x', 2, 'y', 0, 1, 6, 2, 'k', 2, 0, 6, 'e', 'n', 'd'}
	full, err := DecodeWith(s, payload)
	want := map[string]any{"a": []any{"x", "y"}, "m": map[string]any{"k": int64(1)}, "z": "end"}
	if err != nil || !reflect.DeepEqual(full, any(want)) {
		t.Fatalf("full: %#v %v", full, err)
	}
	v, err := s.decode(payload, NewFieldSet("z"), 0, false)
	if err != nil || !reflect.DeepEqual(v, any(map[string]any{"z": "end"})) {
		t.Fatalf("projected: %#v %v", v, err)
	}
	// A block byte size past the end is corrupt.
	bad := append([]byte(nil), payload...)
	bad[1] = 0x7e
	if _, err := s.decode(bad, NewFieldSet("z"), 0, false); err == nil {
		t.Fatal("bad block size: no error")
	}
}

// TestDecodeFieldsBadIndex: an out-of-range enum or union index in a field
// the projection skips fails DecodeFields and DecodeRecordFields with
// Decode's error, as DecodeFields promises.
func TestDecodeFieldsBadIndex(t *testing.T) {
	d := newTestRegistry(t).decoder(t)
	// A signup: user_id 1, email "a", first_name, last_name and country
	// null, then platform (an enum of 3 symbols), landing_url null,
	// signed_up_at 0, marketing_opt_in false.
	signup := func(firstName []byte, platform int64) []byte {
		b := append([]byte{0, 0, 0, 0, idSignup, 2, 2, 'a'}, firstName...)
		b = append(b, 0, 0)
		b = binary.AppendVarint(b, platform) // Avro's zig-zag varint
		return append(b, 0, 0, 0)
	}
	if v, _, err := d.Decode(bg, signup([]byte{0}, 1)); err != nil || v.(map[string]any)["platform"] != "ios" {
		t.Fatalf("good payload: %#v %v", v, err)
	}
	fs := NewFieldSet("email") // skips first_name and platform
	for name, b := range map[string][]byte{
		"enum index past the symbols":   signup([]byte{0}, 3),
		"negative enum index":           signup([]byte{0}, -1),
		"enum index over 32 bits":       signup([]byte{0}, 1<<40),
		"union index past the branches": signup([]byte{4}, 1),
		"union index over 32 bits":      signup(binary.AppendVarint(nil, 1<<40), 1),
	} {
		_, _, want := d.Decode(bg, b)
		var de *DecodeError
		if !errors.As(want, &de) || de.Reason != ReasonCorrupt {
			t.Fatalf("%s: Decode: %v, want a corrupt payload", name, want)
		}
		if _, _, err := d.DecodeFields(bg, b, fs); err == nil || err.Error() != want.Error() {
			t.Errorf("%s: DecodeFields: %v, want %v", name, err, want)
		}
		if _, _, err := d.DecodeRecordFields(bg, b, fs); err == nil || err.Error() != want.Error() {
			t.Errorf("%s: DecodeRecordFields: %v, want %v", name, err, want)
		}
	}
}

func TestLocalSchemaFile(t *testing.T) {
	dir := t.TempDir()
	text, _ := Embedded(OrderV2)
	path := filepath.Join(dir, "order.avsc")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ParseSchemaFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(77, s.Avro, orderV2())
	if err != nil {
		t.Fatal(err)
	}
	v, id, err := DecodeWireWith(s, b)
	if err != nil || id != 77 || !reflect.DeepEqual(v, any(wantOrderV2())) {
		t.Fatalf("%#v %d %v", v, id, err)
	}
	_, id, err = DecodeWireWith(s, b[:len(b)-2])
	var de *DecodeError
	if !errors.As(err, &de) || de.SchemaID != 77 || id != 77 {
		t.Errorf("truncated: %v", err)
	}
	if _, err := ParseSchemaFile(filepath.Join(dir, "missing.avsc")); err == nil || !strings.Contains(err.Error(), "missing.avsc") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"type":"record","name":"X","fields":[{"name":"a","type":"Nope"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSchemaFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("bad schema: %v", err)
	}
}

const (
	testPassword = "hunter2-very-secret-password"
	testToken    = "tok-abcdef-0123456789-secret"
)

// TestSecretsNeverPrinted: error strings and dumps of the config never hold a
// password or token, even when the registry echoes the credential back.
func TestSecretsNeverPrinted(t *testing.T) {
	reg := newTestRegistry(t)
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		// A hostile or buggy registry (or proxy) echoes the credentials.
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error_code":40101,"message":"bad credentials: ` + r.Header.Get("Authorization") + ` ` + r.URL.String() + `"}`))
		return true
	})
	b := encode(t, idSignup, Signup, signup())
	for _, cfg := range []RegistryConfig{
		{URLs: []string{reg.URL()}, Username: "relay", Password: secret.New(testPassword)},
		{URLs: []string{reg.URL()}, BearerToken: secret.New(testToken)},
	} {
		d, err := NewDecoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = d.Decode(bg, b)
		_, verr := d.SubjectVersions(bg, "accounts.signups-value")
		_, serr := d.SchemaBySubjectVersion(bg, "accounts.signups-value", 1)
		for _, err := range []error{err, verr, serr} {
			if !errors.Is(err, ErrTransient) {
				t.Fatalf("401: %v, want transient", err)
			}
			// The basic-auth header carries base64(user:password): check the
			// raw secrets, and the token, which is sent verbatim.
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
				if strings.Contains(s, testPassword) || strings.Contains(s, testToken) {
					t.Errorf("secret leaked: %s", s)
				}
			}
			if !cfg.BearerToken.IsZero() && !strings.Contains(err.Error(), secret.Redacted) {
				t.Errorf("echoed token not scrubbed: %s", err)
			}
		}
	}
}

func TestRegistryConfigFrom(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPIRELAY_TEST_SR_TOKEN", testToken)
	rc, err := RegistryConfigFrom(config.SchemaRegistry{URLs: []string{"https://sr:8081"}, Username: "u", PasswordFile: pwFile, MaxBytes: 1 << 20})
	if err != nil || rc.Password.Reveal() != testPassword || rc.Username != "u" || rc.MaxByteSliceSize != 1<<20 {
		t.Fatalf("password file: %+v %v", rc, err)
	}
	rc, err = RegistryConfigFrom(config.SchemaRegistry{URLs: []string{"https://sr:8081"}, TokenEnv: "CAPIRELAY_TEST_SR_TOKEN"})
	if err != nil || rc.BearerToken.Reveal() != testToken {
		t.Fatalf("token env: %+v %v", rc, err)
	}
	if _, err := rc.NewClient(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]config.SchemaRegistry{
		"no urls":              {},
		"password no username": {URLs: []string{"x"}, PasswordFile: pwFile},
		"username no password": {URLs: []string{"x"}, Username: "u"},
		"both auths":           {URLs: []string{"x"}, Username: "u", PasswordFile: pwFile, TokenEnv: "CAPIRELAY_TEST_SR_TOKEN"},
		"unset env":            {URLs: []string{"x"}, TokenEnv: "CAPIRELAY_TEST_NOT_SET"},
		"cert without key":     {URLs: []string{"x"}, TLS: config.TLS{CertFile: "c.pem"}},
	} {
		if _, err := RegistryConfigFrom(c); err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: secret in error %q", name, err)
		}
	}
	// TLS files are read when the client is built.
	_, err = RegistryConfig{URLs: []string{"https://sr"}, TLS: config.TLS{CAFile: filepath.Join(dir, "ca.pem")}}.NewClient()
	if err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = (RegistryConfig{URLs: []string{"https://sr"}, TLS: config.TLS{CAFile: filepath.Join(dir, "junk.pem")}}).NewClient(); err == nil {
		t.Error("CA file without PEM: no error")
	}
	if _, err := NewDecoder(RegistryConfig{}); err == nil {
		t.Error("NewDecoder without URLs: no error")
	}
}
