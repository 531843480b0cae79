package capi

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/capisim"
)

func marshalStd(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	custom := orderEvent()
	toCustom(&custom, "quote_requested")
	custom.Data.PlanID = "gold"
	custom.Data.Properties = map[string]any{"z": 1, "a": "x", "nested": map[string]any{"k": []any{true, nil, 1.5}}, "num": json.Number("12.50")}
	custom.Data.Contents[0].VariantDict = map[string]string{"size": "L", "color": "red"}
	custom.OptOut = true
	custom.User.FirstNamesSHA256 = []string{SHA256Hex("ada")}
	custom.User.AndroidAdvertisingID = "38400000-8cf0-11bd-b23e-10b96e40000d"
	custom.User.OBRef = "ob.1.2"
	custom.User.Regions = []string{"CA"}
	custom.User.Cities = []string{"San Francisco"}
	custom.User.PostalCodes = []string{"94107"}

	minimal := Event{ID: "1", Type: LeadCreated, TimestampMS: 1, ActionSource: SourceEmail, Data: Data{Type: DataCustomerAction}}
	weird := orderEvent()
	weird.ID = "quote\" back\\slash \n\t\r\b\f \x01 \u2028 <html>&amp; é 😀 \xff bad"
	weird.Data.Contents[0].Name = "\x00\x1f"

	for name, e := range map[string]Event{"order": orderEvent(), "custom": custom, "minimal": minimal, "escapes": weird} {
		t.Run(name, func(t *testing.T) {
			got := AppendEvent(nil, &e)
			want := marshalStd(t, &e)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendEvent differs from encoding/json:\n got %s\nwant %s", got, want)
			}
			var back Event
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, got)
			}
			if name != "escapes" && name != "custom" && !reflect.DeepEqual(back, e) {
				t.Fatalf("round trip differs:\n got %+v\nwant %+v", back, e)
			}
		})
	}
}

