package capisim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ruleCase is one event-level rule check: base (default: a typical order)
// edited by edit must be accepted (param == "") or rejected with 400 naming
// param (NameFailingEvent is on in this table).
type ruleCase struct {
	name  string
	base  func() obj
	edit  func(obj)
	opts  func(*Options)
	param string
}

func with(path string, v any) func(obj) { return func(e obj) { set(e, path, v) } }
func without(path string) func(obj)     { return func(e obj) { set(e, path, del) } }
func edits(fs ...func(obj)) func(obj) {
	return func(e obj) {
		for _, f := range fs {
			f(e)
		}
	}
}

func base(typ string) func() obj { return func() obj { return eventFor(typ, "e1") } }

var (
	hashA  = sha("user@example.com")
	num    = func(s string) json.Number { return json.Number(s) }
	ignore = func(o *Options) { o.IgnoreUnknownFields = true }
)

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, func(o *Options) {
				o.NameFailingEvent = true
				if tc.opts != nil {
					tc.opts(o)
				}
			})
			mk := tc.base
			if mk == nil {
				mk = func() obj { return orderEvent("o1") }
			}
			ev := mk()
			if tc.edit != nil {
				tc.edit(ev)
			}
			w := send(t, s, batchOf(ev))
			if tc.param == "" {
				wantStatus(t, w, http.StatusOK)
				if got := s.Stats().EventsAccepted; got != 1 {
					t.Fatalf("EventsAccepted = %d, want 1", got)
				}
				return
			}
			wantStatus(t, w, http.StatusBadRequest)
			e := decodeError(t, w)
			if e.Error.Type != "invalid_request" {
				t.Errorf("type %q, want invalid_request", e.Error.Type)
			}
			if want := "events[0]." + tc.param; e.Error.Param != want {
				t.Errorf("param %q, want %q (message %q)", e.Error.Param, want, e.Error.Message)
			}
			if e.Error.EventIndex == nil || *e.Error.EventIndex != 0 {
				t.Errorf("event_index %v, want 0", e.Error.EventIndex)
			}
			if len(s.Events()) != 0 {
				t.Errorf("rejected event was stored")
			}
		})
	}
}

