package mapping

import (
	"context"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/schemas"
)

// BenchmarkDecodeMapAvroOrder measures one Avro order (v1: decimals, nested
// customer, two items, attribution and client records) from Confluent
// wire-format bytes to the event, with a warm schema cache, three ways in
// one run:
//
//	hamba-generic  Decode with schemas.HambaGeneric (hamba/avro's generic
//	               decoding into map[string]any, normalized) + MapValue
//	compiled       Decode (the compiled decoder) + MapValue
//	fields         DecodeFields with schemas.NewFieldSet(m.Paths(topic)...)
//	               (only the fields the rules read) + MapValue
//	map-only       MapValue alone, on a decoded value
//
//	go test -run '^$' -bench DecodeMapAvroOrder -benchmem ./mapping/
func BenchmarkDecodeMapAvroOrder(b *testing.B) {
	ctx := context.Background()
	reg := srfake.New()
	b.Cleanup(reg.Close)
	text, _ := schemas.Embedded(schemas.OrderV1)
	id, _, err := reg.RegisterSchema("shop.orders-value", sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := schemas.ParseEmbedded(schemas.OrderV1)
	wire, err := schemas.Encode(id, s.Avro, avroOrder(1, true))
	if err != nil {
		b.Fatal(err)
	}
	m := compileYAML(b, avroOrderRules)
	fs := schemas.NewFieldSet(m.Paths("shop.orders")...)
	rec := &Record{Topic: "shop.orders", Offset: 1, Value: wire, Timestamp: avroCreated}
	var want []Output
	run := func(name string, decode func(*schemas.Decoder) (any, error), opts ...schemas.Option) {
		d, err := schemas.NewDecoder(schemas.RegistryConfig{URLs: []string{reg.URL()}}, opts...)
		if err != nil {
			b.Fatal(err)
		}
		v, err := decode(d) // warm the schema cache
		if err != nil {
			b.Fatal(err)
		}
		outs, err := m.MapValue(rec, v, nil)
		if err != nil || len(outs) != 1 {
			b.Fatalf("%s: %v %v", name, outs, err)
		}
		if want == nil {
			want = outs
		} else if !reflect.DeepEqual(outs, want) {
			b.Fatalf("%s gives another event: %+v", name, outs)
		}
		b.Run(name, func(b *testing.B) {
			dst := make([]Output, 0, 1)
			b.ReportAllocs()
			for b.Loop() {
				v, err := decode(d)
				if err != nil {
					b.Fatal(err)
				}
				if dst, err = m.MapValue(rec, v, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	decode := func(d *schemas.Decoder) (any, error) { v, _, err := d.Decode(ctx, wire); return v, err }
	run("hamba-generic", decode, schemas.HambaGeneric())
	run("compiled", decode)
	run("fields", func(d *schemas.Decoder) (any, error) { v, _, err := d.DecodeFields(ctx, wire, fs); return v, err })
	// The mapping alone, from an already decoded value: what the rules cost.
	tree, _, err := schemas.DecodeWireWith(s, wire)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("map-only", func(b *testing.B) {
		dst := make([]Output, 0, 1)
		b.ReportAllocs()
		for b.Loop() {
			if dst, err = m.MapValue(rec, tree, dst[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
