package mapping

import (
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/schemas"
)

// avroOrderRules maps both versions of the Avro order (v1: decimals total and
// unit_price; v2: long cents total_cents and unit_price_cents) with one rule.
const avroOrderRules = `topics:
  - topic: shop.orders
    format: avro
    rules:
      - name: order-created
        when: value.status == "paid"
        event:
          type: order_created
          action_source: web
          id: value.order_id
          timestamp: value.created_at
          source_url: url.origin_path(value.checkout_url)
          oppref: value.?attribution.oppref
          user:
            email: value.customer.email
            phone: value.?customer.phone
            external_id: value.customer.id
            countries: value.?customer.country
            ip_address: value.?client.ip
            user_agent: value.?client.user_agent
          data:
            amount: 'has(value.total) ? money.minor(value.total, value.currency) : value.total_cents'
            currency: value.currency
            contents:
              each: value.items
              as: item
              fields:
                id: item.sku
                name: item.title
                content_type: product
                quantity: item.qty
                amount: 'has(item.unit_price) ? money.minor(item.unit_price, value.currency) : item.unit_price_cents'
`

var avroCreated = time.Date(2026, 3, 19, 4, 0, 0, 0, time.UTC)

// avroOrder returns hamba's encoding input of one order in v1 or v2 (same
// amounts), with the optional parts present or not.
func avroOrder(version int, full bool) map[string]any {
	o := map[string]any{
		"order_id":     "ord_1001",
		"status":       "paid",
		"created_at":   avroCreated,
		"currency":     "USD",
		"checkout_url": "https://shop.example.com/checkout/confirmation?session=abc",
		"customer":     map[string]any{"id": "cust_42", "email": " User@Example.com ", "phone": nil, "country": nil},
		"attribution":  nil,
		"client":       nil,
	}
	items := []map[string]any{
		{"sku": "sku_123", "title": "Starter bundle", "qty": 1},
		{"sku": "sku_456", "title": "Refill pack", "qty": 2},
	}
	prices := []int64{9999, 1500}
	if version == 1 {
		o["total"] = big.NewRat(12998, 100)
		for i, it := range items {
			it["unit_price"] = big.NewRat(prices[i], 100)
		}
	} else {
		o["total_cents"] = int64(12998)
		o["coupon"] = nil
		for i, it := range items {
			it["unit_price_cents"] = prices[i]
		}
	}
	o["items"] = []any{items[0], items[1]}
	if full {
		o["customer"] = map[string]any{"id": "cust_42", "email": " User@Example.com ", "phone": "+1 (415) 555-2671", "country": "US"}
		o["attribution"] = map[string]any{"com.example.shop.Attribution": map[string]any{"oppref": "oppref_abc"}}
		o["client"] = map[string]any{"com.example.shop.Client": map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}}
	}
	return o
}