func TestEventRules(t *testing.T) {
	hourAgo := testNow.Add(-time.Hour).UnixMilli()
	runRuleCases(t, []ruleCase{
		{name: "typical order is valid"},

		// id
		{name: "id missing", edit: without("id"), param: "id"},
		{name: "id empty", edit: with("id", ""), param: "id"},
		{name: "id number", edit: with("id", 12345), param: "id"},
		{name: "id null", edit: with("id", nil), param: "id"},
		{name: "id unicode ok", edit: with("id", "commande-é-1")},

		// type
		{name: "type missing", edit: without("type"), param: "type"},
		{name: "type unknown", edit: with("type", "purchase"), param: "type"},
		{name: "type wrong case", edit: with("type", "Order_Created"), param: "type"},
		{name: "type attribution_appended unsupported", edit: with("type", "attribution_appended"), param: "type"},
		{name: "type number", edit: with("type", 1), param: "type"},

		// timestamp_ms
		{name: "timestamp missing", edit: without("timestamp_ms"), param: "timestamp_ms"},
		{name: "timestamp string", edit: with("timestamp_ms", "1773889200000"), param: "timestamp_ms"},
		{name: "timestamp with fraction", edit: with("timestamp_ms", num("1773889200000.5")), param: "timestamp_ms"},
		{name: "timestamp written 2.0 style", edit: with("timestamp_ms", num("1773889200000.0")), param: "timestamp_ms"},
		{name: "timestamp with exponent", edit: with("timestamp_ms", num("1.7738892e12")), param: "timestamp_ms"},
		{name: "timestamp out of int64", edit: with("timestamp_ms", num("99999999999999999999")), param: "timestamp_ms"},
		{name: "timestamp in seconds is too old", edit: with("timestamp_ms", hourAgo/1000), param: "timestamp_ms"},
		{name: "timestamp negative", edit: with("timestamp_ms", -1), param: "timestamp_ms"},
		{name: "timestamp now", edit: with("timestamp_ms", testNow.UnixMilli())},

		// custom_event_name
		{name: "custom event valid", base: base("custom")},
		{name: "custom name with digits, _ and -", base: base("custom"), edit: with("custom_event_name", "step_2-done")},
		{name: "custom name one char", base: base("custom"), edit: with("custom_event_name", "x")},
		{name: "custom name 64 chars", base: base("custom"), edit: with("custom_event_name", strings.Repeat("a", 64))},
		{name: "custom name 65 chars", base: base("custom"), edit: with("custom_event_name", strings.Repeat("a", 65)), param: "custom_event_name"},
		{name: "custom name missing", base: base("custom"), edit: without("custom_event_name"), param: "custom_event_name"},
		{name: "custom name empty", base: base("custom"), edit: with("custom_event_name", ""), param: "custom_event_name"},
		{name: "custom name starts with _", base: base("custom"), edit: with("custom_event_name", "_quiz"), param: "custom_event_name"},
		{name: "custom name ends with -", base: base("custom"), edit: with("custom_event_name", "quiz-"), param: "custom_event_name"},
		{name: "custom name with space", base: base("custom"), edit: with("custom_event_name", "quiz done"), param: "custom_event_name"},
		{name: "custom name with dot", base: base("custom"), edit: with("custom_event_name", "quiz.done"), param: "custom_event_name"},
		{name: "custom name upper case", base: base("custom"), edit: with("custom_event_name", "QuizDone"), param: "custom_event_name"},
		{name: "custom name non-ASCII", base: base("custom"), edit: with("custom_event_name", "quizé"), param: "custom_event_name"},
		{name: "custom name is a standard name", base: base("custom"), edit: with("custom_event_name", "order_created"), param: "custom_event_name"},
		{name: "custom name is custom", base: base("custom"), edit: with("custom_event_name", "custom"), param: "custom_event_name"},
		{name: "custom name number", base: base("custom"), edit: with("custom_event_name", 7), param: "custom_event_name"},
		{name: "custom name on a standard event", edit: with("custom_event_name", "quiz"), param: "custom_event_name"},
		{name: "custom name inside data", base: base("custom"), edit: with("data.custom_event_name", "quiz"), param: "data.custom_event_name"},

		// action_source
		{name: "action_source omitted", edit: edits(without("action_source"), without("source_url"))},
		{name: "action_source web", edit: with("action_source", "web")},
		{name: "action_source mobile_app", edit: with("action_source", "mobile_app")},
		{name: "action_source offline", edit: with("action_source", "offline")},
		{name: "action_source physical_store", edit: with("action_source", "physical_store")},
		{name: "action_source phone_call", edit: with("action_source", "phone_call")},
		{name: "action_source email", edit: with("action_source", "email")},
		{name: "action_source other", edit: with("action_source", "other")},
		{name: "action_source unknown", edit: with("action_source", "app"), param: "action_source"},
		{name: "action_source wrong case", edit: with("action_source", "Web"), param: "action_source"},
		{name: "action_source number", edit: with("action_source", 1), param: "action_source"},
		{name: "app_installed mobile_app", base: base("app_installed")},
		{name: "app_opened mobile_app", base: base("app_opened")},
		{name: "app_installed without action_source", base: base("app_installed"), edit: without("action_source"), param: "action_source"},
		{name: "app_opened with web", base: base("app_opened"), edit: edits(with("action_source", "web"), with("source_url", "https://x.example/")), param: "action_source"},
		{name: "app_installed with offline", base: base("app_installed"), edit: with("action_source", "offline"), param: "action_source"},
		{name: "app event with source_url ok", base: base("app_opened"), edit: with("source_url", "https://app.example.com/open")},

		// source_url
		{name: "web without source_url", edit: without("source_url"), param: "source_url"},
		{name: "offline without source_url", edit: edits(with("action_source", "offline"), without("source_url"))},
		{name: "source_url with query and fragment ok", edit: with("source_url", "https://shop.example.com/p?x=1#top")},
		{name: "source_url http ok", edit: with("source_url", "http://shop.example.com")},
		{name: "source_url relative", edit: with("source_url", "/checkout"), param: "source_url"},
		{name: "source_url without scheme", edit: with("source_url", "shop.example.com/checkout"), param: "source_url"},
		{name: "source_url scheme-relative", edit: with("source_url", "//shop.example.com/checkout"), param: "source_url"},
		{name: "source_url without host", edit: with("source_url", "https:///checkout"), param: "source_url"},
		{name: "source_url mailto has no host", edit: with("source_url", "mailto:a@example.com"), param: "source_url"},
		{name: "source_url unparsable", edit: with("source_url", "https://exa mple.com/"), param: "source_url"},
		{name: "source_url empty", edit: with("source_url", ""), param: "source_url"},
		{name: "source_url number", edit: with("source_url", 5), param: "source_url"},
		{name: "source_url invalid on non-web too", edit: edits(with("action_source", "offline"), with("source_url", "checkout")), param: "source_url"},

		// oppref, opt_out
		{name: "oppref string", edit: with("oppref", "opaque+/=value")},
		{name: "oppref number", edit: with("oppref", 1), param: "oppref"},
		{name: "oppref null", edit: with("oppref", nil), param: "oppref"},
		{name: "opt_out true", edit: with("opt_out", true)},
		{name: "opt_out false", edit: with("opt_out", false)},
		{name: "opt_out string", edit: with("opt_out", "true"), param: "opt_out"},
		{name: "opt_out number", edit: with("opt_out", 1), param: "opt_out"},

		// user and data presence
		{name: "user omitted", edit: without("user")},
		{name: "user empty", edit: with("user", obj{})},
		{name: "user array", edit: with("user", []any{}), param: "user"},
		{name: "user null", edit: with("user", nil), param: "user"},
		{name: "data missing", edit: without("data"), param: "data"},
		{name: "data array", edit: with("data", []any{}), param: "data"},
		{name: "data null", edit: with("data", nil), param: "data"},
		{name: "data.type missing", edit: without("data.type"), param: "data.type"},
		{name: "data.type mismatched", edit: with("data", obj{"type": "customer_action"}), param: "data.type"},
		{name: "data.type unknown", edit: with("data.type", "products"), param: "data.type"},
		{name: "data.type attribution", edit: with("data.type", "attribution"), param: "data.type"},
		{name: "data.type number", edit: with("data.type", 1), param: "data.type"},

		// legacy and unknown event fields
		{name: "legacy event_name", edit: with("event_name", "order_created"), param: "event_name"},
		{name: "legacy event_id", edit: with("event_id", "o1"), param: "event_id"},
		{name: "legacy event_time_epoch_ms", edit: with("event_time_epoch_ms", hourAgo), param: "event_time_epoch_ms"},
		{name: "legacy event_source_url", edit: with("event_source_url", "https://x.example/"), param: "event_source_url"},
		{name: "legacy event_data", edit: with("event_data", obj{}), param: "event_data"},
		{name: "oppcref", edit: with("oppcref", "x"), param: "oppcref"},
		{name: "legacy event_name even when ignoring unknown", opts: ignore, edit: with("event_name", "x"), param: "event_name"},
		{name: "oppcref even when ignoring unknown", opts: ignore, edit: with("oppcref", "x"), param: "oppcref"},
		{name: "unknown event field", edit: with("value", 12), param: "value"},
		{name: "unknown event field ignored", opts: ignore, edit: with("value", obj{"nested": []any{1, "x", nil}})},
	})
}

