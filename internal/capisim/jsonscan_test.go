package capisim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

var scannerSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `-12E+4`, `true`, `false`, `null`,
	`{"a":[1,2,{"b":null}],"c":"x\"y\\z\/\b\f\n\r\t\u00e9\ud83d\ude00"}`,
	`"\ud800"`, `"\udc00x"`, `"\ud800\u0041"`, `"é"`, `"\u0000"`,
	`{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `01`, `1.`, `.5`, `1e`, `-`, `+1`,
	`tru`, `nul`, `truex`, `"abc`, `"\x"`, `"\u12"`, "\"a\tb\"", `[1 2]`, `{"a":1 "b":2}`, ` [ 1 , 2 ] `,
	`[[[[[]]]]]`, `{"a":{"b":{"c":[]}}}`, `1 2`, ``, ` `, `[`, `{`, `{"a":[}`, `[1}`,
}

// FuzzScanner checks the scanner against encoding/json: the same documents
// are valid (for valid UTF-8 input without deep nesting), and strings decode
// to the same value.
func FuzzScanner(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !utf8.ValidString(in) || strings.Count(in, "[")+strings.Count(in, "{") > maxDepth/2 {
			return
		}
		sc := scanner{b: []byte(in)}
		err := sc.skip(0)
		if err == nil {
			sc.ws()
			if sc.i != len(sc.b) {
				err = sc.fail("trailing data")
			}
		}
		if want := json.Valid([]byte(in)); want != (err == nil) {
			t.Fatalf("%q: scanner error %v, encoding/json valid %v", in, err, want)
		}
		if err != nil || !strings.HasPrefix(strings.TrimLeft(in, " \t\r\n"), `"`) {
			return
		}
		sc = scanner{b: []byte(in)}
		sc.ws()
		got, err := sc.str()
		var want string
		if jerr := json.Unmarshal([]byte(in), &want); jerr != nil || err != nil || string(got) != want {
			t.Fatalf("%q: scanner %q (%v), encoding/json %q (%v)", in, got, err, want, jerr)
		}
	})
}

func TestParseInt64(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"42", 42, true}, {"-42", -42, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false}, {"18446744073709551616", 0, false},
	} {
		got, ok := parseInt64([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseInt64(%s) = %d, %v", tc.in, got, ok)
		}
	}
}

// TestManyCustomProperties exercises duplicate detection beyond the small
// set (more than 16 keys) and odd key names in error paths.
func TestManyCustomProperties(t *testing.T) {
	props := make([]string, 0, 40)
	for i := 0; i < 40; i++ {
		props = append(props, fmt.Sprintf(`"p%d":%d`, i, i))
	}
	ev := func(extra string) []byte {
		return []byte(`{"events":[{"id":"c1","type":"custom","custom_event_name":"x","timestamp_ms":` + itoa(int(testNow.UnixMilli())) +
			`,"data":{"type":"custom",` + strings.Join(props, ",") + extra + `}}]}`)
	}
	s := newSim(t, func(o *Options) { o.NameFailingEvent = true })
	wantStatus(t, send(t, s, ev("")), 200)
	w := send(t, s, ev(`,"p30":1`))
	wantStatus(t, w, 400)
	if p := decodeError(t, w).Error.Param; p != "events[0].data.p30" {
		t.Fatalf("param %q", p)
	}
	w = send(t, s, ev(`,"a b":1,"a b":2`))
	if p := decodeError(t, w).Error.Param; p != `events[0].data."a b"` {
		t.Fatalf("param %q", p)
	}
}

// TestIgnoredUnknownFieldsStillChecked: ignored fields must still be valid
// JSON and not duplicated.
func TestIgnoredUnknownFieldsStillChecked(t *testing.T) {
	s := newSim(t, func(o *Options) { o.IgnoreUnknownFields = true; o.NameFailingEvent = true })
	good := string(mustJSON(orderEvent("o1")))
	body := func(ev string) []byte { return []byte(`{"events":[` + ev + `],"x":{"y":[1,2]}}`) }
	wantStatus(t, send(t, s, body(strings.Replace(good, `{`, `{"extra":[true,null,{"k":"v"}],`, 1))), http.StatusOK)
	w := send(t, s, body(strings.Replace(good, `{`, `{"extra":1,"extra":2,`, 1)))
	wantStatus(t, w, 400)
	if p := decodeError(t, w).Error.Param; p != "events[0].extra" {
		t.Fatalf("param %q", p)
	}
	wantStatus(t, send(t, s, body(strings.Replace(good, `{`, `{"extra":[1,],`, 1))), 400)
}

// FuzzBatch feeds arbitrary bodies to the validator: it must never panic,
// and every accepted event's raw bytes must be a JSON object.
func FuzzBatch(f *testing.F) {
	f.Add(string(batchOf(orderEvent("o1"), eventFor("custom", "c1"), eventFor("app_opened", "a1"))))
	f.Add(`{"events":[{"id":"x","type":"custom","custom_event_name":"a","timestamp_ms":1773892800000,"data":{"type":"custom","k":[{}]}}]}`)
	f.Add(`{"events":[]}`)
	f.Fuzz(func(t *testing.T, in string) {
		for _, ignore := range []bool{false, true} {
			v := validator{sc: scanner{b: []byte(in)}, nowMs: testNow.UnixMilli(), ignoreUnknown: ignore}
			b, err := v.parseBatch()
			if err != nil {
				if _, ok := err.(*batchError); !ok {
					t.Fatalf("error of type %T", err)
				}
				continue
			}
			for _, e := range b.events {
				var m map[string]any
				if json.Unmarshal([]byte(in)[e.start:e.end], &m) != nil && utf8.ValidString(in) {
					t.Fatalf("raw event %q is not an object", in[e.start:e.end])
				}
			}
			v = validator{sc: scanner{b: []byte(in)}}
			if _, _, err := v.countEvents(); err != nil {
				t.Fatalf("valid batch refused by NullSink: %v", err)
			}
		}
	})
}
