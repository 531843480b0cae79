package mapping

import (
	"reflect"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`{"a":1,"b":-2,"c":1.5,"d":"x","e":true,"f":null,"g":[1,"y"]}`, map[string]any{
			"a": int64(1), "b": int64(-2), "c": 1.5, "d": "x", "e": true, "f": nil, "g": []any{int64(1), "y"}}},
		{`9223372036854775807`, int64(9223372036854775807)},
		{`9223372036854775808`, 9223372036854775808.0},
		{`1e3`, 1000.0},
		{`"a\"b\\c\/d\n\u00e9\ud83d\ude00"`, "a\"b\\c/d\né😀"},
		{`"\ud83d"`, "\uFFFD"},
		{` [ ] `, []any{}},
		{`{"k\u0065y": 1}`, map[string]any{"key": int64(1)}},
	}
	for _, tt := range tests {
		got, err := DecodeJSON([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeJSON(%s) = %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `"abc`, "\"a\x01\"", `tru`, `{} {}`, `{"a":"\q"}`} {
		if _, err := DecodeJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "invalid JSON at byte") {
			t.Errorf("DecodeJSON(%q) error = %v, want invalid JSON", bad, err)
		}
	}
}

func TestDecodeJSONPruned(t *testing.T) {
	nd := &need{}
	nd.add([]string{"a", "b"})
	nd.node([]string{"items"}).add([]string{"sku"})
	nd.add([]string{"whole"})
	got, err := decodeJSON([]byte(`{"a":{"b":{"deep":[1]},"c":2},"skip":{"x":[{"y":"]}"}]},"items":[{"sku":"s","n":1},{"n":2}],"whole":{"x":1}, "z": "q"}`), nd)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a":     map[string]any{"b": map[string]any{"deep": []any{int64(1)}}},
		"items": []any{map[string]any{"sku": "s"}, map[string]any{}},
		"whole": map[string]any{"x": int64(1)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pruned decode = %#v\nwant %#v", got, want)
	}
	// Skipped parts must still be well-formed.
	if _, err := decodeJSON([]byte(`{"a":{"b":1},"skip":{"x":"unterminated}`), nd); err == nil {
		t.Error("a broken skipped member must be an error")
	}
}

// A skipped member is rejected exactly when decoding it would reject its
// brackets: whether a record is dead-lettered must not depend on which keys
// the rules read.
func TestDecodeJSONSkipMismatchedBrackets(t *testing.T) {
	nd := &need{}
	nd.add([]string{"a"})
	for _, in := range []string{
		`{"x":[1},"a":1}`,
		`{"x":{"y":1],"a":1}`,
		`{"x":[[1]},"a":1}`,
		`{"x":[{"y":"]"}}],"a":1}`,
	} {
		if _, err := DecodeJSON([]byte(in)); err == nil {
			t.Fatalf("DecodeJSON(%s) accepted it: the test input must be malformed", in)
		}
		_, err := decodeJSON([]byte(in), nd)
		if err == nil || !strings.Contains(err.Error(), "invalid JSON at byte") {
			t.Errorf("pruned decode of %s: error = %v, want invalid JSON (as the full decode)", in, err)
		}
	}
	// Well-formed nesting of both kinds, deep, still skips fine.
	deep := strings.Repeat(`{"k":[`, 200) + `"]}"` + strings.Repeat(`]}`, 200)
	got, err := decodeJSON([]byte(`{"x":`+deep+`,"a":1}`), nd)
	if err != nil || !reflect.DeepEqual(got, map[string]any{"a": int64(1)}) {
		t.Errorf("pruned decode of nested skip = %#v, %v", got, err)
	}
}