func TestEveryEventTypeAndShape(t *testing.T) {
	var cases []ruleCase
	for _, et := range eventTypes {
		cases = append(cases, ruleCase{name: et.name + " valid", base: base(et.name)})
		for _, shape := range []string{shapeContents, shapeCustomerAction, shapePlanEnrollment, shapeCustom} {
			if shape != et.shape {
				cases = append(cases, ruleCase{name: et.name + " with data.type " + shape, base: base(et.name),
					edit: with("data.type", shape), param: "data.type"})
			}
		}
	}
	runRuleCases(t, cases)
}

func TestDataRules(t *testing.T) {
	lead, sub, custom, view := base("lead_created"), base("subscription_created"), base("custom"), base("page_viewed")
	item := func(fields obj) obj {
		it := obj{"id": "sku_1", "content_type": "product"}
		for k, v := range fields {
			if v == del {
				delete(it, k)
			} else {
				it[k] = v
			}
		}
		return it
	}
	runRuleCases(t, []ruleCase{
		// money
		{name: "amount integer with currency", edit: with("data.amount", 2599)},
		{name: "amount zero", edit: with("data.amount", 0)},
		{name: "amount negative accepted", edit: with("data.amount", -500)},
		{name: "amount large", edit: with("data.amount", num("9223372036854775807"))},
		{name: "amount over int64", edit: with("data.amount", num("9223372036854775808")), param: "data.amount"},
		{name: "amount with fraction", edit: with("data.amount", num("12.5")), param: "data.amount"},
		{name: "amount 25.0", edit: with("data.amount", num("25.0")), param: "data.amount"},
		{name: "amount exponent", edit: with("data.amount", num("1e3")), param: "data.amount"},
		{name: "amount string", edit: with("data.amount", "2599"), param: "data.amount"},
		{name: "amount null", edit: with("data.amount", nil), param: "data.amount"},
		{name: "amount without currency", edit: without("data.currency"), param: "data.currency"},
		{name: "currency without amount", edit: edits(without("data.amount"))},
		{name: "currency lower case", edit: with("data.currency", "usd")},
		{name: "currency mixed case", edit: with("data.currency", "Eur")},
		{name: "currency JPY", edit: with("data.currency", "JPY")},
		{name: "currency KWD", edit: with("data.currency", "KWD")},
		{name: "currency two letters", edit: with("data.currency", "US"), param: "data.currency"},
		{name: "currency four letters", edit: with("data.currency", "USDT"), param: "data.currency"},
		{name: "currency not ISO 4217", edit: with("data.currency", "ABC"), param: "data.currency"},
		{name: "currency symbol", edit: with("data.currency", "US$"), param: "data.currency"},
		{name: "currency with spaces", edit: with("data.currency", " USD"), param: "data.currency"},
		{name: "currency number", edit: with("data.currency", 840), param: "data.currency"},
		{name: "currency empty", edit: with("data.currency", ""), param: "data.currency"},

		// shapes
		{name: "contents shape with only type", edit: with("data", obj{"type": "contents"})},
		{name: "contents shape plan_id refused", edit: with("data.plan_id", "pro"), param: "data.plan_id"},
		{name: "contents shape plan_id refused when ignoring unknown", opts: ignore, edit: with("data.plan_id", "pro"), param: "data.plan_id"},
		{name: "contents shape extra property", edit: with("data.coupon", "X"), param: "data.coupon"},
		{name: "contents shape extra property ignored", opts: ignore, edit: with("data.coupon", "X")},
		{name: "customer_action with money", base: lead, edit: with("data", obj{"type": "customer_action", "amount": 1000, "currency": "EUR"})},
		{name: "customer_action contents refused", base: lead, edit: with("data.contents", []any{}), param: "data.contents"},
		{name: "customer_action plan_id refused", base: lead, edit: with("data.plan_id", "pro"), param: "data.plan_id"},
		{name: "customer_action extra property", base: lead, edit: with("data.lead_score", 7), param: "data.lead_score"},
		{name: "customer_action amount without currency", base: lead, edit: with("data.amount", 1), param: "data.currency"},
		{name: "plan_enrollment full", base: sub, edit: with("data", obj{"type": "plan_enrollment", "plan_id": "pro_monthly", "amount": 1500, "currency": "USD",
			"contents": []any{obj{"id": "pro", "content_type": "plan", "quantity": 1}}})},
		{name: "plan_enrollment plan_id number", base: sub, edit: with("data.plan_id", 3), param: "data.plan_id"},
		{name: "plan_enrollment extra property", base: sub, edit: with("data.seats", 3), param: "data.seats"},
		{name: "custom with every kind of property", base: custom, edit: with("data", obj{"type": "custom", "plan_id": "p", "amount": 1, "currency": "GBP",
			"contents": []any{item(nil)}, "s": "x", "n": 1.5, "b": true, "o": obj{"k": []any{1}}, "a": []any{"x", 2}, "z": nil})},
		{name: "custom amount still an integer", base: custom, edit: with("data.amount", num("1.5")), param: "data.amount"},
		{name: "custom amount still needs currency", base: custom, edit: with("data.amount", 10), param: "data.currency"},
		{name: "custom currency still checked", base: custom, edit: with("data.currency", "XX"), param: "data.currency"},
		{name: "custom contents still checked", base: custom, edit: with("data.contents", []any{obj{"price": 1}}), param: "data.contents[0].price"},

		// contents items
		{name: "contents empty array", edit: with("data.contents", []any{})},
		{name: "contents object", edit: with("data.contents", obj{}), param: "data.contents"},
		{name: "contents null", edit: with("data.contents", nil), param: "data.contents"},
		{name: "item not an object", edit: with("data.contents.1", "sku"), param: "data.contents[1]"},
		{name: "item empty object", edit: with("data.contents", []any{obj{}})},
		{name: "item all fields", edit: with("data.contents", []any{obj{"id": "a", "group_id": "g", "name": "n", "content_type": "product",
			"quantity": 3, "amount": 100, "currency": "usd", "variant_dict": obj{"size": "M", "color": "red"}}})},
		{name: "item id number", edit: with("data.contents.0.id", 123), param: "data.contents[0].id"},
		{name: "item group_id number", edit: with("data.contents.0.group_id", 1), param: "data.contents[0].group_id"},
		{name: "item name number", edit: with("data.contents.1.name", 1), param: "data.contents[1].name"},
		{name: "item content_type empty", edit: with("data.contents.0.content_type", ""), param: "data.contents[0].content_type"},
		{name: "item content_type number", edit: with("data.contents.0.content_type", 1), param: "data.contents[0].content_type"},
		{name: "item content_type plan", edit: with("data.contents.0.content_type", "plan")},
		{name: "item quantity fraction", edit: with("data.contents.0.quantity", num("1.5")), param: "data.contents[0].quantity"},
		{name: "item quantity string", edit: with("data.contents.0.quantity", "1"), param: "data.contents[0].quantity"},
		{name: "item amount fraction", edit: with("data.contents.0.amount", num("19.99")), param: "data.contents[0].amount"},
		{name: "item amount string", edit: with("data.contents.0.amount", "1999"), param: "data.contents[0].amount"},
		{name: "item amount with event-level currency", edit: with("data.contents.0.currency", del)},
		{name: "item amount with own currency only", edit: edits(without("data.amount"), without("data.currency"),
			with("data.contents", []any{item(obj{"amount": 100, "currency": "EUR"})}))},
		{name: "item amount without any currency", edit: edits(without("data.amount"), without("data.currency"),
			with("data.contents", []any{item(obj{"amount": 100, "currency": "EUR"}), item(obj{"amount": 5})})), param: "data.contents[1].currency"},
		{name: "item currency without amount", edit: with("data.contents.0.currency", "EUR")},
		{name: "item currency invalid", edit: with("data.contents.0.currency", "dollars"), param: "data.contents[0].currency"},
		{name: "item price refused", edit: with("data.contents.0.price", 19.99), param: "data.contents[0].price"},
		{name: "item price refused when ignoring unknown", opts: ignore, edit: with("data.contents.0.price", 1999), param: "data.contents[0].price"},
		{name: "item unknown field", edit: with("data.contents.0.sku", "x"), param: "data.contents[0].sku"},
		{name: "item unknown field ignored", opts: ignore, edit: with("data.contents.0.sku", "x")},
		{name: "variant_dict empty", edit: with("data.contents.0.variant_dict", obj{})},
		{name: "variant_dict number value", edit: with("data.contents.0.variant_dict", obj{"size": 42}), param: "data.contents[0].variant_dict.size"},
		{name: "variant_dict null value", edit: with("data.contents.0.variant_dict", obj{"size": nil}), param: "data.contents[0].variant_dict.size"},
		{name: "variant_dict array", edit: with("data.contents.0.variant_dict", []any{"M"}), param: "data.contents[0].variant_dict"},
		{name: "page_viewed contents of pages", base: view, edit: with("data.contents", []any{obj{"id": "/pricing", "content_type": "page"}})},
	})
}

