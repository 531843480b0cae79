package mapping

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/schemas"
)

// mapperTriple compiles src three ways: with every fast path (the path cache
// and the specialized helper nodes), with plain native nodes only, and with
// CEL only.
func mapperTriple(t *testing.T, src func() *Mapper) (fast, plain, celm *Mapper) {
	t.Helper()
	fast = src()
	noFastPaths = true
	plain = src()
	noFastPaths = false
	celOnly = true
	celm = src()
	celOnly = false
	return fast, plain, celm
}

// sameOutputs maps value with the three mappers and fails unless they agree
// (events and error texts).
func sameOutputs(t *testing.T, name string, rec *Record, value any, fast, plain, celm *Mapper) {
	t.Helper()
	fo, ferr := fast.MapValue(rec, value, nil)
	// Twice: the pooled context and its cache must not leak into the next
	// record.
	fo2, ferr2 := fast.MapValue(rec, value, nil)
	po, perr := plain.MapValue(rec, value, nil)
	co, cerr := celm.MapValue(rec, value, nil)
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	if errText(ferr) != errText(perr) || !reflect.DeepEqual(fo, po) {
		t.Errorf("%s: fast paths and plain nodes differ:\nfast:  %v %s\nplain: %v %s", name, ferr, events(fo), perr, events(po))
	}
	if errText(ferr) != errText(ferr2) || !reflect.DeepEqual(fo, fo2) {
		t.Errorf("%s: a second run differs:\n1: %v %s\n2: %v %s", name, ferr, events(fo), ferr2, events(fo2))
	}
	// CEL's error texts differ from the native ones (and CEL fails where a
	// native helper gives absent on a null argument): compare events only
	// when both succeed.
	if ferr == nil && cerr == nil && !reflect.DeepEqual(fo, co) {
		t.Errorf("%s: fast paths and CEL differ:\nfast: %s\nCEL:  %s", name, events(fo), events(co))
	}
}

func events(outs []Output) string {
	var b []byte
	for i := range outs {
		b = capi.AppendEvent(append(b, ' '), &outs[i].Event)
	}
	return string(b)
}

// shopVariants returns the shop order and variants of it: keys absent,
// null, of another type; unusual emails, phones, currencies, URLs, items.
func shopVariants(t *testing.T) map[string]any {
	t.Helper()
	fresh := func() map[string]any {
		v, err := DecodeJSON(shopOrderJSON)
		if err != nil {
			t.Fatal(err)
		}
		return v.(map[string]any)
	}
	out := map[string]any{"as is": fresh()}
	add := func(name string, f func(v map[string]any)) {
		v := fresh()
		f(v)
		out[name] = v
	}
	top := fresh()
	for k := range top {
		add("no "+k, func(v map[string]any) { delete(v, k) })
		add("null "+k, func(v map[string]any) { v[k] = nil })
		add("string "+k, func(v map[string]any) { v[k] = "x" })
		add("int "+k, func(v map[string]any) { v[k] = int64(5) })
	}
	for _, k := range []string{"id", "email", "phone", "country"} {
		add("no customer."+k, func(v map[string]any) { delete(v["customer"].(map[string]any), k) })
		add("null customer."+k, func(v map[string]any) { v["customer"].(map[string]any)[k] = nil })
		add("int customer."+k, func(v map[string]any) { v["customer"].(map[string]any)[k] = int64(7) })
		add("list customer."+k, func(v map[string]any) { v["customer"].(map[string]any)[k] = []any{"a@b.c", "+1 415 555 2671"} })
	}
	for _, e := range []string{"ÉLODIE@Exemple.FR", "  User@Example.COM \n", "", "   ", "İ@x.tr",
		"B4C9A289323B21A01C3E940F150EB9B8C542587F1ABFD8F0E1CC1FFC5E475514"} {
		add("email "+e, func(v map[string]any) { v["customer"].(map[string]any)["email"] = e })
	}
	for _, p := range []string{"+44 020 7946 0958", "(0)415-555-2671", "+1\u00a0415\u2003555 2671", "415 CALL NOW",
		"12", "٤١٥٥٥٥٢٦٧١٢", "+1 415 555 2671 1234 5678", "\xff4155552671", "0044.20.7946.0958"} {
		add("phone "+p, func(v map[string]any) { v["customer"].(map[string]any)["phone"] = p })
	}
	for _, id := range []string{"Kunde_Ä", " spaced ", strings.Repeat("x", 500)} {
		add("id "+id, func(v map[string]any) { v["customer"].(map[string]any)["id"] = id })
	}
	for _, cur := range []any{"JPY", "XYZ", "usd", int64(840), nil} {
		add("currency "+reflect.ValueOf(cur).String(), func(v map[string]any) { v["currency"] = cur })
	}
	for _, total := range []any{"1.005", "-0.5", " 12 ", "1e3", int64(3), float64(2.5), "abc"} {
		add("total "+reflect.ValueOf(total).String(), func(v map[string]any) { v["total"] = total })
	}
	for _, u := range []string{"HTTPS://Shop.Example.COM/A/b?c#d", "/relative", "https://user:pw@x.com/p?q", "https://x.com",
		"https://x.com?q=1", "https://x.com#f", "https://:80/", "ht tp://x.com/", "https://x.com/a b", "https://ÄÖ.example/ü"} {
		add("url "+u, func(v map[string]any) { v["checkout_url"] = u })
	}
	for _, ts := range []string{"2026-03-19T06:00:00.123+02:00", "2026-03-31T23:59:59Z", "2026-03-19 04:00:00", "x"} {
		add("created_at "+ts, func(v map[string]any) { v["created_at"] = ts })
	}
	add("no items", func(v map[string]any) { v["items"] = []any{} })
	add("item without price", func(v map[string]any) { delete(v["items"].([]any)[1].(map[string]any), "unit_price") })
	add("item int price", func(v map[string]any) { v["items"].([]any)[0].(map[string]any)["unit_price"] = int64(12) })
	add("item string qty", func(v map[string]any) { v["items"].([]any)[0].(map[string]any)["qty"] = "3" })
	add("item null", func(v map[string]any) { v["items"].([]any)[0] = nil })
	add("items map", func(v map[string]any) { v["items"] = map[string]any{"sku": "x"} })
	add("attribution without oppref", func(v map[string]any) { v["attribution"] = map[string]any{} })
	add("client list", func(v map[string]any) { v["client"] = []any{"x"} })
	return out
}

