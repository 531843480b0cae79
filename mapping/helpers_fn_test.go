package mapping

import (
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/capi"
)

func TestMoneyMinor(t *testing.T) {
	tests := []struct {
		amount   val
		currency string
		want     int64
		err      string
	}{
		{val{k: kString, s: "199.90"}, "USD", 19990, ""},
		{val{k: kString, s: "129.98"}, "usd", 12998, ""},
		{val{k: kString, s: "0.125"}, "USD", 13, ""}, // half away from zero
		{val{k: kString, s: "-0.125"}, "USD", -13, ""},
		{val{k: kString, s: "0.124999"}, "USD", 12, ""},
		{val{k: kString, s: "0.135"}, "USD", 14, ""},
		{val{k: kString, s: "14.995"}, "USD", 1500, ""},
		{val{k: kString, s: " 5 "}, "USD", 500, ""},
		{val{k: kString, s: "5."}, "USD", 500, ""},
		{val{k: kString, s: ".5"}, "USD", 50, ""},
		{val{k: kString, s: "+1.5"}, "EUR", 150, ""},
		{val{k: kString, s: "8900"}, "JPY", 8900, ""},
		{val{k: kString, s: "8900.5"}, "JPY", 8901, ""},
		{val{k: kString, s: "1.2345"}, "KWD", 1235, ""},
		{val{k: kInt, n: 29}, "USD", 2900, ""},
		{val{k: kInt, n: 8900}, "JPY", 8900, ""},
		{val{k: kInt, n: 3}, "KWD", 3000, ""},
		{floatVal(29.99), "USD", 2999, ""},
		{floatVal(0.1 + 0.2), "USD", 30, ""}, // 0.30000000000000004
		{floatVal(1e-7), "USD", 0, ""},
		{val{k: kString, s: "1,99"}, "USD", 0, "not a decimal number"},
		{val{k: kString, s: ""}, "USD", 0, "not a decimal number"},
		{val{k: kString, s: "."}, "USD", 0, "not a decimal number"},
		{val{k: kString, s: "1e3"}, "USD", 0, "not a decimal number"},
		{val{k: kString, s: "abc"}, "USD", 0, "not a decimal number"},
		{val{k: kString, s: "10.00"}, "XYZ", 0, `unknown currency "XYZ"`},
		{val{k: kString, s: "99999999999999999999"}, "USD", 0, "overflows"},
		{val{k: kInt, n: 1 << 62}, "USD", 0, "overflows"},
		{val{k: kBool, n: 1}, "USD", 0, "must be an int, a double or a decimal string, got bool"},
	}
	for _, tt := range tests {
		got, err := moneyMinor(tt.amount, tt.currency)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("moneyMinor(%+v, %s) error = %v, want containing %q", tt.amount, tt.currency, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("moneyMinor(%+v, %s) = %d, %v; want %d", tt.amount, tt.currency, got, err, tt.want)
		}
	}
}

