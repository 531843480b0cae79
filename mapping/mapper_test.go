package mapping

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/capirelay/capirelay/capi"
)

const twoRules = `topics:
  - topic: signups
    identity: {invalid: drop}
    rules:
      - name: reg
        event:
          type: registration_completed
          id: value.user_id
          timestamp: record
          action_source: other
          oppref: value.?oppref
          user:
            email: value.?emails
            phone: value.?phone
            external_id: value.user_id
            countries: value.?country
      - name: lead
        when: value.?opt_in.orValue(false)
        pixel: px_leads
        event:
          type: lead_created
          id: '"lead-" + string(value.user_id)'
          timestamp: time.epoch_millis(value.at_ms)
          action_source: email
          data:
            amount: value.?value_cents
            currency: value.?currency
  - topic: strict
    rules:
      - name: s
        when: value.kind == "x"
        event:
          type: page_viewed
          id: value.id
          timestamp: value.at
          action_source: web
          source_url: value.?url
          user: {phone: 'value.?phone'}
          data:
            amount: value.?amount
            currency: value.?currency
            contents:
              each: value.?items
              fields: {id: item.id, quantity: item.q, amount: 'item.?cents'}
`

func mapJSON(t *testing.T, m *Mapper, topic, js string) ([]Output, error) {
	t.Helper()
	rec := &Record{Topic: topic, Partition: 1, Offset: 99, Value: []byte(js), Timestamp: testTime}
	return m.Map(rec, nil)
}

func TestMapTwoEventsAndAbsentFields(t *testing.T) {
	m := compileYAML(t, twoRules)
	out, err := mapJSON(t, m, "signups", `{"user_id": 12345, "emails": ["a@example.com", "", null, "B@example.com"], "phone": "123", "opt_in": true, "at_ms": 1773892800000}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("want 2 events, got %d", len(out))
	}
	reg, lead := out[0], out[1]
	if reg.Rule != "reg" || reg.Pixel != "" || lead.Rule != "lead" || lead.Pixel != "px_leads" {
		t.Errorf("rules/pixels = %q/%q, %q/%q", reg.Rule, reg.Pixel, lead.Rule, lead.Pixel)
	}
	e := reg.Event
	if e.ID != "12345" || e.TimestampMS != testTime.UnixMilli() || e.OppRef != "" || e.Data.Type != capi.DataCustomerAction {
		t.Errorf("reg event = %+v", e)
	}
	wantEmails := []string{capi.SHA256Hex("a@example.com"), capi.SHA256Hex("b@example.com")}
	if !reflect.DeepEqual(e.User.EmailsSHA256, wantEmails) {
		t.Errorf("emails = %v, want %v (empty and null skipped, normalized, hashed)", e.User.EmailsSHA256, wantEmails)
	}
	if len(e.User.PhoneNumbersSHA256) != 0 {
		t.Errorf("an invalid phone is dropped with identity.invalid: drop, got %v", e.User.PhoneNumbersSHA256)
	}
	if want := []string{capi.SHA256Hex("12345")}; !reflect.DeepEqual(e.User.ExternalIDsSHA256, want) {
		t.Errorf("external ids = %v, want %v", e.User.ExternalIDsSHA256, want)
	}
	if lead.Event.ID != "lead-12345" || lead.Event.Data.Amount.Valid || lead.Event.Data.Currency != "" {
		t.Errorf("lead event = %+v", lead.Event)
	}
	for i := range out {
		mustValid(t, &out[i].Event)
	}
	// when false: the rule is skipped.
	out, err = mapJSON(t, m, "signups", `{"user_id": "u1", "opt_in": false, "at_ms": 1}`)
	if err != nil || len(out) != 1 || out[0].Rule != "reg" {
		t.Fatalf("opt_in false: %v, %+v", err, out)
	}
}

func TestMapErrors(t *testing.T) {
	m := compileYAML(t, twoRules)
	tests := []struct {
		name, topic, js  string
		rule, field, cls string
		contains         string
	}{
		{"missing id", "strict", `{"kind":"x","at":1773892800000,"url":"https://x/y"}`, "s", "id", ClassMapping, "required, but the expression gave no value"},
		{"when reads a missing key", "strict", `{"id":"1"}`, "s", "when", ClassMapping, "use has(value.x) or value.?x"},
		{"timestamp is a string", "strict", `{"kind":"x","id":"1","at":"2026-01-01","url":"https://x/y"}`, "s", "timestamp", ClassMapping, "parse it with time.rfc3339"},
		{"web without url", "strict", `{"kind":"x","id":"1","at":1773892800000}`, "s", "source_url", ClassMapping, "required when action_source is web"},
		{"amount without currency", "strict", `{"kind":"x","id":"1","at":1,"url":"https://x/y","amount":5}`, "s", "data.currency", ClassMapping, "required when amount is set"},
		{"amount as a float", "strict", `{"kind":"x","id":"1","at":1,"url":"https://x/y","amount":5.5,"currency":"USD"}`, "s", "data.amount", ClassMapping, "convert major units with money.minor"},
		{"id is an object", "strict", `{"kind":"x","id":{},"at":1,"url":"https://x/y"}`, "s", "id", ClassMapping, "must be a string or an int, got map"},
		{"item amount without currency", "strict", `{"kind":"x","id":"1","at":1,"url":"https://x/y","items":[{"id":"a","q":1},{"id":"b","q":"2","cents":5}]}`, "s", "data.contents[1].currency", ClassMapping, "required when the item has an amount"},
		{"item quantity not an int", "strict", `{"kind":"x","id":"1","at":1,"url":"https://x/y","items":[{"id":"a","q":"x"}]}`, "s", "data.contents[0].quantity", ClassMapping, "must be an integer"},
		{"invalid phone", "strict", `{"kind":"x","id":"1","at":1,"url":"https://x/y","phone":"12"}`, "s", "user.phone", ClassMapping, "8 to 15 digits"},
		{"not JSON", "strict", `{"kind":`, "", "", ClassDecode, "invalid JSON"},
		{"unknown topic", "nope", `{}`, "", "", ClassMapping, `no rules for topic "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []Output{{Rule: "earlier"}}
			rec := &Record{Topic: tt.topic, Partition: 1, Offset: 99, Value: []byte(tt.js), Timestamp: testTime}
			out, err := m.Map(rec, dst)
			var me *MapError
			if !errors.As(err, &me) {
				t.Fatalf("want *MapError, got %v (%d outputs)", err, len(out))
			}
			if me.Rule != tt.rule || me.Field != tt.field || me.Class != tt.cls || me.Topic != tt.topic || me.Partition != 1 || me.Offset != 99 {
				t.Errorf("MapError = %+v", me)
			}
			if !strings.Contains(err.Error(), tt.contains) || !strings.HasPrefix(err.Error(), tt.topic+"/1@99: ") {
				t.Errorf("Error() = %q, want prefix %q and %q", err, tt.topic+"/1@99: ", tt.contains)
			}
			if len(out) != 1 || out[0].Rule != "earlier" {
				t.Errorf("dst must come back unchanged on error, got %+v", out)
			}
		})
	}
}