func TestAppendEventOmitsAbsentFields(t *testing.T) {
	e := Event{ID: "1", Type: LeadCreated, TimestampMS: 5, Data: Data{Type: DataCustomerAction}}
	got := string(AppendEvent(nil, &e))
	want := `{"id":"1","type":"lead_created","timestamp_ms":5,"data":{"type":"customer_action"}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	e.Data.Amount = Int64(0)
	e.Data.Currency = "EUR"
	if got := string(AppendEvent(nil, &e)); !strings.Contains(got, `"amount":0,"currency":"EUR"`) {
		t.Fatalf("a present zero amount must be sent: %s", got)
	}
}

// Send calls RequestSize twice per event: it must not allocate.
func TestRequestSizeAllocs(t *testing.T) {
	for _, src := range []string{"", "capirelay-test", strings.Repeat("a", 64)} {
		if n := testing.AllocsPerRun(100, func() { RequestSize(5000, 7, true, src) }); n != 0 {
			t.Errorf("RequestSize(..., %q) allocates %v times, want 0", src, n)
		}
	}
}

func TestAppendRequestAndSize(t *testing.T) {
	a := AppendEvent(nil, &Event{ID: "a", Type: PageViewed, TimestampMS: 1, Data: Data{Type: DataContents}})
	b := AppendEvent(nil, &Event{ID: "b", Type: PageViewed, TimestampMS: 2, Data: Data{Type: DataContents}})
	for _, tc := range []struct {
		events [][]byte
		vo     bool
		src    string
	}{
		{[][]byte{a}, false, ""},
		{[][]byte{a, b}, true, "capirelay"},
		{[][]byte{a, b, a}, false, "x\"y"},
	} {
		body := AppendRequest(nil, tc.events, tc.vo, tc.src)
		if n := RequestSize(len(bytes.Join(tc.events, nil)), len(tc.events), tc.vo, tc.src); n != len(body) {
			t.Errorf("RequestSize = %d, len(body) = %d", n, len(body))
		}
		var req Request
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if len(req.Events) != len(tc.events) || req.ValidateOnly != tc.vo || req.IntegrationSource != tc.src {
			t.Fatalf("decoded request differs: %+v", req)
		}
	}
}

func TestAppendFloatLikeEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1.5, 1e20, 1e21, 1e-6, 1e-7, 123456.789, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		got := string(appendFloat(nil, f, 64))
		want, _ := json.Marshal(f)
		if got != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
	if got := string(appendFloat(nil, math.NaN(), 64)); got != "null" {
		t.Errorf("NaN = %s", got)
	}
}

func TestValidJSONNumber(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "-0": true, "12.50": true, "1e5": true, "-1.2E-3": true,
		"": false, "01": false, "1.": false, ".5": false, "+1": false, "1e": false, "NaN": false, "-": false} {
		if validJSONNumber(s) != want {
			t.Errorf("validJSONNumber(%q) = %v", s, !want)
		}
	}
}

// FuzzValidateEncode: no input panics the validator or the encoder, and
// whatever validates encodes to valid JSON that decodes back to the same event.
func FuzzValidateEncode(f *testing.F) {
	e := orderEvent()
	f.Add(e.ID, string(e.Type), e.TimestampMS, "", string(e.ActionSource), e.SourceURL, e.OppRef, e.Data.Currency, int64(2599), "sku", "US", "203.0.113.7", "")
	f.Add("x\"\\\n", "custom", testNow.UnixMilli(), "my_event", "web", "https://a/b?c", "\xff", "jpy", int64(-1), "", "de", "::1", "p")
	f.Add("", "app_opened", int64(0), "", "mobile_app", "", "", "", int64(0), "\u2028", "", "", "")
	v := &Validator{Now: fixedClock}
	sim, _ := newSim(f, capisim.Options{})
	f.Fuzz(func(t *testing.T, id, typ string, ts int64, customName, source, url, oppref, currency string, amount int64, itemName, country, ip, planID string) {
		ev := Event{ID: id, Type: EventType(typ), TimestampMS: ts, CustomEventName: customName,
			ActionSource: ActionSource(source), SourceURL: url, OppRef: oppref,
			User: User{Countries: []string{country}, IPAddress: ip},
			Data: Data{PlanID: planID, Amount: Int64(amount), Currency: currency,
				Contents: []Content{{Name: itemName, Quantity: Int64(1)}}}}
		ev.Data.Type, _ = DataTypeOf(ev.Type)
		if ev.Data.Type == DataCustomerAction {
			ev.Data.Contents = nil
		}
		err := v.Validate(&ev)
		body := AppendEvent(nil, &ev)
		if !json.Valid(body) {
			t.Fatalf("invalid JSON for %+v: %s", ev, body)
		}
		if err != nil {
			return
		}
		// What validates, the independent simulator accepts.
		if code, resp := postToSim(t, sim, AppendRequest(nil, [][]byte{body}, true, "")); code != 200 {
			t.Fatalf("validator accepted, simulator answered %d: %s\n%s", code, resp, body)
		}
		var back Event
		if err := json.Unmarshal(body, &back); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(id) || !utf8.ValidString(url) || !utf8.ValidString(oppref) || !utf8.ValidString(itemName) || !utf8.ValidString(planID) {
			return // invalid UTF-8 is replaced by U+FFFD on purpose
		}
		if !reflect.DeepEqual(back, ev) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", back, ev)
		}
	})
}

// jsonOrderEvent mirrors Event with plain struct tags, so the baseline below
// measures encoding/json itself and not the custom Data marshaller.
type jsonOrderEvent struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	TimestampMS  int64  `json:"timestamp_ms"`
	ActionSource string `json:"action_source,omitempty"`
	SourceURL    string `json:"source_url,omitempty"`
	OppRef       string `json:"oppref,omitempty"`
	User         *User  `json:"user,omitempty"`
	Data         struct {
		Type     string `json:"type"`
		Amount   *int64 `json:"amount,omitempty"`
		Currency string `json:"currency,omitempty"`
		Contents []struct {
			ID          string `json:"id,omitempty"`
			Name        string `json:"name,omitempty"`
			ContentType string `json:"content_type,omitempty"`
			Quantity    *int64 `json:"quantity,omitempty"`
			Amount      *int64 `json:"amount,omitempty"`
		} `json:"contents,omitempty"`
	} `json:"data"`
}

// BenchmarkValidateEncode is the benchmark: Validate + AppendEvent of
// the typical order event into a reused buffer.
func BenchmarkValidateEncode(b *testing.B) {
	v := &Validator{Now: fixedClock}
	e := orderEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate(&e); err != nil {
			b.Fatal(err)
		}
		buf = AppendEvent(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkValidateEncodeStdlib is the baseline: the same validation, and
// encoding/json.Marshal of an equivalent plainly tagged struct.
func BenchmarkValidateEncodeStdlib(b *testing.B) {
	v := &Validator{Now: fixedClock}
	e := orderEvent()
	var m jsonOrderEvent
	if err := json.Unmarshal(AppendEvent(nil, &e), &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		if err := v.Validate(&e); err != nil {
			b.Fatal(err)
		}
		var err error
		out, err = json.Marshal(&m)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(out)))
}

func BenchmarkHashEmailPhone(b *testing.B) {
	var h Hasher
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(FieldEmail, "User@Example.com"); err != nil {
			b.Fatal(err)
		}
		if _, err := h.Hash(FieldPhone, "+1 (415) 555-2671"); err != nil {
			b.Fatal(err)
		}
	}
}
