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
// wire-format bytes to the event, with a warm schema cache, several ways in
// one run:
//
//	hamba-generic  Decode with schemas.HambaGeneric (hamba/avro's generic
//	               decoding into map[string]any, normalized) + MapValue
//	arena          DecodeRecordIn into one reused schemas.Arena (records by
//	               field position, strings pointing into the payload, no
//	               allocation in the decoder but the decimals' text) +
//	               MapValue (what the relay runs)
//	compiled       DecodeRecord (the compiled decoder, records as
//	               *schemas.Record: fields by position, no maps, fresh
//	               memory for every value) + MapValue
//	compiled-map   Decode (the compiled decoder into map[string]any) + MapValue
//	fields         DecodeRecordFields with schemas.NewFieldSet(m.Paths(topic)...)
//	               (only the fields the rules read) + MapValue
//	fields-map     DecodeFields with the same FieldSet (maps) + MapValue
//	map-only       MapValue alone, on a value of Decode (maps)
//	map-only-record MapValue alone, on a value of DecodeRecord
//
// Every case must give the same event (checked before it is timed).
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
	var arena schemas.Arena
	run("arena", func(d *schemas.Decoder) (any, error) { v, _, err := d.DecodeRecordIn(ctx, wire, &arena); return v, err })
	run("compiled", func(d *schemas.Decoder) (any, error) { v, _, err := d.DecodeRecord(ctx, wire); return v, err })
	run("compiled-map", decode)
	run("fields", func(d *schemas.Decoder) (any, error) { v, _, err := d.DecodeRecordFields(ctx, wire, fs); return v, err })
	run("fields-map", func(d *schemas.Decoder) (any, error) { v, _, err := d.DecodeFields(ctx, wire, fs); return v, err })
	// The mapping alone, from an already decoded value: what the rules cost.
	tree, _, err := schemas.DecodeWireWith(s, wire)
	if err != nil {
		b.Fatal(err)
	}
	recTree, _, err := schemas.DecodeWireRecordWith(s, wire)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    any
	}{{"map-only", tree}, {"map-only-record", recTree}} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]Output, 0, 1)
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = m.MapValue(rec, c.v, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
