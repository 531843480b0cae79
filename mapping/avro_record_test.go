package mapping

import (
	"context"
	"os"
	"reflect"
	"regexp"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/schemas"
)

// avroCELRules exercise the CEL fallback (value and item converted from
// *schemas.Record), has() and optional selection over records.
const avroCELRules = `topics:
  - topic: shop.orders
    format: avro
    rules:
      - name: cel
        when: 'value.items.size() > 0 && value.items.exists(i, i.qty >= 1) && !has(value.coupon)'
        event:
          type: order_created
          action_source: web
          id: 'value.order_id + "-" + string(size(value.items)) + (has(value.customer.phone) ? "-p" : "") + (has(value.client) ? "-c" : "")'
          timestamp: value.created_at
          source_url: url.origin_path(value.checkout_url)
          oppref: 'has(value.attribution) ? value.attribution.oppref : "none"'
          user:
            email: value.customer.email
            phone: 'value.?customer.phone.orValue("")'
            external_id: 'value.customer.id + (has(value.customer.country) ? value.customer.country : "")'
          data:
            amount: 'has(value.total) ? money.minor(value.total, value.currency) : value.total_cents'
            currency: value.currency
            contents:
              each: 'value.items.filter(i, i.qty > 0)'
              as: item
              fields:
                id: 'item.sku + "/" + item.title'
                quantity: item.qty
                amount: 'has(item.unit_price) ? money.minor(item.unit_price, value.currency) : item.unit_price_cents'
`

