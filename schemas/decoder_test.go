package schemas

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// engines are the two Decode implementations, which must agree exactly.
var engines = []struct {
	name string
	opts []Option
}{
	{"compiled", nil},
	{"hamba-generic", []Option{HambaGeneric()}},
}

func TestEmbeddedSchemas(t *testing.T) {
	for _, name := range []string{OrderV1, OrderV2, Signup} {
		s, err := ParseEmbedded(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Avro.Type() != "record" || s.ID != 0 {
			t.Errorf("%s: type %s id %d", name, s.Avro.Type(), s.ID)
		}
	}
	// Each parse has its own cache: v1's Item is not v2's Item.
	v1, _ := ParseEmbedded(OrderV1)
	v2, _ := ParseEmbedded(OrderV2)
	i1, i2 := v1.Cache.Get("com.example.shop.Item"), v2.Cache.Get("com.example.shop.Item")
	if i1 == nil || i2 == nil || i1.Fingerprint() == i2.Fingerprint() {
		t.Fatalf("Item of v1 and v2 must be distinct parsed types: %v / %v", i1, i2)
	}
	if _, err := ParseEmbedded("nope.avsc"); err == nil {
		t.Error("unknown embedded schema: no error")
	}
}

// TestDecodeInterleaved decodes v1 and v2 orders and a signup interleaved on
// one stream, with both engines.
func TestDecodeInterleaved(t *testing.T) {
	reg := newTestRegistry(t)
	stream := []struct {
		b    []byte
		id   int
		want map[string]any
	}{
		{encode(t, idOrderV1, OrderV1, orderV1()), idOrderV1, wantOrderV1()},
		{encode(t, idOrderV2, OrderV2, orderV2()), idOrderV2, wantOrderV2()},
		{encode(t, idSignup, Signup, signup()), idSignup, wantSignup()},
		{encode(t, idOrderV1, OrderV1, orderV1()), idOrderV1, wantOrderV1()},
		{encode(t, idOrderV2, OrderV2, orderV2()), idOrderV2, wantOrderV2()},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			d := reg.decoder(t, e.opts...)
			for i, rec := range stream {
				v, id, err := d.Decode(bg, rec.b)
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if id != rec.id {
					t.Errorf("record %d: schema id %d, want %d", i, id, rec.id)
				}
				if !reflect.DeepEqual(v, any(rec.want)) {
					t.Errorf("record %d:\n got %#v\nwant %#v", i, v, rec.want)
				}
			}
		})
	}
	// Both engines fetched each id once per decoder.
	for _, id := range []string{"11", "12", "21"} {
		if n := reg.requests(id); n != len(engines) {
			t.Errorf("id %s fetched %d times, want %d", id, n, len(engines))
		}
	}
}

// TestNullUnionsAbsent: a null in a ["null", T] field leaves the key out.
func TestNullUnionsAbsent(t *testing.T) {
	reg := newTestRegistry(t)
	v := orderV1()
	v["attribution"], v["client"] = nil, nil
	v["customer"].(map[string]any)["phone"] = nil
	b := encode(t, idOrderV1, OrderV1, v)
	for _, e := range engines {
		got, _, err := reg.decoder(t, e.opts...).Decode(bg, b)
		if err != nil {
			t.Fatal(err)
		}
		m := got.(map[string]any)
		for _, k := range []string{"attribution", "client"} {
			if _, ok := m[k]; ok {
				t.Errorf("%s: %s present: %#v", e.name, k, m[k])
			}
		}
		c := m["customer"].(map[string]any)
		if _, ok := c["phone"]; ok {
			t.Errorf("%s: customer.phone present", e.name)
		}
		if c["country"] != "US" {
			t.Errorf("%s: customer.country = %#v", e.name, c["country"])
		}
	}
}