func TestUserRules(t *testing.T) {
	lists := []string{"emails_sha256", "phone_numbers_sha256", "external_ids_sha256", "first_names_sha256", "last_names_sha256"}
	var cases []ruleCase
	for _, f := range lists {
		p := "user." + f
		cases = append(cases,
			ruleCase{name: f + " valid", edit: with(p, []any{hashA})},
			ruleCase{name: f + " several valid, duplicates and more than three ok", edit: with(p, []any{hashA, sha("a"), sha("b"), sha("c"), hashA})},
			ruleCase{name: f + " empty list ok", edit: with(p, []any{})},
			ruleCase{name: f + " upper-case hex", edit: with(p, []any{strings.ToUpper(hashA)}), param: p + "[0]"},
			ruleCase{name: f + " 63 chars", edit: with(p, []any{hashA[:63]}), param: p + "[0]"},
			ruleCase{name: f + " 65 chars", edit: with(p, []any{hashA + "0"}), param: p + "[0]"},
			ruleCase{name: f + " raw value", edit: with(p, []any{hashA, "user@example.com"}), param: p + "[1]"},
			ruleCase{name: f + " non-hex", edit: with(p, []any{strings.Repeat("g", 64)}), param: p + "[0]"},
			ruleCase{name: f + " single string not a list", edit: with(p, hashA), param: p},
			ruleCase{name: f + " number element", edit: with(p, []any{1}), param: p + "[0]"},
			ruleCase{name: f + " null element", edit: with(p, []any{nil}), param: p + "[0]"},
		)
	}
	for _, f := range []string{"regions", "cities"} {
		p := "user." + f
		cases = append(cases,
			ruleCase{name: f + " valid", edit: with(p, []any{"California", "  new york  "})},
			ruleCase{name: f + " 128 chars", edit: with(p, []any{strings.Repeat("a", 128)})},
			ruleCase{name: f + " 128 non-ASCII chars", edit: with(p, []any{strings.Repeat("é", 128)})},
			ruleCase{name: f + " 129 chars", edit: with(p, []any{strings.Repeat("a", 129)}), param: p + "[0]"},
			ruleCase{name: f + " empty", edit: with(p, []any{""}), param: p + "[0]"},
			ruleCase{name: f + " blank", edit: with(p, []any{"   "}), param: p + "[0]"},
			ruleCase{name: f + " not a list", edit: with(p, "Paris"), param: p},
		)
	}
	cases = append(cases,
		ruleCase{name: "postal codes valid", edit: with("user.postal_codes", []any{"94103", "SW1A 1AA", "12345-6789", "k1a0b1"})},
		ruleCase{name: "postal code 32 chars", edit: with("user.postal_codes", []any{strings.Repeat("9", 32)})},
		ruleCase{name: "postal code 33 chars", edit: with("user.postal_codes", []any{strings.Repeat("9", 33)}), param: "user.postal_codes[0]"},
		ruleCase{name: "postal code punctuation", edit: with("user.postal_codes", []any{"941#03"}), param: "user.postal_codes[0]"},
		ruleCase{name: "postal code non-ASCII letter", edit: with("user.postal_codes", []any{"9410é"}), param: "user.postal_codes[0]"},
		ruleCase{name: "postal code empty", edit: with("user.postal_codes", []any{""}), param: "user.postal_codes[0]"},
		ruleCase{name: "postal code blank", edit: with("user.postal_codes", []any{"  "}), param: "user.postal_codes[0]"},
		ruleCase{name: "postal code number", edit: with("user.postal_codes", []any{94103}), param: "user.postal_codes[0]"},

		ruleCase{name: "countries valid", edit: with("user.countries", []any{"US", "GB", "DE"})},
		ruleCase{name: "country lower case", edit: with("user.countries", []any{"us"}), param: "user.countries[0]"},
		ruleCase{name: "country alpha-3", edit: with("user.countries", []any{"USA"}), param: "user.countries[0]"},
		ruleCase{name: "country unassigned ZZ", edit: with("user.countries", []any{"ZZ"}), param: "user.countries[0]"},
		ruleCase{name: "country UK is not ISO", edit: with("user.countries", []any{"UK"}), param: "user.countries[0]"},
		ruleCase{name: "country string not a list", edit: with("user.countries", "US"), param: "user.countries"},

		ruleCase{name: "GAID lower case", edit: with("user.android_advertising_id", "38400000-8cf0-11bd-b23e-10b96e40000d")},
		ruleCase{name: "GAID upper case", edit: with("user.android_advertising_id", "38400000-8CF0-11BD-B23E-10B96E40000D")},
		ruleCase{name: "GAID all zero accepted", edit: with("user.android_advertising_id", "00000000-0000-0000-0000-000000000000")},
		ruleCase{name: "GAID without dashes", edit: with("user.android_advertising_id", "384000008cf011bdb23e10b96e40000d"), param: "user.android_advertising_id"},
		ruleCase{name: "GAID not hex", edit: with("user.android_advertising_id", "38400000-8cf0-11bd-b23e-10b96e40000g"), param: "user.android_advertising_id"},
		ruleCase{name: "GAID braces", edit: with("user.android_advertising_id", "{38400000-8cf0-11bd-b23e-10b96e40000d}"), param: "user.android_advertising_id"},
		ruleCase{name: "GAID list", edit: with("user.android_advertising_id", []any{"38400000-8cf0-11bd-b23e-10b96e40000d"}), param: "user.android_advertising_id"},

		ruleCase{name: "IPv4", edit: with("user.ip_address", "203.0.113.7")},
		ruleCase{name: "IPv6", edit: with("user.ip_address", "2001:db8::1")},
		ruleCase{name: "IPv4-mapped IPv6", edit: with("user.ip_address", "::ffff:203.0.113.7")},
		ruleCase{name: "IPv4 octet over 255", edit: with("user.ip_address", "256.1.1.1"), param: "user.ip_address"},
		ruleCase{name: "IPv6 with zone", edit: with("user.ip_address", "fe80::1%eth0"), param: "user.ip_address"},
		ruleCase{name: "IP host name", edit: with("user.ip_address", "example.com"), param: "user.ip_address"},
		ruleCase{name: "IP with port", edit: with("user.ip_address", "203.0.113.7:443"), param: "user.ip_address"},
		ruleCase{name: "IP empty", edit: with("user.ip_address", ""), param: "user.ip_address"},

		ruleCase{name: "user_agent valid", edit: with("user.user_agent", "curl/8.0")},
		ruleCase{name: "user_agent empty", edit: with("user.user_agent", ""), param: "user.user_agent"},
		ruleCase{name: "user_agent blank", edit: with("user.user_agent", "  "), param: "user.user_agent"},
		ruleCase{name: "user_agent number", edit: with("user.user_agent", 1), param: "user.user_agent"},

		ruleCase{name: "obref valid", edit: with("user.obref", "ob.1.1773892800.abc")},
		ruleCase{name: "obref number", edit: with("user.obref", 1), param: "user.obref"},

		ruleCase{name: "legacy email_sha256", edit: with("user.email_sha256", hashA), param: "user.email_sha256"},
		ruleCase{name: "legacy external_id_sha256", edit: with("user.external_id_sha256", hashA), param: "user.external_id_sha256"},
		ruleCase{name: "legacy country", edit: with("user.country", "US"), param: "user.country"},
		ruleCase{name: "legacy city", edit: with("user.city", "Paris"), param: "user.city"},
		ruleCase{name: "legacy zip_code", edit: with("user.zip_code", "75001"), param: "user.zip_code"},
		ruleCase{name: "legacy country even when ignoring unknown", opts: ignore, edit: with("user.country", "US"), param: "user.country"},
		ruleCase{name: "opt_out inside user is unknown", edit: with("user.opt_out", true), param: "user.opt_out"},
		ruleCase{name: "unknown user field", edit: with("user.email", "user@example.com"), param: "user.email"},
		ruleCase{name: "unknown user field ignored", opts: ignore, edit: with("user.loyalty_tier", "gold")},

		// MaxContents: an undocumented limit stood in for.
		ruleCase{name: "max contents: at the limit", opts: func(o *Options) { o.MaxContents = 2 },
			edit: with("data.contents", []any{obj{"id": "a"}, obj{"id": "b"}})},
		ruleCase{name: "max contents: over the limit", opts: func(o *Options) { o.MaxContents = 2 },
			edit: with("data.contents", []any{obj{"id": "a"}, obj{"id": "b"}, obj{"id": "c"}}), param: "data.contents"},

		// LenientUserLists: invalid list values are skipped, types still matter.
		ruleCase{name: "lenient: raw value in hash list skipped", opts: func(o *Options) { o.LenientUserLists = true },
			edit: with("user.emails_sha256", []any{"user@example.com", hashA})},
		ruleCase{name: "lenient: bad country skipped", opts: func(o *Options) { o.LenientUserLists = true },
			edit: with("user.countries", []any{"XK", "US"})},
		ruleCase{name: "lenient: wrong element type still fails", opts: func(o *Options) { o.LenientUserLists = true },
			edit: with("user.countries", []any{1}), param: "user.countries[0]"},
		ruleCase{name: "lenient: single fields still checked", opts: func(o *Options) { o.LenientUserLists = true },
			edit: with("user.ip_address", "nope"), param: "user.ip_address"},
	)
	runRuleCases(t, cases)
}

