package capisim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewValidatesOptions(t *testing.T) {
	ok := Options{APIKey: "k", Pixels: []string{"p"}}
	cases := []struct {
		name string
		edit func(*Options)
		want string // substring of the error; "" means New succeeds
	}{
		{"minimal", func(*Options) {}, ""},
		{"all faults at bounds", func(o *Options) {
			o.FailRate, o.ThrottleRate, o.HangRate, o.AuthFailRate, o.Status5xx = 1, 1, 1, 1, 599
		}, ""},
		{"no key", func(o *Options) { o.APIKey = "" }, "APIKey"},
		{"no pixel", func(o *Options) { o.Pixels = nil }, "pixel"},
		{"empty pixel", func(o *Options) { o.Pixels = []string{""} }, "pixel"},
		{"fail rate above 1", func(o *Options) { o.FailRate = 1.5 }, "FailRate"},
		{"negative throttle rate", func(o *Options) { o.ThrottleRate = -0.1 }, "ThrottleRate"},
		{"hang rate NaN", func(o *Options) { o.HangRate = nan() }, "HangRate"},
		{"auth fail rate above 1", func(o *Options) { o.AuthFailRate = 2 }, "AuthFailRate"},
		{"status 5xx is 404", func(o *Options) { o.Status5xx = 404 }, "Status5xx"},
		{"negative retry after", func(o *Options) { o.RetryAfter = -time.Second }, "RetryAfter"},
		{"negative latency", func(o *Options) { o.Latency = -time.Second }, "Latency"},
		{"negative max body", func(o *Options) { o.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"negative max stored", func(o *Options) { o.MaxStoredEvents = -1 }, "MaxStoredEvents"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			s, err := New(o)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want mention of %q", err, tc.want)
			}
		})
	}
	// Defaults are filled in.
	s, _ := New(ok)
	if f := s.Faults(); f.Status5xx != 503 || f.RetryAfter != time.Second {
		t.Fatalf("defaults: %+v", f)
	}
}

func nan() float64 { zero := 0.0; return zero / zero }

func TestAuth(t *testing.T) {
	cases := []struct {
		name   string
		header string
		status int
	}{
		{"right key", "Bearer " + testKey, 200},
		{"scheme lower case", "bearer " + testKey, 200},
		{"missing", "", 401},
		{"wrong key", "Bearer sk-wrong", 401},
		{"key prefix", "Bearer " + testKey[:10], 401},
		{"key with trailing space", "Bearer " + testKey + " ", 401},
		{"no scheme", testKey, 401},
		{"basic scheme", "Basic " + testKey, 401},
		{"scheme only", "Bearer", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, nil)
			w := send(t, s, batchOf(orderEvent("o1")), func(r *http.Request) {
				r.Header.Del("Authorization")
				if tc.header != "" {
					r.Header.Set("Authorization", tc.header)
				}
			})
			wantStatus(t, w, tc.status)
			if tc.status == 401 {
				if e := decodeError(t, w); e.Error.Type != "authentication_error" {
					t.Errorf("type %q", e.Error.Type)
				}
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header")
				}
				if strings.Contains(w.Body.String(), testKey[:10]) {
					t.Error("response echoes the key")
				}
				if len(s.Events()) != 0 {
					t.Error("event stored without auth")
				}
			}
		})
	}
}

func TestPixel(t *testing.T) {
	cases := []struct {
		name   string
		query  string
		status int
	}{
		{"known pixel", "?pid=" + testPixel, 200},
		{"other known pixel", "?pid=px_other", 200},
		{"unknown pixel", "?pid=px_nope", 403},
		{"missing pid", "", 403},
		{"empty pid", "?pid=", 403},
		{"two pids", "?pid=" + testPixel + "&pid=px_other", 403},
		{"other params ignored", "?pid=" + testPixel + "&x=1", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, nil)
			w := send(t, s, batchOf(orderEvent("o1")), func(r *http.Request) { r.URL.RawQuery = strings.TrimPrefix(tc.query, "?") })
			wantStatus(t, w, tc.status)
			if tc.status == 403 && decodeError(t, w).Error.Type != "permission_denied" {
				t.Error("wrong error type")
			}
		})
	}
	// Auth is checked before the pixel.
	s := newSim(t, nil)
	wantStatus(t, send(t, s, batchOf(orderEvent("o1")), func(r *http.Request) {
		r.URL.RawQuery = "pid=px_nope"
		r.Header.Set("Authorization", "Bearer wrong")
	}), 401)
}

