package schemas

import (
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"
)

// BenchmarkDecodeOrderMap decodes the example v1 order (nested customer, two
// items, decimals, optional records) from the Confluent wire format with a
// warm schema cache, four ways, in one run:
//
//	hamba-raw      hamba/avro generic decoding into map[string]any, as is
//	               (unions still wrapped, decimals *big.Rat): the baseline
//	hamba-generic  Decode with HambaGeneric: the above plus normalizing
//	compiled       Decode: the compiled decoder, same output
//	fields         DecodeFields with the fields the web-shop rules read
//
//	go test -run '^$' -bench . -benchmem ./schemas/
func BenchmarkDecodeOrderMap(b *testing.B) {
	reg := newTestRegistry(b)
	rec := encode(b, idOrderV1, OrderV1, orderV1())
	warm := func(d *Decoder) *Decoder {
		if v, _, err := d.Decode(bg, rec); err != nil || !reflect.DeepEqual(v, any(wantOrderV1())) {
			b.Fatalf("warm-up: %#v %v", v, err)
		}
		return d
	}
	b.Run("hamba-raw", func(b *testing.B) {
		d := warm(reg.decoder(b))
		s, _ := d.SchemaByID(bg, idOrderV1)
		api := avro.Config{MaxByteSliceSize: DefaultMaxByteSliceSize}.Freeze()
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := api.Unmarshal(s.Avro, rec[5:], &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba-generic", func(b *testing.B) {
		d := warm(reg.decoder(b, HambaGeneric()))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := d.Decode(bg, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compiled", func(b *testing.B) {
		d := warm(reg.decoder(b))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := d.Decode(bg, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fields", func(b *testing.B) {
		d := warm(reg.decoder(b))
		fs := NewFieldSet("status", "order_id", "created_at", "total", "currency", "customer.email", "items.unit_price")
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := d.DecodeFields(bg, rec, fs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fields-web-shop", func(b *testing.B) {
		d := warm(reg.decoder(b))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := d.DecodeFields(bg, rec, webShopFields); err != nil {
				b.Fatal(err)
			}
		}
	})
}