// TestUserFieldIndex keeps userField's switch in step with userFields.
func TestUserFieldIndex(t *testing.T) {
	for i, f := range userFields {
		if got := userField([]byte(f.name)); got != i {
			t.Errorf("userField(%q) = %d, want %d", f.name, got, i)
		}
	}
	if got := userField([]byte("email")); got != -1 {
		t.Errorf("userField(email) = %d, want -1", got)
	}
}

// TestBatchRules covers the top level of the body.
func TestBatchRules(t *testing.T) {
	ev := func(id string) obj { return orderEvent(id) }
	many := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = ev("o" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "-" + itoa(i))
		}
		return out
	}
	cases := []struct {
		name   string
		body   obj
		opts   func(*Options)
		param  string // "" → 200
		events int
	}{
		{name: "one event", body: obj{"events": many(1)}, events: 1},
		{name: "1000 events", body: obj{"events": many(1000)}, events: 1000},
		{name: "1001 events", body: obj{"events": many(1001)}, param: "events"},
		{name: "no events", body: obj{"events": []any{}}, param: "events"},
		{name: "events missing", body: obj{"validate_only": false}, param: "events"},
		{name: "events object", body: obj{"events": ev("o1")}, param: "events"},
		{name: "events null", body: obj{"events": nil}, param: "events"},
		{name: "event a string", body: obj{"events": []any{"o1"}}, param: "events[0]"},
		{name: "validate_only false", body: obj{"events": many(1), "validate_only": false}, events: 1},
		{name: "validate_only string", body: obj{"events": many(1), "validate_only": "true"}, param: "validate_only"},
		{name: "validate_only null", body: obj{"events": many(1), "validate_only": nil}, param: "validate_only"},
		{name: "integration_source simple", body: obj{"events": many(1), "integration_source": "capirelay"}, events: 1},
		{name: "integration_source full charset", body: obj{"events": many(1), "integration_source": "CapiRelay.v1_0-beta"}, events: 1},
		{name: "integration_source 64 chars", body: obj{"events": many(1), "integration_source": strings.Repeat("a", 64)}, events: 1},
		{name: "integration_source digit first", body: obj{"events": many(1), "integration_source": "1relay"}, events: 1},
		{name: "integration_source 65 chars", body: obj{"events": many(1), "integration_source": strings.Repeat("a", 65)}, param: "integration_source"},
		{name: "integration_source empty", body: obj{"events": many(1), "integration_source": ""}, param: "integration_source"},
		{name: "integration_source starts with dot", body: obj{"events": many(1), "integration_source": ".relay"}, param: "integration_source"},
		{name: "integration_source starts with dash", body: obj{"events": many(1), "integration_source": "-relay"}, param: "integration_source"},
		{name: "integration_source space", body: obj{"events": many(1), "integration_source": "capi relay"}, param: "integration_source"},
		{name: "integration_source padded", body: obj{"events": many(1), "integration_source": " capirelay"}, param: "integration_source"},
		{name: "integration_source slash", body: obj{"events": many(1), "integration_source": "capi/relay"}, param: "integration_source"},
		{name: "integration_source non-ASCII", body: obj{"events": many(1), "integration_source": "café"}, param: "integration_source"},
		{name: "integration_source number", body: obj{"events": many(1), "integration_source": 1}, param: "integration_source"},
		{name: "unknown top-level field", body: obj{"events": many(1), "test_event_code": "x"}, param: "test_event_code"},
		{name: "unknown top-level field ignored", body: obj{"events": many(1), "test_event_code": "x"}, opts: ignore, events: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, func(o *Options) {
				o.NameFailingEvent = true
				if tc.opts != nil {
					tc.opts(o)
				}
			})
			w := send(t, s, mustJSON(tc.body))
			if tc.param == "" {
				wantStatus(t, w, http.StatusOK)
				if got := s.Stats().EventsAccepted; got != int64(tc.events) {
					t.Fatalf("accepted %d, want %d", got, tc.events)
				}
				return
			}
			wantStatus(t, w, http.StatusBadRequest)
			if e := decodeError(t, w); e.Error.Param != tc.param {
				t.Fatalf("param %q, want %q (%s)", e.Error.Param, tc.param, e.Error.Message)
			}
		})
	}
}

