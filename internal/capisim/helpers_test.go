package capisim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNow is the injected clock of most tests: 2026-03-19T04:00:00Z, the
// timestamp of the contract's example.
var testNow = time.UnixMilli(1773892800000).UTC()

const (
	testKey   = "sk-capisim-test-0123456789"
	testPixel = "px_test"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// newSim returns a server on testNow with the test key and pixels px_test and
// px_other; mod adjusts the options first.
func newSim(t testing.TB, mod func(*Options)) *Server {
	t.Helper()
	o := Options{
		APIKey: testKey,
		Pixels: []string{testPixel, "px_other"},
		Now:    func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// obj is a JSON object under construction.
type obj = map[string]any

// orderEvent is a typical valid order: two items, hashed identities, web.
func orderEvent(id string) obj {
	return obj{
		"id":            id,
		"type":          "order_created",
		"timestamp_ms":  testNow.Add(-time.Hour).UnixMilli(),
		"oppref":        "oppref_abc",
		"source_url":    "https://shop.example.com/checkout/confirmation",
		"action_source": "web",
		"user": obj{
			"emails_sha256":        []any{sha("user@example.com")},
			"phone_numbers_sha256": []any{sha("14155552671")},
			"countries":            []any{"US"},
			"ip_address":           "203.0.113.7",
			"user_agent":           "Mozilla/5.0 (X11; Linux x86_64)",
		},
		"data": obj{
			"type": "contents", "amount": 2599, "currency": "USD",
			"contents": []any{
				obj{"id": "sku_123", "name": "Starter bundle", "content_type": "product", "quantity": 1, "amount": 1999},
				obj{"id": "sku_456", "name": "Cable", "content_type": "product", "quantity": 2, "amount": 300},
			},
		},
	}
}

// eventFor returns a minimal valid event of type typ.
func eventFor(typ, id string) obj {
	e := obj{
		"id":            id,
		"type":          typ,
		"timestamp_ms":  testNow.Add(-time.Minute).UnixMilli(),
		"action_source": "offline",
	}
	for _, et := range eventTypes {
		if et.name == typ {
			e["data"] = obj{"type": et.shape}
			if et.app {
				e["action_source"] = "mobile_app"
			}
		}
	}
	if typ == "custom" {
		e["custom_event_name"] = "quiz_completed"
	}
	return e
}

// del marks a path to delete in set.
type delMarker struct{}

var del = delMarker{}

// set changes ev at a dotted path ("data.contents.0.amount"); value del
// removes the key.
func set(ev obj, path string, value any) {
	parts := strings.Split(path, ".")
	var cur any = ev
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case obj:
			if last {
				if value == del {
					delete(c, p)
				} else {
					c[p] = value
				}
				return
			}
			next, ok := c[p]
			if !ok {
				next = obj{}
				c[p] = next
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil {
				panic(path)
			}
			if last {
				c[n] = value
				return
			}
			cur = c[n]
		default:
			panic(fmt.Sprintf("set %s: %T", path, cur))
		}
	}
}

func batchOf(events ...obj) []byte {
	evs := make([]any, len(events))
	for i, e := range events {
		evs[i] = e
	}
	return mustJSON(obj{"events": evs})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// req builds a valid request for body; edit adjusts it.
func req(body []byte, edit ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/events?pid="+testPixel, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+testKey)
	r.Header.Set("Content-Type", "application/json")
	for _, e := range edit {
		e(r)
	}
	return r
}

// clientReq builds a valid request for body to a real server at base; req
// is its in-process counterpart.
func clientReq(base string, body []byte) *http.Request {
	r, err := http.NewRequest(http.MethodPost, base+"/v1/events?pid="+testPixel, bytes.NewReader(body))
	if err != nil {
		panic(err) // only for a bad base URL, as httptest.NewRequest
	}
	r.Header.Set("Authorization", "Bearer "+testKey)
	r.Header.Set("Content-Type", "application/json")
	return r
}

// send serves one request in process.
func send(t testing.TB, s http.Handler, body []byte, edit ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req(body, edit...))
	return w
}

// apiError is the decoded error body.
type apiError struct {
	Error struct {
		Type       string `json:"type"`
		Message    string `json:"message"`
		Param      string `json:"param"`
		EventIndex *int   `json:"event_index"`
	} `json:"error"`
}

func decodeError(t testing.TB, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("error body without type or message: %s", w.Body.String())
	}
	return e
}

func wantStatus(t testing.TB, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body: %s", w.Code, status, w.Body.String())
	}
}
