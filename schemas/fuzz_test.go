package schemas

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks, on arbitrary payloads for the order and signup schemas,
// that the compiled decoder never panics, fails only with *DecodeError, and
// whenever it succeeds agrees exactly with hamba's generic decoding
// (normalized), with its own projection, and with its records mode, fresh
// or in a reused Arena; and that the projection fails exactly as the full
// decode does. The seed corpus runs in every
// `go test`; `go test -fuzz FuzzDecode ./schemas/` explores further.
func FuzzDecode(f *testing.F) {
	files := []string{OrderV1, OrderV2, Signup}
	schemas := make([]*Schema, len(files))
	for i, name := range files {
		s, err := ParseEmbedded(name)
		if err != nil {
			f.Fatal(err)
		}
		schemas[i] = s
	}
	seeds := [][]byte{
		encode(f, 1, OrderV1, orderV1())[5:],
		encode(f, 1, OrderV2, orderV2())[5:],
		encode(f, 1, Signup, signup())[5:],
	}
	for i, b := range seeds {
		f.Add(uint8(i), b)
		f.Add(uint8(i), b[:len(b)/2])
		f.Add(uint8((i+1)%3), b)
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(2), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	// A signup whose platform (skipped by webShopFields) has enum index 3 of 3.
	f.Add(uint8(2), []byte{2, 2, 'a', 0, 0, 0, 6, 0, 0, 0})
	g := newGeneric(DefaultMaxByteSliceSize)
	var arena Arena // reused across inputs, as the relay reuses it across records
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		s := schemas[int(which)%len(schemas)]
		v, err := s.decode(payload, nil, DefaultMaxByteSliceSize, false)
		rv, rerr := s.decode(payload, nil, DefaultMaxByteSliceSize, true)
		if (err == nil) != (rerr == nil) || err != nil && err.Error() != rerr.Error() {
			t.Fatalf("records mode: error %v, map mode: error %v", rerr, err)
		}
		if err == nil && !reflect.DeepEqual(Plain(rv), v) {
			t.Fatalf("records mode disagrees:\nPlain(records) %#v\n          maps %#v", Plain(rv), v)
		}
		av, aerr := s.decodeIn(payload, nil, DefaultMaxByteSliceSize, &arena)
		if (err == nil) != (aerr == nil) || err != nil && err.Error() != aerr.Error() {
			t.Fatalf("arena: error %v, map mode: error %v", aerr, err)
		}
		if err == nil && !reflect.DeepEqual(Plain(av), v) {
			t.Fatalf("arena disagrees:\nPlain(arena) %#v\n        maps %#v", Plain(av), v)
		}
		// webShopFields skips no array or map of these schemas (a skipped
		// block that carries its byte size is jumped over unread), so the
		// projection reads every byte the full decode reads, in the same
		// order: it fails exactly when, and as, the full decode fails.
		pv, perr := s.decode(payload, webShopFields, DefaultMaxByteSliceSize, false)
		if (err == nil) != (perr == nil) || err != nil && err.Error() != perr.Error() {
			t.Fatalf("projection: error %v, full decode: error %v", perr, err)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a *DecodeError: %v", err)
			}
			if v != nil {
				t.Fatalf("value with error")
			}
			return
		}
		gv, err := s.decodeGeneric(g, payload)
		if err != nil {
			t.Fatalf("compiled decoded %#v, hamba failed: %v", v, err)
		}
		if !reflect.DeepEqual(v, gv) {
			t.Fatalf("engines disagree:\ncompiled %#v\n   hamba %#v", v, gv)
		}
		if want := project(v, webShopFields.tree()); !reflect.DeepEqual(pv, want) {
			t.Fatalf("projection:\n got %#v\nwant %#v", pv, want)
		}
	})
}