func itoa(i int) string { return string(mustJSON(i)) }

// TestIntegrationSourceNormalized: the server lowercases it.
func TestIntegrationSourceNormalized(t *testing.T) {
	s := newSim(t, nil)
	wantStatus(t, send(t, s, mustJSON(obj{"integration_source": "CapiRelay.V1", "events": []any{orderEvent("o1")}})), 200)
	if got := s.Events()[0].IntegrationSource; got != "capirelay.v1" {
		t.Fatalf("IntegrationSource %q", got)
	}
}

// TestJSONSyntax covers malformed and borderline JSON, which the simulator
// reads strictly.
func TestJSONSyntax(t *testing.T) {
	good := string(mustJSON(orderEvent("o1")))
	evBody := func(ev string) string { return `{"events":[` + ev + `]}` }
	cases := []struct {
		name   string
		body   string
		status int
		param  string
	}{
		{"valid", evBody(good), 200, ""},
		{"whitespace everywhere", " \n\t{ \"events\" : [ " + good + " ] } \r\n", 200, ""},
		{"escaped key", evBody(strings.Replace(good, `"id":`, `"\u0069d":`, 1)), 200, ""},
		{"escaped value", evBody(strings.Replace(good, `"id":"o1"`, `"id":"o\"1\u00e9\ud83d\ude00"`, 1)), 200, ""},
		{"empty body", "", 400, ""},
		{"not an object", "[]", 400, ""},
		{"string body", `"events"`, 400, ""},
		{"truncated", evBody(good)[:40], 400, ""},
		{"trailing garbage", evBody(good) + "x", 400, ""},
		{"two objects", evBody(good) + evBody(good), 400, ""},
		{"trailing comma in array", `{"events":[` + good + `,]}`, 400, ""},
		{"trailing comma in object", `{"events":[` + good + `],}`, 400, ""},
		{"single quotes", `{'events':[]}`, 400, ""},
		{"leading zero", evBody(strings.Replace(good, `"quantity":1`, `"quantity":01`, 1)), 400, ""},
		{"plus sign", evBody(strings.Replace(good, `"quantity":1`, `"quantity":+1`, 1)), 400, ""},
		{"NaN", evBody(strings.Replace(good, `"quantity":1`, `"quantity":NaN`, 1)), 400, ""},
		{"bare word", evBody(strings.Replace(good, `"quantity":1`, `"quantity":one`, 1)), 400, ""},
		{"invalid escape", evBody(strings.Replace(good, `"id":"o1"`, `"id":"o\x1"`, 1)), 400, ""},
		{"control char", evBody(strings.Replace(good, `"id":"o1"`, "\"id\":\"o\t1\"", 1)), 400, ""},
		{"invalid UTF-8", evBody(strings.Replace(good, `"id":"o1"`, "\"id\":\"o\xff1\"", 1)), 400, ""},
		{"BOM", "\xef\xbb\xbf" + evBody(good), 400, ""},
		{"duplicate top-level key", `{"events":[` + good + `],"events":[` + good + `]}`, 400, "events"},
		{"duplicate event key", evBody(strings.Replace(good, `"id":"o1"`, `"id":"o1","id":"o2"`, 1)), 400, "events[0].id"},
		{"duplicate key via escape", evBody(strings.Replace(good, `"id":"o1"`, `"id":"o1","\u0069d":"o2"`, 1)), 400, "events[0].id"},
		{"duplicate data key", evBody(strings.Replace(good, `"amount":2599`, `"amount":2599,"amount":1`, 1)), 400, "events[0].data.amount"},
		{"duplicate user key", evBody(strings.Replace(good, `"user_agent":`, `"ip_address":"1.2.3.4","user_agent":`, 1)), 400, "events[0].user.ip_address"},
		{"duplicate item key", evBody(strings.Replace(good, `"quantity":1`, `"quantity":1,"quantity":2`, 1)), 400, "events[0].data.contents[0].quantity"},
		{"duplicate custom property", evBody(`{"id":"c1","type":"custom","custom_event_name":"x","timestamp_ms":` + itoa(int(testNow.UnixMilli())) +
			`,"data":{"type":"custom","k":1,"k":2}}`), 400, "events[0].data.k"},
		{"deep custom property ok", evBody(`{"id":"c1","type":"custom","custom_event_name":"x","timestamp_ms":` + itoa(int(testNow.UnixMilli())) +
			`,"data":{"type":"custom","k":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`), 200, ""},
		{"too deep custom property", evBody(`{"id":"c1","type":"custom","custom_event_name":"x","timestamp_ms":` + itoa(int(testNow.UnixMilli())) +
			`,"data":{"type":"custom","k":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}}`), 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, func(o *Options) { o.NameFailingEvent = true })
			w := send(t, s, []byte(tc.body))
			wantStatus(t, w, tc.status)
			if tc.status == 400 {
				e := decodeError(t, w)
				if e.Error.Param != tc.param {
					t.Fatalf("param %q, want %q (%s)", e.Error.Param, tc.param, e.Error.Message)
				}
			}
		})
	}
}