// logicalSchema exercises every type and logical type.
const logicalSchema = `{
  "type": "record", "name": "L", "namespace": "t",
  "fields": [
    {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "lts_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "lts_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tod_ms", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "tod_us", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "dec_neg", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "dec_small", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3}},
    {"name": "dec_int", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 0}},
    {"name": "dec_big", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 4}},
    {"name": "dec_fixed", "type": {"type": "fixed", "name": "F8", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}},
    {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["a", "b"]}},
    {"name": "raw", "type": "bytes"},
    {"name": "fx", "type": {"type": "fixed", "name": "F3", "size": 3}},
    {"name": "f", "type": "float"},
    {"name": "d", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "i", "type": "int"},
    {"name": "attrs", "type": {"type": "map", "values": ["null", "string"]}},
    {"name": "nulls", "type": {"type": "array", "items": ["null", "long"]}},
    {"name": "either", "type": ["string", "long"]},
    {"name": "either2", "type": ["string", "long"]},
    {"name": "opt_ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    {"name": "n", "type": "null"}
  ]
}`

func TestLogicalTypes(t *testing.T) {
	s := mustParse(t, logicalSchema)
	ts := time.Date(2026, 3, 19, 4, 0, 0, 123456000, time.UTC)
	day := time.Date(2026, 3, 19, 0, 0, 0, 0, time.UTC)
	big38, _ := new(big.Rat).SetString("-12345678901234567890123.4567")
	in := map[string]any{
		"ts_ms": ts.Truncate(time.Millisecond), "ts_us": ts, "lts_ms": ts.Truncate(time.Millisecond), "lts_us": ts,
		"day": day, "tod_ms": 90 * time.Minute, "tod_us": 90*time.Minute + time.Microsecond,
		"dec": rat(12998, 100), "dec_neg": rat(-5, 100), "dec_small": rat(7, 1000), "dec_int": rat(42, 1),
		"dec_big": big38, "dec_fixed": rat(-123456789, 100),
		"id": "6f1c3a0e-2f7b-4d43-9a7e-1f2b3c4d5e6f", "kind": "b",
		"raw": []byte{0, 1, 2}, "fx": [3]byte{7, 8, 9}, "f": float32(1.5), "d": 2.25, "ok": true, "i": -7,
		"attrs":   map[string]any{"a": "x", "b": nil},
		"nulls":   []any{nil, int64(3)},
		"either":  map[string]any{"long": int64(9)},
		"either2": map[string]any{"string": "s"},
		"opt_ts":  map[string]any{"long.timestamp-millis": ts.Truncate(time.Millisecond)},
		"n":       nil,
	}
	want := map[string]any{
		"ts_ms": ts.Truncate(time.Millisecond), "ts_us": ts, "lts_ms": ts.Truncate(time.Millisecond), "lts_us": ts,
		"day": day, "tod_ms": int64(90 * 60 * 1000), "tod_us": int64(90*60*1e6 + 1),
		"dec": "129.98", "dec_neg": "-0.05", "dec_small": "0.007", "dec_int": "42",
		"dec_big": "-12345678901234567890123.4567", "dec_fixed": "-1234567.89",
		"id": "6f1c3a0e-2f7b-4d43-9a7e-1f2b3c4d5e6f", "kind": "b",
		"raw": []byte{0, 1, 2}, "fx": []byte{7, 8, 9}, "f": 1.5, "d": 2.25, "ok": true, "i": int64(-7),
		"attrs":   map[string]any{"a": "x"},
		"nulls":   []any{nil, int64(3)},
		"either":  int64(9),
		"either2": "s",
		"opt_ts":  ts.Truncate(time.Millisecond),
	}
	b, err := Encode(5, s.Avro, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeWith(s, b[5:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, any(want)) {
		t.Errorf("compiled:\n got %#v\nwant %#v", got, want)
	}
	gen, err := s.decodeGeneric(newGeneric(0), b[5:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gen, any(want)) {
		t.Errorf("hamba-generic:\n got %#v\nwant %#v", gen, want)
	}
	for _, k := range []string{"ts_ms", "ts_us", "lts_ms", "day", "opt_ts"} {
		if tm := got.(map[string]any)[k].(time.Time); tm.Location() != time.UTC {
			t.Errorf("%s: location %v, want UTC", k, tm.Location())
		}
	}
}

func TestFormatDecimal(t *testing.T) {
	for _, c := range []struct {
		b     []byte
		scale int
		want  string
	}{
		{nil, 2, "0.00"},
		{[]byte{0}, 0, "0"},
		{[]byte{0x32, 0xc6}, 2, "129.98"},
		{[]byte{0xff}, 2, "-0.01"},
		{[]byte{0x80}, 0, "-128"},
		{[]byte{0x01}, 5, "0.00001"},
		{[]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, "9223372036854775807"},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, 2, "-92233720368547758.08"},
		{[]byte{0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1, "-922337203685477580.9"},
		{[]byte{0x00, 0x80, 0, 0, 0, 0, 0, 0, 0}, 3, "9223372036854775.808"},
	} {
		if got := formatDecimal(c.b, c.scale); got != c.want {
			t.Errorf("formatDecimal(%x, %d) = %q, want %q", c.b, c.scale, got, c.want)
		}
	}
}

// TestReferences: a schema whose named types live in other subjects,
// two levels deep, resolved into the id's own cache.
func TestReferences(t *testing.T) {
	reg := newTestRegistry(t)
	reg.SeedSchema("com.acme.Country", 1, 100, sr.Schema{Type: sr.TypeAvro,
		Schema: `{"type":"enum","name":"Country","namespace":"com.acme","symbols":["US","GB"]}`})
	reg.SeedSchema("com.acme.Address", 1, 101, sr.Schema{Type: sr.TypeAvro,
		Schema:     `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"},{"name":"country","type":"com.acme.Country"}]}`,
		References: []sr.SchemaReference{{Name: "com.acme.Country", Subject: "com.acme.Country", Version: 1}}})
	reg.SeedSchema("people-value", 1, 102, sr.Schema{Type: sr.TypeAvro,
		Schema: `{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"name","type":"string"},` +
			`{"name":"home","type":"com.acme.Address"},{"name":"work","type":["null","com.acme.Address"],"default":null}]}`,
		References: []sr.SchemaReference{{Name: "com.acme.Address", Subject: "com.acme.Address", Version: 1}}})
	// A different, same-named Address in another id must not interfere.
	reg.SeedSchema("other-value", 1, 103, sr.Schema{Type: sr.TypeAvro,
		Schema: `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"zip","type":"long"}]}`})

	d := reg.decoder(t)
	other, err := d.SchemaByID(bg, 103)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(103, other.Avro, map[string]any{"zip": int64(90210)})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := d.Decode(bg, b); err != nil || !reflect.DeepEqual(v, any(map[string]any{"zip": int64(90210)})) {
		t.Fatalf("other: %#v %v", v, err)
	}

	person, err := d.SchemaByID(bg, 102)
	if err != nil {
		t.Fatal(err)
	}
	b, err = Encode(102, person.Avro, map[string]any{
		"name": "Ada", "home": map[string]any{"city": "London", "country": "GB"},
		"work": map[string]any{"com.acme.Address": map[string]any{"city": "NYC", "country": "US"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range engines {
		v, id, err := reg.decoder(t, e.opts...).Decode(bg, b)
		want := map[string]any{"name": "Ada", "home": map[string]any{"city": "London", "country": "GB"},
			"work": map[string]any{"city": "NYC", "country": "US"}}
		if err != nil || id != 102 || !reflect.DeepEqual(v, any(want)) {
			t.Errorf("%s: %#v %d %v", e.name, v, id, err)
		}
	}

	// A reference the registry does not have makes the schema unusable.
	reg.SeedSchema("broken-value", 1, 104, sr.Schema{Type: sr.TypeAvro,
		Schema: `{"type":"record","name":"B","fields":[{"name":"a","type":"com.acme.Address"}]}`,
		// srfake checks references on seeding, so point at a real one and
		// delete it below.
		References: []sr.SchemaReference{{Name: "com.acme.Address", Subject: "other-value", Version: 1}}})
	// srfake will not delete a referenced subject: make it answer as if it
	// had lost it.
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/subjects/other-value/versions/1" {
			return false
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error_code":40402,"message":"Version not found"}`))
		return true
	})
	_, _, err = reg.decoder(t).Decode(bg, []byte{0, 0, 0, 0, 104, 2, 'x'})
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != ReasonBadSchema || de.SchemaID != 104 {
		t.Errorf("missing reference: %v", err)
	}
}

// TestSchemaBySubjectVersion: a subject's versions come parsed, sharing the
// cache of SchemaByID (one parse per id, no lookup by id at all), and a
// failed lookup is ErrTransient or the registry's "not found", never an
// "unknown schema id" record error.
func TestSchemaBySubjectVersion(t *testing.T) {
	reg := newTestRegistry(t)
	d := reg.decoder(t)
	const subject = "shop.orders-value"
	vs, err := d.SubjectVersions(bg, subject)
	if err != nil || !reflect.DeepEqual(vs, []int{1, 2}) {
		t.Fatalf("versions %v, %v", vs, err)
	}
	// Version 2 is not cached: parsed from the subject's answer, then cached.
	s2, err := d.SchemaBySubjectVersion(bg, subject, 2)
	if err != nil || s2.ID != idOrderV2 || s2.Avro.(*avro.RecordSchema).FullName() != "com.example.shop.Order" {
		t.Fatalf("version 2: %+v, %v", s2, err)
	}
	if got, err := d.SchemaByID(bg, idOrderV2); err != nil || got != s2 {
		t.Errorf("SchemaByID after SchemaBySubjectVersion: %p %v, want the cached %p", got, err, s2)
	}
	// Version 1 is cached by a decode: the same *Schema comes back.
	v, _, err := d.Decode(bg, encode(t, idOrderV1, OrderV1, orderV1()))
	if err != nil || !reflect.DeepEqual(v, any(wantOrderV1())) {
		t.Fatalf("decode v1: %v", err)
	}
	s1, err := d.SchemaByID(bg, idOrderV1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.SchemaBySubjectVersion(bg, subject, 1); err != nil || got != s1 {
		t.Errorf("version 1: %p %v, want the cached %p", got, err, s1)
	}
	if n := reg.requests(itoa(idOrderV2)); n != 0 {
		t.Errorf("%d lookups of id %d, want none", n, idOrderV2)
	}
	if n := reg.requests(itoa(idOrderV1)); n != 1 {
		t.Errorf("%d lookups of id %d, want the decode's one", n, idOrderV1)
	}
	// Not found: the registry's answer, not transient, not a record error.
	var de *DecodeError
	for name, err := range map[string]error{
		"unknown subject": func() error { _, err := d.SubjectVersions(bg, "nope-value"); return err }(),
		"unknown version": func() error { _, err := d.SchemaBySubjectVersion(bg, subject, 9); return err }(),
	} {
		if err == nil || errors.Is(err, ErrTransient) || errors.As(err, &de) || strings.Contains(err.Error(), "schema id") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Registry down: transient, naming the subject.
	reg.status.Store(http.StatusServiceUnavailable)
	defer reg.status.Store(0)
	for name, err := range map[string]error{
		"versions": func() error { _, err := d.SubjectVersions(bg, subject); return err }(),
		"version":  func() error { _, err := d.SchemaBySubjectVersion(bg, subject, 1); return err }(),
	} {
		if !errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "subject "+subject) || strings.Contains(err.Error(), "schema id") {
			t.Errorf("registry down, %s: %v", name, err)
		}
	}
}

// TestCoalescing: concurrent misses for one id make one registry request.
func TestCoalescing(t *testing.T) {
	reg := newTestRegistry(t)
	reg.delay.Store(int64(50 * time.Millisecond)) // keep the first request in flight
	d := reg.decoder(t)
	b := encode(t, idOrderV1, OrderV1, orderV1())
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			v, _, err := d.Decode(bg, b)
			if err == nil && !reflect.DeepEqual(v, any(wantOrderV1())) {
				err = fmt.Errorf("wrong value %#v", v)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := reg.requests("11"); got != 1 {
		t.Fatalf("%d requests for id 11, want 1", got)
	}
	// Cached forever: no request for later decodes either.
	reg.delay.Store(0)
	for range 10 {
		if _, _, err := d.Decode(bg, b); err != nil {
			t.Fatal(err)
		}
	}
	if got := reg.requests("11"); got != 1 {
		t.Fatalf("%d requests for id 11 after the cache was warm, want 1", got)
	}
}

// TestWaiterContext: a caller whose context ends stops waiting (transient)
// without cancelling the shared fetch, which later callers reuse.
func TestWaiterContext(t *testing.T) {
	reg := newTestRegistry(t)
	reg.delay.Store(int64(200 * time.Millisecond))
	d := reg.decoder(t)
	b := encode(t, idSignup, Signup, signup())
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	_, id, err := d.Decode(ctx, b)
	if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) || id != idSignup {
		t.Fatalf("got %v (id %d), want transient deadline exceeded", err, id)
	}
	if _, _, err := d.Decode(bg, b); err != nil {
		t.Fatal(err)
	}
	if got := reg.requests("21"); got != 1 {
		t.Errorf("%d requests, want 1 (the first fetch is shared)", got)
	}
}

func TestErrorClasses(t *testing.T) {
	reg := newTestRegistry(t)
	good := encode(t, idOrderV1, OrderV1, orderV1())
	reg.SeedSchema("json-value", 1, 500, sr.Schema{Type: sr.TypeJSON, Schema: `{"type":"object"}`})
	withID := func(id int, payload []byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, payload...)
	}
	cases := []struct {
		name   string
		b      []byte
		status int // injected registry status, 0 for none
		reason string
		id     int
	}{
		{name: "empty", b: nil, reason: ReasonHeader},
		{name: "wrong magic byte", b: []byte{1, 0, 0, 0, 11, 2}, reason: ReasonMagic},
		{name: "json value", b: []byte(`{"order_id":"x"}`), reason: ReasonMagic},
		{name: "truncated header", b: []byte{0, 0, 0}, reason: ReasonHeader},
		{name: "unknown schema id", b: withID(999, good[5:]), reason: ReasonUnknownID, id: 999},
		{name: "not an avro schema", b: withID(500, []byte{2}), reason: ReasonBadSchema, id: 500},
		{name: "truncated payload", b: good[:len(good)-3], reason: ReasonCorrupt, id: idOrderV1},
		{name: "header only", b: good[:5], reason: ReasonCorrupt, id: idOrderV1},
		{name: "trailing bytes", b: append(append([]byte(nil), good...), 0), reason: ReasonTrailing, id: idOrderV1},
		{name: "corrupt length", b: withID(idOrderV1, []byte{0x7f, 'x'}), reason: ReasonCorrupt, id: idOrderV1},
		{name: "bad enum index", b: withID(idSignup, []byte{2, 2, 'a', 0, 0, 0, 0x10}), reason: ReasonCorrupt, id: idSignup},
		{name: "registry 500", b: good, status: 500, id: idOrderV1},
		{name: "registry 503", b: good, status: 503, id: idOrderV1},
		{name: "registry 429", b: good, status: 429, id: idOrderV1},
		{name: "registry 401", b: good, status: 401, id: idOrderV1},
		{name: "bare 404 (wrong path, no error code)", b: good, status: 404, id: idOrderV1},
	}
	for _, c := range cases {
		for _, e := range engines {
			t.Run(c.name+"/"+e.name, func(t *testing.T) {
				reg.status.Store(int64(c.status))
				defer reg.status.Store(0)
				d := reg.decoder(t, e.opts...)
				v, id, err := d.Decode(bg, c.b)
				if err == nil {
					t.Fatalf("no error, value %#v", v)
				}
				if v != nil {
					t.Errorf("value %#v with error", v)
				}
				if id != c.id {
					t.Errorf("schema id %d, want %d", id, c.id)
				}
				var de *DecodeError
				if c.reason == "" {
					if !errors.Is(err, ErrTransient) || errors.As(err, &de) {
						t.Fatalf("%v: want ErrTransient only", err)
					}
					return
				}
				if errors.Is(err, ErrTransient) {
					t.Fatalf("%v: transient, want a bad record", err)
				}
				if !errors.As(err, &de) || de.Reason != c.reason || de.SchemaID != c.id {
					t.Fatalf("got %#v (%v), want reason %q id %d", err, err, c.reason, c.id)
				}
				if !strings.Contains(err.Error(), c.reason) {
					t.Errorf("message %q does not name the reason", err)
				}
			})
		}
	}
}

// TestTransientNotCached: after an outage the same decoder recovers, and a
// definite unknown id is remembered (no request storm).
func TestTransientNotCached(t *testing.T) {
	reg := newTestRegistry(t)
	d := reg.decoder(t)
	b := encode(t, idOrderV2, OrderV2, orderV2())
	reg.status.Store(503)
	for range 3 {
		if _, _, err := d.Decode(bg, b); !errors.Is(err, ErrTransient) {
			t.Fatalf("during outage: %v", err)
		}
	}
	reg.status.Store(0)
	v, _, err := d.Decode(bg, b)
	if err != nil || !reflect.DeepEqual(v, any(wantOrderV2())) {
		t.Fatalf("after outage: %#v %v", v, err)
	}
	if n := reg.requests("12"); n != 4 {
		t.Errorf("%d requests for id 12, want 4 (3 failed, 1 good)", n)
	}

	unknown := append([]byte{0, 0, 0, 3, 0xe7}, b[5:]...) // id 999
	for range 5 {
		var de *DecodeError
		if _, _, err := d.Decode(bg, unknown); !errors.As(err, &de) || de.Reason != ReasonUnknownID {
			t.Fatalf("unknown id: %v", err)
		}
	}
	if n := reg.requests("999"); n != 1 {
		t.Errorf("%d requests for unknown id 999, want 1 (negative cache)", n)
	}
	d2 := reg.decoder(t, NegativeTTL(0))
	for range 3 {
		_, _, _ = d2.Decode(bg, unknown)
	}
	if n := reg.requests("999"); n != 4 {
		t.Errorf("%d requests for unknown id 999 without a negative cache, want 4", n)
	}
}

// TestRegistryDown: nothing listens at the URL.
func TestRegistryDown(t *testing.T) {
	reg := newTestRegistry(t)
	url := reg.URL()
	reg.Close()
	d, err := NewDecoder(RegistryConfig{URLs: []string{url}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := d.Decode(bg, encode(t, idSignup, Signup, signup()))
	var de *DecodeError
	if !errors.Is(err, ErrTransient) || errors.As(err, &de) || id != idSignup {
		t.Fatalf("got %v (id %d), want ErrTransient", err, id)
	}
}

// TestRegistryTimeout: a registry slower than the timeout is transient.
func TestRegistryTimeout(t *testing.T) {
	reg := newTestRegistry(t)
	reg.delay.Store(int64(300 * time.Millisecond))
	d, err := NewDecoder(RegistryConfig{URLs: []string{reg.URL()}, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Decode(bg, encode(t, idSignup, Signup, signup())); !errors.Is(err, ErrTransient) {
		t.Fatalf("got %v, want ErrTransient", err)
	}
}

func TestMaxByteSliceSize(t *testing.T) {
	reg := newTestRegistry(t)
	big := signup()
	big["email"] = strings.Repeat("x", 2<<20) + "@example.com"
	b := encode(t, idSignup, Signup, big)
	for _, e := range engines {
		// The default (8 MiB) accepts 2 MiB; hamba's own default would not.
		v, _, err := reg.decoder(t, e.opts...).Decode(bg, b)
		if err != nil || v.(map[string]any)["email"] != big["email"] {
			t.Fatalf("%s default limit: %v", e.name, err)
		}
		_, _, err = reg.decoder(t, append([]Option{MaxByteSliceSize(1 << 20)}, e.opts...)...).Decode(bg, b)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != ReasonTooLarge || de.SchemaID != idSignup {
			t.Fatalf("%s 1 MiB limit: got %v, want %s", e.name, err, ReasonTooLarge)
		}
		// No limit.
		if _, _, err := reg.decoder(t, append([]Option{MaxByteSliceSize(-1)}, e.opts...)...).Decode(bg, b); err != nil {
			t.Fatalf("%s no limit: %v", e.name, err)
		}
	}
	// From the RegistryConfig.
	d, err := NewDecoder(RegistryConfig{URLs: []string{reg.URL()}, MaxByteSliceSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var de *DecodeError
	if _, _, err := d.Decode(bg, b); !errors.As(err, &de) || de.Reason != ReasonTooLarge {
		t.Fatalf("RegistryConfig limit: %v", err)
	}
}

func rat(a, b int64) *big.Rat { return big.NewRat(a, b) }