func TestFastPathsWebShop(t *testing.T) {
	fast, plain, celm := mapperTriple(t, func() *Mapper { return webShopMapper(t) })
	rec := shopRecord()
	mapped := 0
	for name, v := range shopVariants(t) {
		sameOutputs(t, name, rec, v, fast, plain, celm)
		outs, err := fast.MapValue(rec, v, nil)
		if err != nil || len(outs) != 1 {
			continue
		}
		mapped++
		// The hashes (all made with one allocation) are each the hash of
		// their own input.
		c, _ := v.(map[string]any)["customer"].(map[string]any)
		u := outs[0].Event.User
		for _, f := range []struct {
			field capi.IdentityField
			raw   any
			got   []string
		}{{capi.FieldEmail, c["email"], u.EmailsSHA256}, {capi.FieldPhone, c["phone"], u.PhoneNumbersSHA256}, {capi.FieldExternalID, c["id"], u.ExternalIDsSHA256}} {
			if got, want := f.got, wantHashes(t, f.field, f.raw, false); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s hashes %q, want %q", name, f.field, got, want)
			}
		}
	}
	if mapped < 20 {
		t.Errorf("only %d variants mapped", mapped)
	}
}

// wantHashes hashes a string or a list of strings with capi.Hasher.Hash, as
// a user identity field does (empty strings skipped; invalid ones dropped
// when drop).
func wantHashes(t *testing.T, f capi.IdentityField, raw any, drop bool) []string {
	var raws []string
	one := func(x any) {
		switch x := x.(type) {
		case string:
			raws = append(raws, x)
		case int64: // written in decimal
			raws = append(raws, strconv.FormatInt(x, 10))
		}
	}
	if l, ok := raw.([]any); ok {
		for _, x := range l {
			one(x)
		}
	} else {
		one(raw)
	}
	var out []string
	for _, r := range raws {
		if strings.TrimSpace(r) == "" {
			continue
		}
		h, err := (&capi.Hasher{}).Hash(f, r)
		if err != nil {
			if drop {
				continue
			}
			t.Fatalf("%s %q: %v", f, r, err)
		}
		out = append(out, h)
	}
	return out
}

