package schemas

import (
	"errors"
	"reflect"
	"testing"
)

// TestDecodeRecordIn decodes an interleaved stream (both order versions and
// a signup) into one Arena: every value is DecodeRecord's, the arena's memory
// is reused (no allocation once warm, but for the decimal text), what was
// copied out of a value survives the next decode, and an error leaves the
// arena usable.
func TestDecodeRecordIn(t *testing.T) {
	reg := newTestRegistry(t)
	d := reg.decoder(t)
	v1, v2, su := encode(t, idOrderV1, OrderV1, orderV1()), encode(t, idOrderV2, OrderV2, orderV2()), encode(t, idSignup, Signup, signup())
	other := orderV1()
	other["order_id"] = "ord_2002"
	other["currency"] = "EUR"
	other["customer"].(map[string]any)["email"] = "someone.else@example.org"
	v1b := encode(t, idOrderV1, OrderV1, other)
	var a Arena
	for i, b := range [][]byte{v1, v2, su, v1, v1b, v2, su, v2, v1} {
		got, id, err := d.DecodeRecordIn(bg, b, &a)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		want, wid, err := d.DecodeRecord(bg, b)
		if err != nil {
			t.Fatal(err)
		}
		if id != wid {
			t.Errorf("record %d: schema id %d, want %d", i, id, wid)
		}
		if !reflect.DeepEqual(Plain(got), Plain(want)) {
			t.Errorf("record %d:\n got %#v\nwant %#v", i, Plain(got), Plain(want))
		}
	}

	// Memory is reused: a v2 order (no decimals) takes no allocation, a
	// v1 order one (the text of its three decimals).
	for _, c := range []struct {
		name string
		b    []byte
		max  float64
	}{{"v2", v2, 0}, {"v1", v1, 1}, {"signup", su, 0}} {
		if n := testing.AllocsPerRun(50, func() {
			if _, _, err := d.DecodeRecordIn(bg, c.b, &a); err != nil {
				t.Fatal(err)
			}
		}); n > c.max {
			t.Errorf("%s: %.1f allocations per decode into a warm arena, want ≤ %.0f", c.name, n, c.max)
		}
	}

	// What was copied out of a value stays valid when the arena is reused:
	// strings point into the payload, decimals into fresh text.
	first, _, err := d.DecodeRecordIn(bg, v1, &a)
	if err != nil {
		t.Fatal(err)
	}
	r := first.(*Record)
	field := func(r *Record, name string) any {
		v, _ := r.Field(name)
		return v
	}
	id, total, cur := field(r, "order_id").(string), field(r, "total").(string), field(r, "currency").(string)
	email := field(field(r, "customer").(*Record), "email").(string)
	if _, _, err := d.DecodeRecordIn(bg, v1b, &a); err != nil {
		t.Fatal(err)
	}
	if id != "ord_1001" || total != "129.98" || cur != "USD" || email != " User@Example.com " {
		t.Errorf("values copied out changed after the arena was reused: %q %q %q %q", id, total, cur, email)
	}

	// An error, then the arena decodes correctly again.
	if _, _, err := d.DecodeRecordIn(bg, v1[:len(v1)-3], &a); err == nil {
		t.Fatal("truncated payload decoded")
	} else if de := (*DecodeError)(nil); !errors.As(err, &de) || de.SchemaID != idOrderV1 {
		t.Fatalf("truncated payload: %v, want a *DecodeError for schema %d", err, idOrderV1)
	}
	got, _, err := d.DecodeRecordIn(bg, v2, &a)
	if err != nil {
		t.Fatal(err)
	}
	if want := wantOrderV2(); !reflect.DeepEqual(Plain(got), any(want)) {
		t.Errorf("after an error:\n got %#v\nwant %#v", Plain(got), want)
	}
	a.Reset()
	if got, _, err = d.DecodeRecordIn(bg, su, &a); err != nil || !reflect.DeepEqual(Plain(got), any(wantSignup())) {
		t.Errorf("after Reset: %#v, %v", Plain(got), err)
	}
}