// decodeAvro encodes v with an embedded schema and decodes it with the real
// decoder, returning the value tree and the wire bytes.
func decodeAvro(t testing.TB, file string, v map[string]any) (any, []byte) {
	t.Helper()
	s, err := schemas.ParseEmbedded(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := schemas.Encode(7, s.Avro, v)
	if err != nil {
		t.Fatalf("encode %s: %v", file, err)
	}
	tree, _, err := schemas.DecodeWireWith(s, b)
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	return tree, b
}

func TestAvroOneRuleForBothVersions(t *testing.T) {
	m := compileYAML(t, avroOrderRules)
	rec := &Record{Topic: "shop.orders", Offset: 3, Timestamp: avroCreated}
	for _, full := range []bool{true, false} {
		var events [2]capi.Event
		for i, file := range []string{schemas.OrderV1, schemas.OrderV2} {
			tree, _ := decodeAvro(t, file, avroOrder(i+1, full))
			outs, err := m.MapValue(rec, tree, nil)
			if err != nil || len(outs) != 1 {
				t.Fatalf("%s full=%v: %v %v", file, full, outs, err)
			}
			mustValid(t, &outs[0].Event)
			events[i] = outs[0].Event
		}
		if !reflect.DeepEqual(events[0], events[1]) {
			t.Errorf("full=%v: v1 and v2 give different events:\nv1 %s\nv2 %s", full, capi.AppendEvent(nil, &events[0]), capi.AppendEvent(nil, &events[1]))
		}
		e := events[0]
		if e.TimestampMS != avroCreated.UnixMilli() || e.Data.Amount.Value != 12998 || len(e.Data.Contents) != 2 ||
			e.Data.Contents[1].Amount.Value != 1500 || e.Data.Contents[1].Quantity.Value != 2 {
			t.Errorf("full=%v: event %s", full, capi.AppendEvent(nil, &e))
		}
		// Null unions are absent keys: optional fields are left out.
		if got := e.OppRef != "" && len(e.User.PhoneNumbersSHA256) == 1 && e.User.IPAddress != ""; got != full {
			t.Errorf("full=%v: optional fields %s", full, capi.AppendEvent(nil, &e))
		}
	}
}

func TestAvroMapRejectsBytes(t *testing.T) {
	m := compileYAML(t, avroOrderRules)
	_, b := decodeAvro(t, schemas.OrderV2, avroOrder(2, true))
	_, err := m.Map(&Record{Topic: "shop.orders", Value: b}, nil)
	var me *MapError
	if err == nil || errors.As(err, &me) || !strings.Contains(err.Error(), "format avro") || !strings.Contains(err.Error(), "MapValue") {
		t.Errorf("Map on an avro topic: %v", err)
	}
	// A nil value (a tombstone) gives nothing.
	if outs, err := m.MapValue(&Record{Topic: "shop.orders"}, nil, nil); err != nil || len(outs) != 0 {
		t.Errorf("MapValue(nil) = %v, %v", outs, err)
	}
}

func TestAvroTopicConfig(t *testing.T) {
	src := strings.Replace(avroOrderRules, "format: avro\n", "format: avro\n    subject: orders-v\n    schema: [a/order.v1.avsc, order.v2.avsc]\n", 1)
	f, err := config.Parse("/etc/capirelay/config.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, ok := m.Avro("shop.orders")
	want := AvroTopic{Topic: "shop.orders", Subject: "orders-v",
		SchemaFiles: []string{"/etc/capirelay/a/order.v1.avsc", "/etc/capirelay/order.v2.avsc"},
		SchemaNames: []string{"a/order.v1.avsc", "order.v2.avsc"}}
	if !ok || !reflect.DeepEqual(a, want) || m.Format("shop.orders") != FormatAvro {
		t.Errorf("Avro() = %+v, %v; want %+v", a, ok, want)
	}
	m = compileYAML(t, avroOrderRules)
	if a, _ := m.Avro("shop.orders"); a.Subject != "shop.orders-value" || a.SchemaFiles != nil {
		t.Errorf("defaults: %+v", a)
	}
	if _, ok := webShopMapper(t).Avro("shop.orders"); ok {
		t.Error("a json topic is not avro")
	}
}

func TestAvroPaths(t *testing.T) {
	m := compileYAML(t, avroOrderRules)
	want := []string{"attribution.oppref", "checkout_url", "client.ip", "client.user_agent", "created_at", "currency",
		"customer.country", "customer.email", "customer.id", "customer.phone",
		"items.qty", "items.sku", "items.title", "items.unit_price", "items.unit_price_cents",
		"order_id", "status", "total", "total_cents"}
	if got := m.Paths("shop.orders"); !reflect.DeepEqual(got, want) {
		t.Errorf("Paths =\n%q\nwant\n%q", got, want)
	}
	whole := compileYAML(t, strings.Replace(avroOrderRules, "id: value.order_id", "id: value.order_id + string(size(value))", 1))
	if p := whole.Paths("shop.orders"); p != nil {
		t.Errorf("a rule reading the whole value: Paths = %q, want nil", p)
	}
	if p := m.Paths("nope"); p != nil {
		t.Errorf("unknown topic: %q", p)
	}
}

func TestAvroTimestampsInHelpers(t *testing.T) {
	for _, src := range []string{"value.ts", "time.rfc3339(value.ts)", "time.epoch_millis(value.ts)", "time.epoch_seconds(value.ts)", "time.epoch_micros(value.ts)"} {
		v, err, _ := evalBoth(t, src)
		if err != nil || v.k != kTime || v.n != testTime.UnixMilli()+123 {
			t.Errorf("%s = %+v, %v", src, v, err)
		}
	}
	// The ternary of the one-rule-for-two-versions pattern runs natively.
	for _, src := range []string{`has(value.price) ? money.minor(value.price, value.cur) : value.n`,
		`has(value.nope) ? money.minor(value.nope, value.cur) : value.n`, `value.t ? "a" : "b"`,
		`has(value.nope) ? 1 : value.nope`, `value.s ? 1 : 2`, `value.nope ? 1 : 2`} {
		if _, _, native := evalBoth(t, src); !native {
			t.Errorf("%s: not native", src)
		}
	}
	if v, err, _ := evalBoth(t, "value.bin"); err != nil || v.k != kOther {
		t.Errorf("bytes: %+v %v", v, err)
	}
}