func TestContentTypeAndEncoding(t *testing.T) {
	cases := []struct {
		name     string
		ct, enc  string
		status   int
		rejected bool
	}{
		{"application/json", "application/json", "", 200, false},
		{"with utf-8 charset", "application/json; charset=utf-8", "", 200, false},
		{"charset upper case", "Application/JSON; charset=UTF-8", "", 200, false},
		{"identity encoding", "application/json", "identity", 200, false},
		{"missing", "", "", 415, true},
		{"text/plain", "text/plain", "", 415, true},
		{"form", "application/x-www-form-urlencoded", "", 415, true},
		{"latin1 charset", "application/json; charset=iso-8859-1", "", 415, true},
		{"malformed", "application/json; charset", "", 415, true},
		{"gzip", "application/json", "gzip", 415, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, nil)
			w := send(t, s, batchOf(orderEvent("o1")), func(r *http.Request) {
				r.Header.Del("Content-Type")
				if tc.ct != "" {
					r.Header.Set("Content-Type", tc.ct)
				}
				if tc.enc != "" {
					r.Header.Set("Content-Encoding", tc.enc)
				}
			})
			wantStatus(t, w, tc.status)
			if got := s.Stats().BatchesRejected; (got == 1) != tc.rejected {
				t.Errorf("BatchesRejected = %d", got)
			}
		})
	}
}