// TestDecodeRecordSameEvents checks that the records of DecodeRecord (and
// DecodeRecordFields, and DecodeRecordIn with one reused Arena) map to exactly the events of Decode's maps, for both
// order versions, with the optional parts present and absent (null unions),
// with the native rules, the deploy example's rules and CEL fallbacks.
func TestDecodeRecordSameEvents(t *testing.T) {
	example, err := os.ReadFile("../deploy/examples/avro-orders/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The local schema files are for `check`; the mapping does not need them.
	exampleRules := regexp.MustCompile(`(?m)^\s*schema:.*$`).ReplaceAllString(string(example), "")
	ctx := context.Background()
	reg, d := registryDecoder(t)
	rec := &Record{Topic: "shop.orders", Offset: 3, Timestamp: avroCreated}
	var arena schemas.Arena // one for the whole test: reused as the relay reuses it
	for name, rules := range map[string]string{"native": avroOrderRules, "example": exampleRules, "cel": avroCELRules} {
		m := compileYAML(t, rules)
		fs := schemas.NewFieldSet(m.Paths("shop.orders")...)
		for i, file := range []string{schemas.OrderV1, schemas.OrderV2} {
			text, _ := schemas.Embedded(file)
			id, _, err := reg.RegisterSchema("shop.orders-value", sr.Schema{Schema: text, Type: sr.TypeAvro})
			if err != nil {
				t.Fatal(err)
			}
			s, _ := schemas.ParseEmbedded(file)
			for _, full := range []bool{true, false} {
				wire, err := schemas.Encode(id, s.Avro, avroOrder(i+1, full))
				if err != nil {
					t.Fatal(err)
				}
				tree, _, err := d.Decode(ctx, wire)
				if err != nil {
					t.Fatal(err)
				}
				want, err := m.MapValue(rec, tree, nil)
				if err != nil || len(want) != 1 {
					t.Fatalf("%s %s full=%v: Decode: %v %v", name, file, full, want, err)
				}
				check := func(how string, v any) {
					t.Helper()
					got, err := m.MapValue(rec, v, nil)
					if err != nil {
						t.Fatalf("%s %s full=%v %s: %v", name, file, full, how, err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s %s full=%v %s:\n got %+v\nwant %+v", name, file, full, how, got, want)
					}
				}
				rv, _, err := d.DecodeRecord(ctx, wire)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := rv.(*schemas.Record); !ok {
					t.Fatalf("DecodeRecord gave %T", rv)
				}
				if !reflect.DeepEqual(schemas.Plain(rv), tree) {
					t.Errorf("%s full=%v: Plain(DecodeRecord) differs from Decode", file, full)
				}
				check("DecodeRecord", rv)
				fv, _, err := d.DecodeRecordFields(ctx, wire, fs)
				if err != nil {
					t.Fatal(err)
				}
				check("DecodeRecordFields", fv)
				av, _, err := d.DecodeRecordIn(ctx, wire, &arena)
				if err != nil {
					t.Fatal(err)
				}
				check("DecodeRecordIn", av)
				lv, _, err := schemas.DecodeWireRecordWith(s, wire)
				if err != nil {
					t.Fatal(err)
				}
				check("DecodeWireRecordWith", lv)
				if full && name == "native" {
					// Absent optional fields: the nulls are nil slots.
					r := rv.(*schemas.Record)
					c, _ := r.Field("customer")
					if _, ok := c.(*schemas.Record).Field("phone"); !ok {
						t.Errorf("%s: customer.phone absent", file)
					}
				}
				if !full {
					r := rv.(*schemas.Record)
					for _, f := range []string{"attribution", "client", "nope"} {
						if v, ok := r.Field(f); ok || v != nil {
							t.Errorf("%s: field %s present: %v", file, f, v)
						}
					}
				}
			}
		}
	}
}

// avroPropsRules copy lists, records, decimals and timestamps of the value
// into a custom event's properties.
const avroPropsRules = `topics:
  - topic: shop.orders
    format: avro
    rules:
      - name: props
        event:
          type: custom
          custom_event_name: order_copy
          action_source: other
          id: value.order_id
          timestamp: value.created_at
          user:
            external_id: value.customer.id
          data:
            properties:
              customer: value.customer
              items: value.items
              total: value.?total
              created: value.created_at
              attribution: value.?attribution
`

// TestArenaOutputsDetached: events mapped from a value decoded into an
// Arena keep their content when the arena is reused for the next record,
// including properties that copy whole records and lists of the value
// (MapValue's guarantee, which the relay's reuse of one arena relies on).
func TestArenaOutputsDetached(t *testing.T) {
	ctx := context.Background()
	reg, d := registryDecoder(t)
	text, _ := schemas.Embedded(schemas.OrderV1)
	id, _, err := reg.RegisterSchema("shop.orders-value", sr.Schema{Schema: text, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := schemas.ParseEmbedded(schemas.OrderV1)
	m := compileYAML(t, avroPropsRules)
	rec := &Record{Topic: "shop.orders", Offset: 3, Timestamp: avroCreated}
	first, second := avroOrder(1, true), avroOrder(1, true)
	second["order_id"] = "ord_9999"
	second["customer"] = map[string]any{"id": "cust_77", "email": "b@example.org", "phone": nil, "country": map[string]any{"string": "DE"}}
	second["items"] = []map[string]any{{"sku": "sku_zzz", "title": "Other thing", "qty": 7, "unit_price": first["total"]}}
	var wires [2][]byte
	for i, o := range []map[string]any{first, second} {
		if wires[i], err = schemas.Encode(id, s.Avro, o); err != nil {
			t.Fatal(err)
		}
	}
	// The events of the first record, mapped from a fresh decode.
	tree, _, err := d.Decode(ctx, wires[0])
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.MapValue(rec, tree, nil)
	if err != nil || len(want) != 1 || want[0].Event.Data.Properties["customer"] == nil {
		t.Fatalf("fresh decode: %+v %v", want, err)
	}
	// A warm arena (sized by a decode of the larger record), so the next
	// two decodes share its memory.
	var arena schemas.Arena
	if _, _, err := d.DecodeRecordIn(ctx, wires[0], &arena); err != nil {
		t.Fatal(err)
	}
	v, _, err := d.DecodeRecordIn(ctx, wires[0], &arena)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.MapValue(rec, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Reuse the arena for another record (and map it, as the relay does).
	v2, _, err := d.DecodeRecordIn(ctx, wires[1], &arena)
	if err != nil {
		t.Fatal(err)
	}
	if outs, err := m.MapValue(rec, v2, nil); err != nil || outs[0].Event.ID != "ord_9999" {
		t.Fatalf("second record: %+v %v", outs, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the first record's events changed when the arena was reused:\n got %+v\nwant %+v",
			got[0].Event.Data.Properties, want[0].Event.Data.Properties)
	}
}

// registryDecoder returns an empty in-process registry and a decoder that
// reads it; both are closed with the test.
func registryDecoder(t *testing.T) (*srfake.Registry, *schemas.Decoder) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	d, err := schemas.NewDecoder(schemas.RegistryConfig{URLs: []string{reg.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	return reg, d
}
