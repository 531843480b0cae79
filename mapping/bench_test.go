package mapping

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/config"
)

// shopOrderJSON is the web-shop example's order: about 10 fields, 2 items, a
// raw email and phone to hash.
var shopOrderJSON = []byte(`{
  "order_id": "ord_1001",
  "status": "paid",
  "created_at": "2026-03-19T04:00:00Z",
  "currency": "USD",
  "total": "129.98",
  "checkout_url": "https://shop.example.com/checkout/confirmation?session=abc123&utm_source=ads#top",
  "attribution": {"oppref": "oppref_abc", "campaign": "spring"},
  "customer": {"id": "cust_42", "email": "user@example.com", "phone": "+1 (415) 555-2671", "country": "US",
               "address": {"street": "1 Main St", "city": "San Francisco", "zip": "94105"}},
  "client": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15"},
  "shipping": {"method": "express", "price": "9.99", "eta_days": 2},
  "notes": "leave at the door",
  "items": [
    {"sku": "sku_123", "title": "Starter bundle", "qty": 1, "unit_price": "99.99", "weight_g": 1200, "tags": ["new", "bundle"]},
    {"sku": "sku_456", "title": "Refill pack", "qty": 2, "unit_price": "14.995", "weight_g": 300, "tags": ["refill"]}
  ]
}`)