func TestRoutesAndMethods(t *testing.T) {
	s := newSim(t, nil)
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/events?pid=" + testPixel, 405},
		{"PUT", "/v1/events?pid=" + testPixel, 405},
		{"POST", "/v1/events/", 404},
		{"POST", "/v2/events", 404},
		{"GET", "/", 404},
		{"POST", "/_sim/events", 405},
		{"POST", "/_sim/stats", 405},
		{"GET", "/_sim/reset", 405},
		{"DELETE", "/_sim/faults", 405},
		{"GET", "/_sim/events", 200},
		{"GET", "/_sim/stats", 200},
		{"GET", "/_sim/faults", 200},
		{"POST", "/_sim/reset", 204},
	}
	for _, tc := range cases {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.status)
		}
		if w.Code == 405 && w.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	body := batchOf(orderEvent("o1"))
	t.Run("content-length over the limit", func(t *testing.T) {
		s := newSim(t, func(o *Options) { o.MaxBodyBytes = int64(len(body) - 1) })
		w := send(t, s, body)
		wantStatus(t, w, 413)
		if decodeError(t, w).Error.Type != "request_too_large" || s.Stats().BatchesRejected != 1 {
			t.Fatal("not counted as a rejected batch")
		}
	})
	t.Run("chunked over the limit", func(t *testing.T) {
		s := newSim(t, func(o *Options) { o.MaxBodyBytes = int64(len(body) - 1) })
		wantStatus(t, send(t, s, body, func(r *http.Request) {
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(body))
		}), 413)
	})
	t.Run("exactly at the limit", func(t *testing.T) {
		s := newSim(t, func(o *Options) { o.MaxBodyBytes = int64(len(body)) })
		wantStatus(t, send(t, s, body), 200)
		wantStatus(t, send(t, s, body, func(r *http.Request) {
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(body))
		}), 200)
	})
	t.Run("default limit is 8 MiB", func(t *testing.T) {
		s := newSim(t, nil)
		big := append(bytes.Repeat([]byte(" "), DefaultMaxBodyBytes), body...)
		wantStatus(t, send(t, s, big), 413)
	})
	t.Run("over real HTTP", func(t *testing.T) {
		s := newSim(t, func(o *Options) { o.MaxBodyBytes = 1 << 10 })
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		many := make([]obj, 20)
		for i := range many {
			many[i] = orderEvent(fmt.Sprint("o", i))
		}
		resp := post(t, srv.URL, batchOf(many...))
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// post sends body to a real server and returns the response, body read.
// It calls t.Fatal: goroutines other than the test's use tryPost.
func post(t testing.TB, base string, body []byte) *http.Response {
	t.Helper()
	resp, err := tryPost(base, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// tryPost is post returning the error, for goroutines other than the
// test's, where t.Fatal must not be called.
func tryPost(base string, body []byte) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(clientReq(base, body))
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

func TestWholeBatchFailure(t *testing.T) {
	s := newSim(t, nil)
	bad := edited(orderEvent("o2"), without("data.currency"))
	w := send(t, s, batchOf(orderEvent("o1"), bad, orderEvent("o3")))
	wantStatus(t, w, 400)
	if n := len(s.Events()); n != 0 {
		t.Fatalf("%d events stored from a failed batch", n)
	}
	st := s.Stats()
	if st.EventsAccepted != 0 || st.EventsReceived != 0 || st.BatchesRejected != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The dedup state was not touched: the good events go in afterwards.
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"), orderEvent("o2"), orderEvent("o3"))), 200)
	if n := len(s.Events()); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
}

func TestNameFailingEvent(t *testing.T) {
	body := batchOf(orderEvent("o1"), orderEvent("o2"), edited(orderEvent("o3"), without("data.currency")))
	malformed := []byte(`{"events":[` + string(mustJSON(orderEvent("o1"))) + `,{"id":"o2",}]}`)

	t.Run("on", func(t *testing.T) {
		s := newSim(t, func(o *Options) { o.NameFailingEvent = true })
		e := decodeError(t, send(t, s, body))
		if e.Error.Param != "events[2].data.currency" || e.Error.EventIndex == nil || *e.Error.EventIndex != 2 ||
			!strings.HasPrefix(e.Error.Message, "events[2].data.currency: ") {
			t.Fatalf("error %+v", e.Error)
		}
		e = decodeError(t, send(t, s, malformed))
		if !strings.Contains(e.Error.Message, "events[1]") || !strings.Contains(e.Error.Message, "byte") {
			t.Fatalf("syntax error %+v", e.Error)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := newSim(t, nil)
		w := send(t, s, body)
		wantStatus(t, w, 400)
		e := decodeError(t, w)
		if e.Error.EventIndex != nil || strings.Contains(w.Body.String(), "events[2]") || strings.Contains(w.Body.String(), "event_index") {
			t.Fatalf("index revealed: %s", w.Body)
		}
		if e.Error.Param != "events[?].data.currency" || !strings.Contains(e.Error.Message, "data.currency") {
			t.Fatalf("error %+v", e.Error)
		}
		w = send(t, s, malformed)
		if strings.Contains(w.Body.String(), "events[1]") || strings.Contains(w.Body.String(), "byte") {
			t.Fatalf("syntax error reveals position: %s", w.Body)
		}
	})
}

// TestErrorsDoNotEchoIdentities: a raw email in a hash list is refused
// without repeating it.
func TestErrorsDoNotEchoIdentities(t *testing.T) {
	s := newSim(t, func(o *Options) { o.NameFailingEvent = true })
	for _, edit := range []func(obj){
		with("user.emails_sha256", []any{"jane.doe@example.com"}),
		with("user.ip_address", "jane.doe@example.com"),
		with("user.postal_codes", []any{"jane.doe@example.com"}),
	} {
		w := send(t, s, batchOf(edited(orderEvent("o1"), edit)))
		wantStatus(t, w, 400)
		if strings.Contains(w.Body.String(), "jane") {
			t.Fatalf("error echoes the value: %s", w.Body)
		}
	}
}

func TestDedup(t *testing.T) {
	custom := func(id, name string) obj {
		return edited(eventFor("custom", id), with("custom_event_name", name))
	}
	cases := []struct {
		name      string
		batches   [][]obj
		pixels    []string // per batch; default testPixel
		accepted  int
		dups      int
		storedIDs []string
	}{
		{name: "same batch twice", batches: [][]obj{{orderEvent("o1"), orderEvent("o2")}, {orderEvent("o1"), orderEvent("o2")}},
			accepted: 2, dups: 2, storedIDs: []string{"o1", "o2"}},
		{name: "duplicate inside one batch", batches: [][]obj{{orderEvent("o1"), orderEvent("o1")}}, accepted: 1, dups: 1},
		{name: "same id, other type", batches: [][]obj{{orderEvent("x1")}, {eventFor("checkout_started", "x1")}}, accepted: 2},
		{name: "same id, other pixel", batches: [][]obj{{orderEvent("o1")}, {orderEvent("o1")}}, pixels: []string{testPixel, "px_other"}, accepted: 2},
		{name: "id is case-sensitive", batches: [][]obj{{orderEvent("o1")}, {orderEvent("O1")}}, accepted: 2},
		{name: "custom events keyed by custom_event_name", batches: [][]obj{{custom("c1", "quiz_done"), custom("c1", "quiz_started")}}, accepted: 2},
		{name: "custom events same name", batches: [][]obj{{custom("c1", "quiz_done")}, {custom("c1", "quiz_done")}}, accepted: 1, dups: 1},
		{name: "custom name vs standard type", batches: [][]obj{{custom("c1", "signup")}, {eventFor("registration_completed", "c1")}}, accepted: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, nil)
			for i, b := range tc.batches {
				pixel := testPixel
				if tc.pixels != nil {
					pixel = tc.pixels[i]
				}
				wantStatus(t, send(t, s, batchOf(b...), func(r *http.Request) { r.URL.RawQuery = "pid=" + pixel }), 200)
			}
			st := s.Stats()
			if st.EventsAccepted != int64(tc.accepted) || st.DuplicatesIgnored != int64(tc.dups) || len(s.Events()) != tc.accepted {
				t.Fatalf("accepted %d (stored %d), dups %d; want %d, %d", st.EventsAccepted, len(s.Events()), st.DuplicatesIgnored, tc.accepted, tc.dups)
			}
			if tc.storedIDs != nil {
				for i, e := range s.Events() {
					if e.ID != tc.storedIDs[i] || e.Seq != int64(i+1) {
						t.Fatalf("event %d: %+v", i, e)
					}
				}
			}
		})
	}

	t.Run("first wins", func(t *testing.T) {
		s := newSim(t, nil)
		wantStatus(t, send(t, s, batchOf(edited(orderEvent("o1"), with("data.amount", 100)))), 200)
		wantStatus(t, send(t, s, batchOf(edited(orderEvent("o1"), with("data.amount", 999)))), 200)
		evs := s.Events()
		var raw struct{ Data struct{ Amount int } }
		if err := json.Unmarshal(evs[0].Event, &raw); err != nil || len(evs) != 1 || raw.Data.Amount != 100 {
			t.Fatalf("stored %s", evs[0].Event)
		}
	})
	t.Run("custom name dedup key", func(t *testing.T) {
		s := newSim(t, nil)
		wantStatus(t, send(t, s, batchOf(custom("c1", "quiz_done"))), 200)
		if e := s.Events()[0]; e.DedupName() != "quiz_done" || e.CustomEventName != "quiz_done" || e.Type != "custom" {
			t.Fatalf("%+v", e)
		}
	})
}

func TestValidateOnly(t *testing.T) {
	s := newSim(t, nil)
	vo := mustJSON(obj{"validate_only": true, "events": []any{orderEvent("o1"), orderEvent("o2")}})
	w := send(t, s, vo)
	wantStatus(t, w, 200)
	if !strings.Contains(w.Body.String(), `"validate_only":true`) || !strings.Contains(w.Body.String(), `"events_received":2`) {
		t.Fatalf("body %s", w.Body)
	}
	if len(s.Events()) != 0 {
		t.Fatal("validate_only saved events")
	}
	st := s.Stats()
	if st.ValidateOnlyRequests != 1 || st.ValidateOnlyEvents != 2 || st.EventsAccepted != 0 || st.BatchesAccepted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The dedup state was not touched: the real send is accepted in full.
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"), orderEvent("o2"))), 200)
	if st := s.Stats(); st.EventsAccepted != 2 || st.DuplicatesIgnored != 0 {
		t.Fatalf("stats %+v", st)
	}
	// validate_only of already accepted events: 200, no duplicate counted.
	wantStatus(t, send(t, s, vo), 200)
	if st := s.Stats(); st.DuplicatesIgnored != 0 || len(s.Events()) != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Validation is complete under validate_only.
	bad := mustJSON(obj{"validate_only": true, "events": []any{edited(orderEvent("o3"), with("timestamp_ms", 1))}})
	wantStatus(t, send(t, s, bad), 400)
	if st := s.Stats(); st.BatchesRejected != 1 || st.ValidateOnlyRequests != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStatsAndReset(t *testing.T) {
	s := newSim(t, nil)
	send(t, s, batchOf(orderEvent("o1"), orderEvent("o2")))                                        // 200, 2 accepted
	send(t, s, batchOf(orderEvent("o1"), orderEvent("o2")))                                        // 200, 2 dups
	send(t, s, mustJSON(obj{"validate_only": true, "events": []any{orderEvent("o3")}}))            // 200, vo
	send(t, s, batchOf(edited(orderEvent("o4"), without("id"))))                                   // 400
	send(t, s, batchOf(orderEvent("o5")), func(r *http.Request) { r.Header.Del("Authorization") }) // 401
	send(t, s, batchOf(orderEvent("o6")), func(r *http.Request) { r.URL.RawQuery = "pid=zz" })     // 403
	want := Stats{
		RequestsByStatus: map[int]int64{200: 3, 400: 1, 401: 1, 403: 1},
		BatchesAccepted:  2, BatchesRejected: 1, ValidateOnlyRequests: 1,
		EventsReceived: 5, EventsAccepted: 2, DuplicatesIgnored: 2, ValidateOnlyEvents: 1,
		StoredEvents: 2,
	}
	got := s.Stats()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}

	// GET /_sim/stats serves the same numbers.
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/_sim/stats", nil))
	var fromHTTP Stats
	if err := json.Unmarshal(w.Body.Bytes(), &fromHTTP); err != nil || fmt.Sprint(fromHTTP) != fmt.Sprint(want) {
		t.Fatalf("/_sim/stats %s (%v)", w.Body, err)
	}
	if !strings.Contains(w.Body.String(), `"200":3`) {
		t.Fatalf("/_sim/stats keys: %s", w.Body)
	}

	// POST /_sim/reset clears events, dedup and stats.
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("POST", "/_sim/reset", nil))
	wantStatus(t, w, 204)
	if st := s.Stats(); fmt.Sprint(st) != fmt.Sprint(Stats{RequestsByStatus: map[int]int64{}}) || len(s.Events()) != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"))), 200)
	if st := s.Stats(); st.EventsAccepted != 1 || st.DuplicatesIgnored != 0 {
		t.Fatalf("dedup survived reset: %+v", st)
	}
}

func TestSimEventsEndpoint(t *testing.T) {
	s := newSim(t, nil)
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"), eventFor("custom", "c1"))), 200)
	wantStatus(t, send(t, s, batchOf(orderEvent("o2")), func(r *http.Request) { r.URL.RawQuery = "pid=px_other" }), 200)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/_sim/events", nil))
	wantStatus(t, w, 200)
	if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	var got []AcceptedEvent
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		var e AcceptedEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	want := []struct{ pixel, id, typ, cen string }{{testPixel, "o1", "order_created", ""}, {testPixel, "c1", "custom", "quiz_completed"}, {"px_other", "o2", "order_created", ""}}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), w.Body)
	}
	for i, w := range want {
		e := got[i]
		if e.Pixel != w.pixel || e.ID != w.id || e.Type != w.typ || e.CustomEventName != w.cen || e.Seq != int64(i+1) || !e.ReceivedAt.Equal(testNow) {
			t.Errorf("line %d: %+v", i, e)
		}
		var ev map[string]any
		if err := json.Unmarshal(e.Event, &ev); err != nil || ev["id"] != w.id {
			t.Errorf("line %d event %s", i, e.Event)
		}
	}
}