// TestTimeWindow checks the boundaries with the injected clock.
func TestTimeWindow(t *testing.T) {
	nowMs := testNow.UnixMilli()
	cases := []struct {
		name string
		ts   int64
		ok   bool
	}{
		{"exactly 7 days old", nowMs - MaxEventAge.Milliseconds(), true},
		{"7 days and 1 ms old", nowMs - MaxEventAge.Milliseconds() - 1, false},
		{"8 days old", nowMs - 8*24*3600*1000, false},
		{"exactly 10 minutes ahead", nowMs + MaxEventFuture.Milliseconds(), true},
		{"10 minutes and 1 ms ahead", nowMs + MaxEventFuture.Milliseconds() + 1, false},
		{"1 hour ahead", nowMs + 3600*1000, false},
		{"now", nowMs, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, func(o *Options) { o.NameFailingEvent = true })
			w := send(t, s, batchOf(edited(orderEvent("o1"), with("timestamp_ms", tc.ts))))
			if tc.ok {
				wantStatus(t, w, 200)
				return
			}
			wantStatus(t, w, 400)
			if p := decodeError(t, w).Error.Param; p != "events[0].timestamp_ms" {
				t.Fatalf("param %q", p)
			}
		})
	}

	// The window moves with the clock: the same event is accepted, then
	// rejected once the clock passes 7 days.
	now := testNow
	s := newSim(t, func(o *Options) { o.Now = func() time.Time { return now } })
	ev := edited(orderEvent("o1"), with("timestamp_ms", testNow.UnixMilli()))
	body := mustJSON(obj{"validate_only": true, "events": []any{ev}})
	wantStatus(t, send(t, s, body), 200)
	now = testNow.Add(MaxEventAge)
	wantStatus(t, send(t, s, body), 200)
	now = now.Add(time.Millisecond)
	wantStatus(t, send(t, s, body), 400)
}