// fastPathRules reads the same paths several times, by index, with odd keys,
// with constant currencies, and drops invalid identities, so that the cache
// and the specialized nodes meet every case.
const fastPathRules = `topics:
  - topic: shop.orders
    identity:
      invalid: drop
    rules:
      - name: all
        when: has(value.customer) && value.status == "paid" || value["status"] == "pending"
        event:
          type: order_created
          action_source: web
          id: value.order_id
          timestamp: time.rfc3339(value.created_at)
          source_url: url.origin_path(value.checkout_url)
          oppref: value.?attribution.oppref
          user:
            email: '[value.customer.email, value.?customer.phone.orValue(""), "Second@Example.com"]'
            phone: value.?customer.phone
            external_id: value.customer.id
            first_name: value.?customer.address.city
            last_name: '"Ñúñez-O''Brien"'
            countries: value.?customer.country
            cities: value.?customer.address.city
            postal_codes: value.customer.address.zip
            ip_address: value.?client.ip
            user_agent: value.?client.user_agent
          data:
            amount: 'has(value.total) ? money.minor(value.total, value.currency) : money.minor(value.shipping.price, "EUR")'
            currency: value.currency
            contents:
              each: value.items
              as: item
              fields:
                id: item.sku
                name: item.title
                content_type: product
                quantity: item.qty
                amount: money.minor(item.unit_price, value.currency)
      - name: second
        when: value.customer.country == "US"
        event:
          type: custom
          custom_event_name: order_check
          timestamp: record
          action_source: other
          id: value.customer.id
          user:
            external_id: value.customer.id
            countries: value.customer.country
          data:
            properties:
              first_sku: value.items[0].sku
              second_qty: value.items[1].qty
              eta: value.shipping.eta_days
              cur: value.currency
              jpy: money.minor(value.shipping.price, "JPY")
              city: value.?customer.address.city
`

func TestFastPathsRules(t *testing.T) {
	fast, plain, celm := mapperTriple(t, func() *Mapper { return compileYAML(t, fastPathRules) })
	rec := shopRecord()
	for name, v := range shopVariants(t) {
		sameOutputs(t, name, rec, v, fast, plain, celm)
	}
	// Invalid identities are dropped, and the hashes of the others land in
	// their fields whatever was dropped before them.
	mapped := 0
	for name, v := range shopVariants(t) {
		outs, err := fast.MapValue(rec, v, nil)
		if err != nil || len(outs) == 0 || outs[0].Rule != "all" {
			continue
		}
		mapped++
		c, _ := v.(map[string]any)["customer"].(map[string]any)
		phone, ok := c["phone"]
		if !ok || phone == nil {
			phone = ""
		}
		u := outs[0].Event.User
		var emails []string
		if _, ok := c["email"]; ok { // else the list expression fails: absent
			emails = wantHashes(t, capi.FieldEmail, []any{c["email"], phone, "Second@Example.com"}, true)
		}
		if !reflect.DeepEqual(u.EmailsSHA256, emails) {
			t.Errorf("%s: emails %q, want %q", name, u.EmailsSHA256, emails)
		}
		if want := wantHashes(t, capi.FieldPhone, c["phone"], true); !reflect.DeepEqual(u.PhoneNumbersSHA256, want) {
			t.Errorf("%s: phones %q, want %q", name, u.PhoneNumbersSHA256, want)
		}
		if want := wantHashes(t, capi.FieldLastName, "Ñúñez-O'Brien", true); !reflect.DeepEqual(u.LastNamesSHA256, want) {
			t.Errorf("%s: last names %q, want %q", name, u.LastNamesSHA256, want)
		}
	}
	if mapped < 10 {
		t.Errorf("only %d variants mapped", mapped)
	}
	// The cache holds the paths read more than once.
	if n := fast.topics["shop.orders"].nslots; n == 0 {
		t.Error("no cached paths")
	}
	if n := plain.topics["shop.orders"].nslots; n != 0 {
		t.Errorf("plain: %d cached paths", n)
	}
}

func TestFastPathsAvro(t *testing.T) {
	fast, plain, celm := mapperTriple(t, func() *Mapper { return compileYAML(t, avroOrderRules) })
	rec := &Record{Topic: "shop.orders", Offset: 3, Timestamp: avroCreated}
	for _, full := range []bool{true, false} {
		for i, file := range []string{schemas.OrderV1, schemas.OrderV2} {
			tree, _ := decodeAvro(t, file, avroOrder(i+1, full))
			sameOutputs(t, file, rec, tree, fast, plain, celm)
			// And with parts missing.
			m := tree.(map[string]any)
			for _, k := range []string{"customer", "items", "total", "total_cents", "currency", "created_at"} {
				cp := make(map[string]any, len(m))
				for k, v := range m {
					cp[k] = v
				}
				delete(cp, k)
				sameOutputs(t, file+" without "+k, rec, cp, fast, plain, celm)
			}
		}
	}
}

// The path cache is per record: a mapper shared by goroutines, each
// mapping other records, gives each record its own event.
func TestFastPathsConcurrent(t *testing.T) {
	m := webShopMapper(t)
	variants := shopVariants(t)
	want := map[string]string{}
	for name, v := range variants {
		outs, err := m.MapValue(shopRecord(), v, nil)
		want[name] = events(outs) + errString(err)
	}
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- true }()
			for i := 0; i < 20; i++ {
				for name, v := range variants {
					outs, err := m.MapValue(shopRecord(), v, nil)
					if got := events(outs) + errString(err); got != want[name] {
						t.Errorf("%s: %s, want %s", name, got, want[name])
						return
					}
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " error: " + err.Error()
}