func TestNullSink(t *testing.T) {
	s := newSim(t, func(o *Options) { o.NullSink = true })
	junk := []byte(`{"events":[{},{"id":1},{"anything":[1,2,{"x":null}]}],"whatever":true}`)
	wantStatus(t, send(t, s, junk), 200)
	wantStatus(t, send(t, s, junk), 200) // no dedup
	wantStatus(t, send(t, s, []byte(`{"validate_only":true,"events":[{}]}`)), 200)
	for _, bad := range []string{``, `[]`, `{"events":[}`, `{"events":{}}`, `{"other":1}`, `{"events":[]} x`} {
		wantStatus(t, send(t, s, []byte(bad)), 400)
	}
	wantStatus(t, send(t, s, junk, func(r *http.Request) { r.Header.Del("Authorization") }), 401)
	st := s.Stats()
	if st.EventsAccepted != 6 || st.EventsReceived != 7 || st.ValidateOnlyEvents != 1 || st.DuplicatesIgnored != 0 || st.BatchesRejected != 6 {
		t.Fatalf("stats %+v", st)
	}
	if len(s.Events()) != 0 {
		t.Fatal("NullSink stored events")
	}
}

func TestMaxStoredEvents(t *testing.T) {
	s := newSim(t, func(o *Options) { o.MaxStoredEvents = 3 })
	for i := 1; i <= 5; i++ {
		wantStatus(t, send(t, s, batchOf(orderEvent(fmt.Sprint("o", i)))), 200)
	}
	evs := s.Events()
	if len(evs) != 3 || evs[0].ID != "o3" || evs[2].ID != "o5" || evs[2].Seq != 5 {
		t.Fatalf("events %+v", evs)
	}
	// Dedup still remembers dropped events.
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"))), 200)
	if st := s.Stats(); st.DuplicatesIgnored != 1 || st.StoredEvents != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestChunkedBody(t *testing.T) {
	s := newSim(t, nil)
	body := batchOf(orderEvent("o1"))
	wantStatus(t, send(t, s, body, func(r *http.Request) {
		r.ContentLength = -1
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:10]), bytes.NewReader(body[10:])))
	}), 200)
}

