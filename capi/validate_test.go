package capi

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateEventRules(t *testing.T) {
	v := &Validator{Now: fixedClock}
	hash := SHA256Hex("x")
	tests := []struct {
		name    string
		mutate  func(e *Event)
		wantErr string // substring of the error; "" means valid
	}{
		{"valid order", func(e *Event) {}, ""},
		{"id required", func(e *Event) { e.ID = "" }, "id: required"},
		{"type required", func(e *Event) { e.Type = "" }, "type: required"},
		{"type unknown", func(e *Event) { e.Type = "purchase" }, `type: unknown event name "purchase"`},
		{"attribution_appended unsupported", func(e *Event) { e.Type = "attribution_appended" }, "type: unknown event name"},
		{"timestamp required", func(e *Event) { e.TimestampMS = 0 }, "timestamp_ms: required"},
		{"timestamp exactly 7 days old", func(e *Event) { e.TimestampMS = testNow.Add(-MaxEventAge).UnixMilli() }, ""},
		{"timestamp 7 days + 1ms old", func(e *Event) { e.TimestampMS = testNow.Add(-MaxEventAge).UnixMilli() - 1 }, "timestamp_ms: older than the event-age window"},
		{"timestamp 10 min ahead", func(e *Event) { e.TimestampMS = testNow.Add(MaxEventFuture).UnixMilli() }, ""},
		{"timestamp 10 min + 1ms ahead", func(e *Event) { e.TimestampMS = testNow.Add(MaxEventFuture).UnixMilli() + 1 }, "timestamp_ms: more than 10 minutes in the future"},
		{"custom name on standard event", func(e *Event) { e.CustomEventName = "x" }, "custom_event_name: allowed only when type is custom"},
		{"custom needs name", func(e *Event) { toCustom(e, "") }, "custom_event_name: required when type is custom"},
		{"custom valid", func(e *Event) { toCustom(e, "quote_requested") }, ""},
		{"custom valid digits and dash", func(e *Event) { toCustom(e, "a-1_b2") }, ""},
		{"custom 64 chars", func(e *Event) { toCustom(e, strings.Repeat("a", 64)) }, ""},
		{"custom 65 chars", func(e *Event) { toCustom(e, strings.Repeat("a", 65)) }, "must be 1 to 64 characters"},
		{"custom uppercase", func(e *Event) { toCustom(e, "Quote") }, "must be lowercase"},
		{"custom starts with _", func(e *Event) { toCustom(e, "_quote") }, "must start and end with a letter or digit"},
		{"custom ends with -", func(e *Event) { toCustom(e, "quote-") }, "must start and end with a letter or digit"},
		{"custom bad char", func(e *Event) { toCustom(e, "quote.requested") }, "may hold only letters, digits"},
		{"custom standard name", func(e *Event) { toCustom(e, "order_created") }, "must not be a standard event name"},
		{"action_source required", func(e *Event) { e.ActionSource = "" }, "action_source: required"},
		{"action_source unknown", func(e *Event) { e.ActionSource = "store" }, "action_source: must be one of"},
		{"action_source offline no url", func(e *Event) { e.ActionSource = SourceOffline; e.SourceURL = "" }, ""},
		{"app_installed needs mobile_app", func(e *Event) { toApp(e, AppInstalled, SourceWeb) }, "action_source: must be mobile_app for app_installed"},
		{"app_opened needs mobile_app", func(e *Event) { toApp(e, AppOpened, SourceOther) }, "must be mobile_app for app_opened"},
		{"app_opened mobile_app", func(e *Event) { toApp(e, AppOpened, SourceMobileApp) }, ""},
		{"app_installed no source_url ok", func(e *Event) { toApp(e, AppInstalled, SourceMobileApp); e.SourceURL = "" }, ""},
		{"web needs source_url", func(e *Event) { e.SourceURL = "" }, "source_url: required when action_source is web"},
		{"source_url relative", func(e *Event) { e.SourceURL = "/checkout" }, "source_url: must be an absolute URL"},
		{"source_url no host", func(e *Event) { e.SourceURL = "https:///x" }, "source_url: must be an absolute URL"},
		{"source_url space", func(e *Event) { e.SourceURL = "https://a.com/x y" }, "source_url: must be an absolute URL"},
		{"source_url bad escape", func(e *Event) { e.SourceURL = "https://a.com/%zz" }, "source_url: must be an absolute URL"},
		{"source_url bad host", func(e *Event) { e.SourceURL = "https://a b.com/" }, "source_url: must be an absolute URL"},
		{"source_url escape ok", func(e *Event) { e.SourceURL = "https://a.com/caf%C3%A9" }, ""},
		{"source_url with port", func(e *Event) { e.SourceURL = "http://shop.example.com:8080/x" }, ""},
		{"source_url ipv6", func(e *Event) { e.SourceURL = "http://[::1]:8080/" }, ""},
		{"data.type required", func(e *Event) { e.Data.Type = "" }, `data.type: required, must be "contents"`},
		{"data.type mismatch", func(e *Event) { e.Data.Type = DataCustomerAction }, `data.type: must be "contents" for this event type`},
		{"currency required with amount", func(e *Event) { e.Data.Currency = "" }, "data.currency: required when amount is set"},
		{"currency unknown", func(e *Event) { e.Data.Currency = "XYZ" }, "data.currency: not an ISO 4217 currency code"},
		{"currency lowercase ok", func(e *Event) { e.Data.Currency = "usd" }, ""},
		{"amount zero ok", func(e *Event) { e.Data.Amount = Int64(0) }, ""},
		{"no amount no currency ok", func(e *Event) {
			e.Data.Amount = OptInt64{}
			e.Data.Currency = ""
			e.Data.Contents[0].Amount = OptInt64{}
			e.Data.Contents[1].Amount = OptInt64{}
		}, ""},
		{"item amount needs currency", func(e *Event) { e.Data.Amount = OptInt64{}; e.Data.Currency = "" }, "data.contents[0].currency: required when the item has an amount"},
		{"item amount own currency", func(e *Event) {
			e.Data.Amount = OptInt64{}
			e.Data.Currency = ""
			e.Data.Contents[0].Currency = "EUR"
			e.Data.Contents[1].Currency = "EUR"
		}, ""},
		{"item currency unknown", func(e *Event) { e.Data.Contents[1].Currency = "EURO" }, "data.contents[1].currency: not an ISO 4217"},
		{"plan_id not in contents", func(e *Event) { e.Data.PlanID = "p" }, "data.plan_id: not allowed in contents data"},
		{"contents not in customer_action", func(e *Event) { e.Type = LeadCreated; e.Data.Type = DataCustomerAction }, "data.contents: not allowed in customer_action data"},
		{"plan_id not in customer_action", func(e *Event) {
			e.Type = LeadCreated
			e.Data = Data{Type: DataCustomerAction, PlanID: "p"}
		}, "data.plan_id: not allowed in customer_action data"},
		{"customer_action amount ok", func(e *Event) {
			e.Type = RegistrationCompleted
			e.Data = Data{Type: DataCustomerAction, Amount: Int64(0), Currency: "EUR"}
		}, ""},
		{"plan_enrollment full", func(e *Event) {
			e.Type = SubscriptionCreated
			e.Data.Type = DataPlanEnrollment
			e.Data.PlanID = "pro_monthly"
		}, ""},
		{"properties only in custom", func(e *Event) { e.Data.Properties = map[string]any{"tier": "gold"} }, "custom properties are allowed only in custom data"},
		{"custom properties ok", func(e *Event) {
			toCustom(e, "quote")
			e.Data.Properties = map[string]any{"tier": "gold", "n": 3, "f": 1.5, "ok": true, "nil": nil,
				"obj": map[string]any{"a": []any{1, "b"}}}
		}, ""},
		{"custom property collides", func(e *Event) { toCustom(e, "quote"); e.Data.Properties = map[string]any{"amount": 3} }, "data.amount: custom property collides"},
		{"custom property bad type", func(e *Event) { toCustom(e, "quote"); e.Data.Properties = map[string]any{"t": time.Now()} }, "data.t: unsupported value type"},
		{"email hash not hex", func(e *Event) { e.User.EmailsSHA256 = []string{"user@example.com"} }, "user.emails_sha256[0]: must be a lowercase 64-character hex"},
		{"email hash uppercase", func(e *Event) { e.User.EmailsSHA256 = []string{strings.ToUpper(hash)} }, "user.emails_sha256[0]"},
		{"phone hash short", func(e *Event) { e.User.PhoneNumbersSHA256 = []string{hash[:63]} }, "user.phone_numbers_sha256[0]"},
		{"external id hash", func(e *Event) { e.User.ExternalIDsSHA256 = []string{hash, "raw"} }, "user.external_ids_sha256[1]"},
		{"first name hash", func(e *Event) { e.User.FirstNamesSHA256 = []string{"Ada"} }, "user.first_names_sha256[0]"},
		{"last name hash", func(e *Event) { e.User.LastNamesSHA256 = []string{hash} }, ""},
		{"region too long", func(e *Event) { e.User.Regions = []string{strings.Repeat("r", 129)} }, "user.regions[0]: longer than 128"},
		{"region 128 ok", func(e *Event) { e.User.Regions = []string{strings.Repeat("é", 128)} }, ""},
		{"city empty", func(e *Event) { e.User.Cities = []string{" "} }, "user.cities[0]: must not be empty"},
		{"postal ok", func(e *Event) { e.User.PostalCodes = []string{"SW1A 1AA", "94107-1234"} }, ""},
		{"postal bad char", func(e *Event) { e.User.PostalCodes = []string{"94107#"} }, "user.postal_codes[0]: may hold only letters"},
		{"postal too long", func(e *Event) { e.User.PostalCodes = []string{strings.Repeat("1", 33)} }, "user.postal_codes[0]: longer than 32"},
		{"country lowercase", func(e *Event) { e.User.Countries = []string{"de"} }, `user.countries[0]: must be upper case`},
		{"country unknown", func(e *Event) { e.User.Countries = []string{"XX"} }, `user.countries[0]: not an ISO 3166-1 alpha-2 country code: "XX"`},
		{"country alpha-3", func(e *Event) { e.User.Countries = []string{"USA"} }, "user.countries[0]"},
		{"gaid ok", func(e *Event) { e.User.AndroidAdvertisingID = "38400000-8cf0-11bd-b23e-10b96e40000d" }, ""},
		{"gaid bad", func(e *Event) { e.User.AndroidAdvertisingID = "38400000-8cf0-11bd-b23e" }, "user.android_advertising_id: must be a UUID"},
		{"ipv6 ok", func(e *Event) { e.User.IPAddress = "2001:db8::1" }, ""},
		{"ip bad", func(e *Event) { e.User.IPAddress = "300.1.1.1" }, "user.ip_address: not a valid IPv4 or IPv6"},
		{"several errors at once", func(e *Event) { e.ID = ""; e.Data.Currency = "" }, "id: required (the deduplication key must not be empty); data.currency: required when amount is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := orderEvent()
			tt.mutate(&e)
			err := v.Validate(&e)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got nil", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func toCustom(e *Event, name string) {
	e.Type = Custom
	e.CustomEventName = name
	e.Data.Type = DataCustom
}

func toApp(e *Event, typ EventType, src ActionSource) {
	e.Type = typ
	e.ActionSource = src
	e.Data = Data{Type: DataCustomerAction}
}

func TestEveryEventTypeHasAShape(t *testing.T) {
	v := &Validator{Now: fixedClock}
	for _, typ := range EventTypes {
		dt, ok := DataTypeOf(typ)
		if !ok {
			t.Fatalf("%s has no data type", typ)
		}
		e := Event{ID: "1", Type: typ, TimestampMS: testNow.UnixMilli(), ActionSource: SourceOffline, Data: Data{Type: dt}}
		if typ == Custom {
			e.CustomEventName = "thing"
		}
		if typ == AppInstalled || typ == AppOpened {
			e.ActionSource = SourceMobileApp
		}
		if err := v.Validate(&e); err != nil {
			t.Errorf("%s: minimal event invalid: %v", typ, err)
		}
	}
	if len(EventTypes) != 13 {
		t.Fatalf("want the 13 documented event names, have %d", len(EventTypes))
	}
}

func TestValidateRequest(t *testing.T) {
	v := &Validator{Now: fixedClock}
	ev := orderEvent()
	bad := orderEvent()
	bad.Data.Currency = ""
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{"one event", Request{Events: []Event{ev}}, ""},
		{"none", Request{}, "events: must hold at least 1 event"},
		{"1000", Request{Events: slices.Repeat([]Event{ev}, 1000)}, ""},
		{"1001", Request{Events: slices.Repeat([]Event{ev}, 1001)}, "must hold at most 1000 events"},
		{"index in path", Request{Events: []Event{ev, ev, ev, bad}}, "events[3].data.currency: required when amount is set"},
		{"integration source ok", Request{Events: []Event{ev}, IntegrationSource: "capirelay-1.0_x"}, ""},
		{"integration source start", Request{Events: []Event{ev}, IntegrationSource: "-x"}, "integration_source: must start with a letter or digit"},
		{"integration source char", Request{Events: []Event{ev}, IntegrationSource: "a b"}, "may hold only letters"},
		{"integration source long", Request{Events: []Event{ev}, IntegrationSource: strings.Repeat("a", 65)}, "1 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.ValidateRequest(&tt.req)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestWindowErrorsAreDistinguishable(t *testing.T) {
	v := &Validator{Now: fixedClock, MaxAge: 6 * 24 * time.Hour}
	e := orderEvent()
	e.TimestampMS = testNow.Add(-6*24*time.Hour - time.Second).UnixMilli()
	err := v.Validate(&e)
	if !errors.Is(err, ErrTooOld) || errors.Is(err, ErrTooNew) {
		t.Fatalf("want ErrTooOld, got %v", err)
	}
	if !strings.Contains(err.Error(), "cutoff 2026-03-13T04:00:00Z") {
		t.Fatalf("error should name the cutoff: %v", err)
	}
	e.TimestampMS = testNow.Add(time.Hour).UnixMilli()
	if err := v.Validate(&e); !errors.Is(err, ErrTooNew) {
		t.Fatalf("want ErrTooNew, got %v", err)
	}
	e.ID = ""
	if err := v.Validate(&e); errors.Is(err, ErrTooOld) {
		t.Fatalf("unexpected ErrTooOld: %v", err)
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	v := &Validator{Now: fixedClock}
	e := orderEvent()
	allocs := testing.AllocsPerRun(100, func() {
		if err := v.Validate(&e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Validate of a valid event allocates %v times", allocs)
	}
}
