package schemas

import (
	"reflect"
	"runtime"
	"testing"
	"time"
)

// boxTest: values boxed from slabs behave exactly like values the runtime
// boxed (type switches, equality, reflect, DeepEqual), and stay intact
// across garbage collections and later appends to their slab.
func TestBoxing(t *testing.T) {
	var s slabs
	ts := time.Date(2026, 3, 19, 4, 0, 0, 5, time.UTC)
	var got, want []any
	for i := range 100 { // several slab replacements
		str := "v" + string(rune('a'+i%26))
		got = append(got, s.boxStr(str), s.boxInt(int64(i)*1000-7), s.boxTime(ts.Add(time.Duration(i))))
		want = append(want, str, int64(i)*1000-7, ts.Add(time.Duration(i)))
	}
	got = append(got, s.boxInt(5))
	want = append(want, int64(5))
	runtime.GC()
	runtime.GC()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("boxed values differ:\n got %v\nwant %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%d: %v != %v", i, got[i], want[i])
		}
		switch v := got[i].(type) {
		case string, int64:
		case time.Time:
			if !v.Equal(want[i].(time.Time)) || v.Location() != time.UTC {
				t.Errorf("%d: time %v", i, v)
			}
		default:
			t.Errorf("%d: type %T", i, v)
		}
		if reflect.TypeOf(got[i]) != reflect.TypeOf(want[i]) {
			t.Errorf("%d: reflect type %v", i, reflect.TypeOf(got[i]))
		}
	}
}