func TestMapErrorString(t *testing.T) {
	e := &MapError{Topic: "shop.orders", Partition: 3, Offset: 42, Rule: "order-created", Field: "data.amount", Class: ClassMapping, Err: errors.New("boom")}
	if got, want := e.Error(), `shop.orders/3@42: rule "order-created" field "data.amount": boom`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &MapError{Topic: "t", Class: ClassDecode, Err: errors.New("bad")}
	if got, want := e.Error(), `t/0@0: decode: bad`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestMapTombstoneGivesNothing(t *testing.T) {
	m := compileYAML(t, twoRules)
	out, err := m.Map(&Record{Topic: "strict"}, nil)
	if err != nil || len(out) != 0 {
		t.Errorf("tombstone: %v, %d outputs", err, len(out))
	}
}

func TestMapContentsAndQuantities(t *testing.T) {
	m := compileYAML(t, twoRules)
	out, err := mapJSON(t, m, "strict", `{"kind":"x","id":7,"at":1773892800000,"url":"https://x/y","amount":500,"currency":"EUR",
		"items":[{"id":"a","q":2},{"id":3,"q":"4","cents":250},{"id":"c","q":1.0}]}`)
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Event.Data.Contents
	want := []capi.Content{
		{ID: "a", Quantity: capi.Int64(2)},
		{ID: "3", Quantity: capi.Int64(4), Amount: capi.Int64(250)},
		{ID: "c", Quantity: capi.Int64(1)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("contents = %+v\nwant %+v", got, want)
	}
	mustValid(t, &out[0].Event)
}

func TestMapValueMatchesMap(t *testing.T) {
	m := webShopMapper(t)
	v, err := DecodeJSON(shopOrderJSON)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Map(shopRecord(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.MapValue(shopRecord(), v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Map (pruned decode) and MapValue (full decode) differ:\n%+v\n%+v", a, b)
	}
}

func TestMapConcurrent(t *testing.T) {
	m := webShopMapper(t)
	want, err := m.Map(shopRecord(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := string(capi.AppendEvent(nil, &want[0].Event))
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []Output
			for i := 0; i < 200; i++ {
				out, err := m.Map(shopRecord(), dst[:0])
				if err != nil {
					errs <- err.Error()
					return
				}
				if got := string(capi.AppendEvent(nil, &out[0].Event)); got != wantJSON {
					errs <- "different output: " + got
					return
				}
				dst = out
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestMapAllocations(t *testing.T) {
	m := webShopMapper(t)
	v, err := DecodeJSON(shopOrderJSON)
	if err != nil {
		t.Fatal(err)
	}
	rec := shopRecord()
	dst := make([]Output, 0, 2)
	n := testing.AllocsPerRun(200, func() {
		if _, err := m.MapValue(rec, v, dst[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if n > 10 {
		t.Errorf("mapping the shop order allocates %v times, the goal is at most 10", n)
	}
}

func TestConstantNaturalFieldsAsExpressions(t *testing.T) {
	m := compileYAML(t, `topics:
  - topic: t
    rules:
      - name: r
        event:
          type: custom
          custom_event_name: {expr: 'value.kind.lowerAscii()'}
          id: value.id
          timestamp: record
          action_source: {expr: 'value.app ? "mobile_app" : "web"'}
          source_url: value.?url
          opt_out: {expr: 'value.?no_ads.orValue(false)'}
          data:
            contents:
              - {id: value.id, content_type: {expr: 'value.kind'}}
`)
	out, err := mapJSON(t, m, "t", `{"kind":"Wish_Shared","id":"e1","app":true,"no_ads":true}`)
	if err != nil {
		t.Fatal(err)
	}
	e := out[0].Event
	if e.CustomEventName != "wish_shared" || e.ActionSource != "mobile_app" || !e.OptOut || e.Data.Contents[0].ContentType != "Wish_Shared" {
		t.Errorf("event = %+v", e)
	}
	mustValid(t, &e)
	// A web event computed at run time still needs its source_url.
	_, err = mapJSON(t, m, "t", `{"kind":"x","id":"e1","app":false}`)
	var me *MapError
	if !errors.As(err, &me) || me.Field != "source_url" {
		t.Errorf("want a source_url error, got %v", err)
	}
	// timestamp: record needs a record timestamp.
	_, err = m.Map(&Record{Topic: "t", Value: []byte(`{"kind":"x","id":"e1","app":true}`)}, nil)
	if !errors.As(err, &me) || me.Field != "timestamp" {
		t.Errorf("want a timestamp error, got %v", err)
	}
}

func TestMapValueTimestampsAndNumbers(t *testing.T) {
	// MapValue takes trees from other decoders (Avro): time.Time is a CEL
	// timestamp, json.Number and int are numbers.
	m := compileYAML(t, `topics:
  - topic: t
    rules:
      - name: native
        event:
          type: page_viewed
          id: value.id
          timestamp: value.at
          action_source: other
          data:
            amount: money.minor(value.total, "EUR")
            currency: '"EUR"'
      - name: cel
        event:
          type: contents_viewed
          id: '"c-" + value.id'
          timestamp: value.at + duration("1s")
          action_source: other
          data:
            amount: money.minor(value.total, "EUR") + value.extra
            currency: '"EUR"'
`)
	v := map[string]any{"id": "x", "at": testTime, "total": json.Number("12.34"), "extra": 1}
	out, err := m.MapValue(&Record{Topic: "t"}, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("want 2 events, got %d", len(out))
	}
	if e := out[0].Event; e.TimestampMS != testTime.UnixMilli() || e.Data.Amount != capi.Int64(1234) {
		t.Errorf("native event = %+v", e)
	}
	if e := out[1].Event; e.TimestampMS != testTime.UnixMilli()+1000 || e.Data.Amount != capi.Int64(1235) {
		t.Errorf("CEL event = %+v", e)
	}
}

func TestMapValueListElementNumbers(t *testing.T) {
	// MapValue documents int, int32 and json.Number as ints: a list of them
	// is written in decimal, as a single one is.
	m := compileYAML(t, `topics:
  - topic: t
    rules:
      - name: r
        event:
          type: page_viewed
          id: value.id
          timestamp: record
          action_source: other
          user:
            external_id: value.ids
            postal_codes: value.zips
`)
	v := map[string]any{"id": "x",
		"ids":  []any{int64(1), 2, int32(3), json.Number("4"), nil, "5"},
		"zips": []any{json.Number("75001"), 10115},
	}
	out, err := m.MapValue(&Record{Topic: "t", Timestamp: testTime}, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		want = append(want, capi.SHA256Hex(id))
	}
	u := out[0].Event.User
	if !reflect.DeepEqual(u.ExternalIDsSHA256, want) || !reflect.DeepEqual(u.PostalCodes, []string{"75001", "10115"}) {
		t.Errorf("external ids = %v (want the hashes of 1..5), postal codes = %v", u.ExternalIDsSHA256, u.PostalCodes)
	}
	// A fractional json.Number is not an int.
	v["zips"] = []any{json.Number("1.5")}
	if _, err := m.MapValue(&Record{Topic: "t", Timestamp: testTime}, v, nil); err == nil || !strings.Contains(err.Error(), "list element 0 must be a string (or an int), got double") {
		t.Errorf("fractional list element: error = %v", err)
	}
}