func edited(e obj, f ...func(obj)) obj {
	edits(f...)(e)
	return e
}

// TestHashVectors pins the test data to the contract's hash vectors.
func TestHashVectors(t *testing.T) {
	for in, want := range map[string]string{
		"user@example.com": "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
		"14155552671":      "758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0",
		"customer_123":     "18f69bcd2f9cc9c38195e722b2a5590429840ea5090971d2256e026926e55fa1",
		"ada":              "fdee430d40bd57deeac186cd9790033d0f06f909a8806e7ce6e717ab7c7d5029",
		"lovelace":         "fb1e7ec987523d2cb9e022cec1d6ae7c99dc46edfae4fe51254025fe4bea571f",
	} {
		if got := sha(in); got != want {
			t.Errorf("sha(%q) = %s, want %s", in, got, want)
		}
		if msg := checkSHA256([]byte(want)); msg != "" {
			t.Errorf("vector %s refused: %s", want, msg)
		}
	}
}

// TestContractExample: the example request of the contract is accepted
// (with the clock at its timestamp).
func TestContractExample(t *testing.T) {
	const example = `{
    "validate_only": false,
    "events": [{
      "id": "order_12345",
      "type": "order_created",
      "timestamp_ms": 1773892800000,
      "oppref": "oppref_abc",
      "source_url": "https://shop.example.com/checkout/confirmation",
      "action_source": "web",
      "user": {"emails_sha256": ["b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"], "countries": ["US"]},
      "data": {"type": "contents", "amount": 2599, "currency": "USD",
               "contents": [{"id": "sku_123", "name": "Starter bundle", "content_type": "product", "quantity": 1}]}
    }]
  }`
	s := newSim(t, nil)
	wantStatus(t, send(t, s, []byte(example)), 200)
	evs := s.Events()
	if len(evs) != 1 || evs[0].ID != "order_12345" || evs[0].TimestampMS != 1773892800000 || evs[0].Pixel != testPixel {
		t.Fatalf("events: %+v", evs)
	}
	var raw map[string]any
	if err := json.Unmarshal(evs[0].Event, &raw); err != nil || raw["oppref"] != "oppref_abc" {
		t.Fatalf("raw event %s: %v", evs[0].Event, err)
	}
}

// TestCodeLists sanity-checks the embedded ISO lists.
func TestCodeLists(t *testing.T) {
	if n := len(iso3166); n != 249 {
		t.Errorf("ISO 3166-1 list has %d codes, want 249", n)
	}
	for _, c := range []string{"USD", "EUR", "JPY", "KWD", "GBP", "CHF", "XCG", "ZWG"} {
		if !iso4217.has([]byte(c)) {
			t.Errorf("missing currency %s", c)
		}
	}
	for _, c := range []string{"US", "GB", "DE", "FR", "JP", "CW", "SS", "BQ"} {
		if !iso3166.has([]byte(c)) {
			t.Errorf("missing country %s", c)
		}
	}
}