func TestOriginPath(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"https://shop.example.com/checkout/confirmation?session=abc#top", "https://shop.example.com/checkout/confirmation", ""},
		{"https://shop.example.com/a/b", "https://shop.example.com/a/b", ""},
		{"https://shop.example.com", "https://shop.example.com", ""},
		{"https://shop.example.com?x=1", "https://shop.example.com", ""},
		{"https://shop.example.com:8443/p#f", "https://shop.example.com:8443/p", ""},
		{"HTTPS://Shop.Example.COM/Path?q", "https://shop.example.com/Path", ""},
		{"https://user:secret@shop.example.com/p?q", "https://shop.example.com/p", ""},
		{"http://[2001:db8::1]:8080/x?y", "http://[2001:db8::1]:8080/x", ""},
		{"", "", ""},
		{"/checkout?x=1", "", "not an absolute URL"},
		{"shop.example.com/checkout", "", "not an absolute URL"},
		{"https:///path", "", "no host"},
		{"ht tp://x/y", "", "invalid URL scheme"},
		{"https://x/a b", "", "spaces"},
	}
	for _, tt := range tests {
		got, err := originPath(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("originPath(%q) error = %v, want containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("originPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestOriginPathDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		if _, err := originPath("https://shop.example.com/checkout?x=1"); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("originPath allocates %v times, want 0", n)
	}
}

func TestTimeHelpers(t *testing.T) {
	want := time.Date(2026, 3, 19, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		fn   string
		in   val
		per  int64
		want time.Time
		err  string
	}{
		{"time.epoch_seconds", val{k: kInt, n: 1773892800}, 1, want, ""},
		{"time.epoch_seconds", val{k: kString, s: "1773892800"}, 1, want, ""},
		{"time.epoch_seconds", val{k: kString, s: "1773892800.250"}, 1, want.Add(250 * time.Millisecond), ""},
		{"time.epoch_seconds", floatVal(1773892800.5), 1, want.Add(500 * time.Millisecond), ""},
		{"time.epoch_millis", val{k: kInt, n: 1773892800123}, 1e3, want.Add(123 * time.Millisecond), ""},
		{"time.epoch_millis", val{k: kString, s: "1773892800123"}, 1e3, want.Add(123 * time.Millisecond), ""},
		{"time.epoch_millis", floatVal(1773892800123), 1e3, want.Add(123 * time.Millisecond), ""},
		{"time.epoch_micros", val{k: kInt, n: 1773892800123456}, 1e6, want.Add(123456 * time.Microsecond), ""},
		{"time.epoch_millis", val{k: kString, s: "12.5"}, 1e3, time.Time{}, "not an integer"},
		{"time.epoch_seconds", val{k: kString, s: "soon"}, 1, time.Time{}, "not a number"},
		{"time.epoch_millis", val{k: kBool}, 1e3, time.Time{}, "want an integer or a numeric string"},
	}
	for _, tt := range tests {
		got, err := epochTime(tt.fn, tt.in, tt.per)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s(%+v) error = %v, want containing %q", tt.fn, tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("%s(%+v) = %v, %v; want %v", tt.fn, tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-03-19T04:00:00Z", want, true},
		{"2026-03-19T13:00:00+09:00", want, true},
		{"2026-03-19T04:00:00.5Z", want.Add(500 * time.Millisecond), true},
		{"2026-03-19 04:00:00", time.Time{}, false},
		{"19/03/2026", time.Time{}, false},
	} {
		got, err := parseRFC3339(tt.in)
		if (err == nil) != tt.ok || tt.ok && !got.Equal(tt.want) {
			t.Errorf("parseRFC3339(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestSHA256(t *testing.T) {
	if got := capi.SHA256Hex("user@example.com"); got != "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514" {
		t.Errorf("capi.SHA256Hex = %s", got)
	}
}

func TestCurrencyExponentFastPathAgrees(t *testing.T) {
	for _, code := range []string{"USD", "EUR", "GBP", "CAD", "AUD", "CHF", "CNY", "INR", "BRL", "MXN", "SEK", "NOK", "DKK", "PLN", "SGD", "HKD", "NZD", "ZAR", "JPY", "KRW", "KWD", "usd", "XYZ"} {
		e1, ok1 := currencyExponent(code)
		e2, ok2 := capi.CurrencyExponent(code)
		if e1 != e2 || ok1 != ok2 {
			t.Errorf("%s: fast path %d %v, capi %d %v", code, e1, ok1, e2, ok2)
		}
	}
}

func TestFastRFC3339MatchesTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-03-19T04:00:00Z", "2026-03-19t04:00:00z", "2026-03-19T13:00:00+09:00", "2026-03-19T00:30:00-05:30",
		"2026-03-19T04:00:00.1Z", "2026-03-19T04:00:00.123456789Z", "2026-03-19T04:00:00.1234567891Z",
		"2026-02-29T04:00:00Z", "2024-02-29T04:00:00Z", "2026-03-31T23:59:59Z", "2026-03-19T24:00:00Z",
		"2026-03-19T04:00:60Z", "2026-13-19T04:00:00Z", "2026-03-19T04:00:00", "2026-03-19T04:00:00+0900",
		"2026-03-19T04:00:00.Z", "2026-03-19 04:00:00Z", "0000-01-01T00:00:00Z", "2026-03-19T04:00:00+24:00",
	} {
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, gerr := parseRFC3339(s)
		if (werr == nil) != (gerr == nil) || werr == nil && !got.Equal(want) {
			t.Errorf("parseRFC3339(%q) = %v, %v; time.Parse gives %v, %v", s, got, gerr, want, werr)
		}
	}
}