func webShopMapper(tb testing.TB) *Mapper {
	tb.Helper()
	f, err := config.Load("../deploy/examples/web-shop/config.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	m, err := Compile(f, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func shopRecord() *Record {
	return &Record{Topic: "shop.orders", Partition: 0, Offset: 42, Key: []byte("ord_1001"), Value: shopOrderJSON, Timestamp: testTime}
}

// handWritten maps the decoded shop order exactly as the web-shop rule does,
// in plain Go: the floor the compiled rules are measured against.
func handWritten(h *capi.Hasher, v map[string]any, e *capi.Event) error {
	if v["status"] != "paid" {
		return nil
	}
	id, _ := v["order_id"].(string)
	created, _ := v["created_at"].(string)
	ts, err := parseRFC3339(created)
	if err != nil {
		return err
	}
	cur, _ := v["currency"].(string)
	total, _ := v["total"].(string)
	exp, ok := capi.CurrencyExponent(cur)
	if !ok {
		return errors.New("currency")
	}
	amount, err := decimalMinor(total, exp)
	if err != nil {
		return err
	}
	u, _ := v["checkout_url"].(string)
	src, err := originPath(u)
	if err != nil {
		return err
	}
	*e = capi.Event{ID: id, Type: capi.OrderCreated, TimestampMS: ts.UnixMilli(), ActionSource: capi.SourceWeb, SourceURL: src}
	if a, ok := v["attribution"].(map[string]any); ok {
		e.OppRef, _ = a["oppref"].(string)
	}
	c, _ := v["customer"].(map[string]any)
	email, _ := c["email"].(string)
	phone, _ := c["phone"].(string)
	xid, _ := c["id"].(string)
	country, _ := c["country"].(string)
	hs := make([]string, 4)
	if hs[0], err = h.Hash(capi.FieldEmail, email); err != nil {
		return err
	}
	if hs[1], err = h.Hash(capi.FieldPhone, phone); err != nil {
		return err
	}
	if hs[2], err = h.Hash(capi.FieldExternalID, xid); err != nil {
		return err
	}
	hs[3] = country
	e.User = capi.User{EmailsSHA256: hs[0:1:1], PhoneNumbersSHA256: hs[1:2:2], ExternalIDsSHA256: hs[2:3:3], Countries: hs[3:4:4]}
	if cl, ok := v["client"].(map[string]any); ok {
		e.User.IPAddress, _ = cl["ip"].(string)
		e.User.UserAgent, _ = cl["user_agent"].(string)
	}
	e.Data = capi.Data{Type: capi.DataContents, Amount: capi.Int64(amount), Currency: cur}
	items, _ := v["items"].([]any)
	e.Data.Contents = make([]capi.Content, len(items))
	for i, it := range items {
		m, _ := it.(map[string]any)
		ct := &e.Data.Contents[i]
		ct.ID, _ = m["sku"].(string)
		ct.Name, _ = m["title"].(string)
		ct.ContentType = "product"
		if q, ok := m["qty"].(int64); ok {
			ct.Quantity = capi.Int64(q)
		}
		p, _ := m["unit_price"].(string)
		a, err := decimalMinor(p, exp)
		if err != nil {
			return err
		}
		ct.Amount = capi.Int64(a)
	}
	return nil
}

func TestHandWrittenMatchesRules(t *testing.T) {
	celOnly = true
	mc := webShopMapper(t)
	celOnly = false
	m := webShopMapper(t)
	v, err := DecodeJSON(shopOrderJSON)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.MapValue(shopRecord(), v, nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("MapValue: %v, %d outputs", err, len(out))
	}
	var want capi.Event
	if err := handWritten(&capi.Hasher{}, v.(map[string]any), &want); err != nil {
		t.Fatal(err)
	}
	got, exp := string(capi.AppendEvent(nil, &out[0].Event)), string(capi.AppendEvent(nil, &want))
	if got != exp {
		t.Errorf("rules and hand-written code differ:\nrules: %s\nhand:  %s", got, exp)
	}
	outc, err := mc.MapValue(shopRecord(), v, nil)
	if err != nil || len(outc) != 1 {
		t.Fatalf("MapValue (CEL only): %v", err)
	}
	if c := string(capi.AppendEvent(nil, &outc[0].Event)); c != got {
		t.Errorf("native and CEL-only evaluation differ:\nnative: %s\nCEL:    %s", got, c)
	}
	mustValid(t, &out[0].Event)
}

func BenchmarkMapShopOrder(b *testing.B) {
	m := webShopMapper(b)
	v, err := DecodeJSON(shopOrderJSON)
	if err != nil {
		b.Fatal(err)
	}
	rec := shopRecord()
	dst := make([]Output, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.MapValue(rec, v, dst[:0])
		if err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapShopOrderCELOnly is BenchmarkMapShopOrder with every
// expression run by the CEL interpreter (no native fast paths).
func BenchmarkMapShopOrderCELOnly(b *testing.B) {
	celOnly = true
	m := webShopMapper(b)
	celOnly = false
	v, err := DecodeJSON(shopOrderJSON)
	if err != nil {
		b.Fatal(err)
	}
	rec := shopRecord()
	dst := make([]Output, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.MapValue(rec, v, dst[:0])
		if err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkMapShopOrderHandWritten(b *testing.B) {
	v, err := DecodeJSON(shopOrderJSON)
	if err != nil {
		b.Fatal(err)
	}
	h := &capi.Hasher{}
	var e capi.Event
	b.ReportAllocs()
	for b.Loop() {
		if err := handWritten(h, v.(map[string]any), &e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMapShopOrder(b *testing.B) {
	m := webShopMapper(b)
	rec := shopRecord()
	dst := make([]Output, 0, 4)
	b.SetBytes(int64(len(shopOrderJSON)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := m.Map(rec, dst[:0])
		if err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFullMapShopOrder(b *testing.B) {
	m := webShopMapper(b)
	rec := shopRecord()
	dst := make([]Output, 0, 4)
	b.SetBytes(int64(len(shopOrderJSON)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := DecodeJSON(rec.Value)
		if err != nil {
			b.Fatal(err)
		}
		out, err := m.MapValue(rec, v, dst[:0])
		if err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStdlibMapShopOrder(b *testing.B) {
	m := webShopMapper(b)
	rec := shopRecord()
	dst := make([]Output, 0, 4)
	b.SetBytes(int64(len(shopOrderJSON)))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(rec.Value, &v); err != nil {
			b.Fatal(err)
		}
		out, err := m.MapValue(rec, v, dst[:0])
		if err != nil || len(out) != 1 {
			b.Fatal(err)
		}
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
