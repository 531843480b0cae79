package schemas

import (
	"reflect"
	"testing"
)

// TestArrayBlocks decodes arrays written in several blocks, with and
// without byte sizes (hamba writes one block).
func TestArrayBlocks(t *testing.T) {
	s := mustParse(t, `{"type": "array", "items": "long"}`)
	zz := func(n int64) byte { return byte(n<<1 ^ n>>63) } // small values only
	for _, c := range []struct {
		payload []byte
		want    []any
	}{
		{[]byte{0}, []any{}},
		{[]byte{zz(2), zz(1), zz(2), zz(1), zz(3), 0}, []any{int64(1), int64(2), int64(3)}},
		{[]byte{zz(-2), zz(2), zz(4), zz(5), zz(3), zz(6), zz(7), zz(8), 0}, []any{int64(4), int64(5), int64(6), int64(7), int64(8)}},
		{[]byte{zz(1), zz(9), zz(1), zz(10), zz(1), zz(11), zz(1), zz(12), zz(1), zz(13), zz(1), zz(14), zz(1), zz(15), zz(1), zz(16), zz(1), zz(17), 0},
			[]any{int64(9), int64(10), int64(11), int64(12), int64(13), int64(14), int64(15), int64(16), int64(17)}},
	} {
		got, err := DecodeWith(s, c.payload)
		if err != nil {
			t.Fatalf("%x: %v", c.payload, err)
		}
		if !reflect.DeepEqual(got, any(c.want)) {
			t.Errorf("%x: got %#v, want %#v", c.payload, got, c.want)
		}
	}
}