func TestEventsCopyIsIndependent(t *testing.T) {
	s := newSim(t, nil)
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"))), 200)
	evs := s.Events()
	for i := range evs[0].Event {
		evs[0].Event[i] = 'x'
	}
	if s.Events()[0].Event[0] != '{' {
		t.Fatal("Events returned the stored bytes")
	}
}

// TestConcurrentRequests: overlapping ids from many goroutines end up
// stored exactly once each (run with -race).
func TestConcurrentRequests(t *testing.T) {
	s := newSim(t, nil)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	const workers, batches, perBatch, distinct = 6, 10, 20, 100
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				evs := make([]obj, perBatch)
				for i := range evs {
					evs[i] = orderEvent(fmt.Sprint("o", (w*7+b*perBatch+i)%distinct))
				}
				resp, err := tryPost(srv.URL, batchOf(evs...))
				if err != nil {
					t.Error(err)
					return
				}
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
				_ = s.Stats()
				_ = s.Events()
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.EventsAccepted != distinct || st.EventsAccepted+st.DuplicatesIgnored != workers*batches*perBatch || len(s.Events()) != distinct {
		t.Fatalf("stats %+v", st)
	}
	seen := map[string]bool{}
	for _, e := range s.Events() {
		if seen[e.ID] {
			t.Fatalf("duplicate %s stored", e.ID)
		}
		seen[e.ID] = true
	}
}
