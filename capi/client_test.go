package capi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/secret"
)

const testKey = "sk-test-0123456789"

// fakeAPI is a scripted stand-in for the API, for behaviours that need exact
// control of responses. The simulator (internal/capisim) is used for the
// contract tests in sim_test.go.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	reqs    []fakeReq
	respond func(n int, r fakeReq) (status int, header http.Header, body string)
}

type fakeReq struct {
	Pixel        string
	Auth         string
	ContentType  string
	IDs          []string
	ValidateOnly bool
	Source       string
	Bytes        int
}

func newFakeAPI(t *testing.T, respond func(n int, r fakeReq) (int, http.Header, string)) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, respond: respond}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
		ValidateOnly bool   `json:"validate_only"`
		Source       string `json:"integration_source"`
	}
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		f.t.Errorf("fake API: body is not JSON: %v", err)
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		f.t.Errorf("fake API: %v", err)
	}
	req := fakeReq{Pixel: r.URL.Query().Get("pid"), Auth: r.Header.Get("Authorization"),
		ContentType: r.Header.Get("Content-Type"), ValidateOnly: body.ValidateOnly, Source: body.Source, Bytes: len(raw)}
	for _, e := range body.Events {
		req.IDs = append(req.IDs, e.ID)
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	status, hdr, text := f.respond(n, req)
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

func (f *fakeAPI) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

func newTestClient(t *testing.T, base string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: base, APIKey: secret.New(testKey), IntegrationSource: "capirelay-test",
		Retry: RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encodedEvents returns n encoded order events with ids "e0".."e{n-1}".
func encodedEvents(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		e := orderEvent()
		e.ID = fmt.Sprintf("e%d", i)
		out[i] = AppendEvent(nil, &e)
	}
	return out
}

func ok(int, fakeReq) (int, http.Header, string) { return 200, nil, `{}` }

func TestSendSuccess(t *testing.T) {
	f, srv := newFakeAPI(t, ok)
	c := newTestClient(t, srv.URL, nil)
	res, err := c.Send(context.Background(), Batch{Pixel: "px 1", Events: encodedEvents(3)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(Accepted) != 3 || res.Requests != 1 || res.Retries != 0 {
		t.Fatalf("result %+v", res)
	}
	r := f.requests()[0]
	if r.Pixel != "px 1" || r.Auth != "Bearer "+testKey || r.ContentType != "application/json" ||
		r.Source != "capirelay-test" || r.ValidateOnly || strings.Join(r.IDs, ",") != "e0,e1,e2" {
		t.Fatalf("request %+v", r)
	}
}

func TestSendSplitsByCountAndBytes(t *testing.T) {
	f, srv := newFakeAPI(t, ok)
	c := newTestClient(t, srv.URL, nil)
	res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(2500)})
	if err != nil || res.Count(Accepted) != 2500 {
		t.Fatalf("%v %+v", err, res.Requests)
	}
	var sizes []int
	for _, r := range f.requests() {
		sizes = append(sizes, len(r.IDs))
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("request sizes %v", sizes)
	}

	f2, srv2 := newFakeAPI(t, ok)
	const maxBytes = 8 << 10
	c2 := newTestClient(t, srv2.URL, func(c *Config) { c.MaxRequestBytes = maxBytes })
	evs := encodedEvents(100)
	big := make([]byte, 0, maxBytes+10)
	big = append(big, `{"id":"big","pad":"`...)
	big = append(big, strings.Repeat("x", maxBytes)...)
	big = append(big, `"}`...)
	evs = append(evs, big)
	res, err = c2.Send(context.Background(), Batch{Pixel: "p", Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(Accepted) != 100 || res.Outcomes[100] != Rejected || len(res.Rejections) != 1 ||
		!strings.Contains(res.Rejections[0].Body, "request limit") {
		t.Fatalf("oversized event must be rejected locally: %+v", res.Rejections)
	}
	seen := 0
	for _, r := range f2.requests() {
		if r.Bytes > maxBytes {
			t.Fatalf("request of %d bytes exceeds the cap %d", r.Bytes, maxBytes)
		}
		seen += len(r.IDs)
	}
	if seen != 100 || len(f2.requests()) < 2 {
		t.Fatalf("want 100 events over several requests, got %d in %d", seen, len(f2.requests()))
	}
}

func TestSendRetriesTransient(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504, 408, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f, srv := newFakeAPI(t, func(n int, _ fakeReq) (int, http.Header, string) {
				if n < 2 {
					return status, nil, "busy"
				}
				return 200, nil, ""
			})
			c := newTestClient(t, srv.URL, nil)
			res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(5)})
			if err != nil || res.Count(Accepted) != 5 || res.Requests != 3 || res.Retries != 2 || len(f.requests()) != 3 {
				t.Fatalf("err=%v res=%+v", err, res)
			}
		})
	}
}

func TestSendHonoursRetryAfter(t *testing.T) {
	var first, second time.Time
	_, srv := newFakeAPI(t, func(n int, _ fakeReq) (int, http.Header, string) {
		if n == 0 {
			first = time.Now()
			return 429, http.Header{"Retry-After": {"1"}}, "slow down"
		}
		second = time.Now()
		return 200, nil, ""
	})
	c := newTestClient(t, srv.URL, nil) // backoff alone would wait ~1ms
	res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(1)})
	if err != nil || res.Count(Accepted) != 1 {
		t.Fatal(err)
	}
	waited := second.Sub(first)
	t.Logf("Retry-After: 1 → waited %v", waited)
	if waited < time.Second || waited > 3*time.Second {
		t.Fatalf("waited %v, want about 1s", waited)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"-5":                            0,
		"soon":                          0,
		"Fri, 02 Jan 2026 03:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
		"99999999":                      24 * time.Hour,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSendConfigErrorIsNotRetried(t *testing.T) {
	for _, status := range []int{401, 403, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f, srv := newFakeAPI(t, func(int, fakeReq) (int, http.Header, string) {
				return status, nil, `{"error":"invalid key ` + testKey + `"}`
			})
			c := newTestClient(t, srv.URL, nil)
			res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(10)})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Class != ClassConfig || apiErr.Status != status {
				t.Fatalf("want config APIError, got %v", err)
			}
			if n := len(f.requests()); n != 1 {
				t.Fatalf("config fault must not be retried: %d requests", n)
			}
			if res.Count(Unsent) != 10 {
				t.Fatalf("every event must stay unsent: %+v", res.Outcomes)
			}
			if strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "[redacted]") {
				t.Fatalf("error must scrub the echoed key: %v", err)
			}
		})
	}
}

func TestSendMaxAttemptsAndContext(t *testing.T) {
	_, srv := newFakeAPI(t, func(int, fakeReq) (int, http.Header, string) { return 503, nil, "down" })
	c := newTestClient(t, srv.URL, func(c *Config) { c.Retry.MaxAttempts = 3 })
	res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(4)})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Class != ClassTransient || apiErr.Attempts != 3 || res.Requests != 3 || res.Count(Unsent) != 4 {
		t.Fatalf("err=%v res=%+v", err, res)
	}

	// Unlimited attempts: the context ends it, events stay unsent.
	c = newTestClient(t, srv.URL, func(c *Config) { c.Retry.InitialBackoff, c.Retry.MaxBackoff = 20*time.Millisecond, 40*time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err = c.Send(ctx, Batch{Pixel: "p", Events: encodedEvents(4)})
	if !errors.Is(err, context.DeadlineExceeded) || res.Count(Unsent) != 4 || res.Requests < 2 {
		t.Fatalf("err=%v res=%+v", err, res)
	}
}

func TestSendHangingRequestTimesOut(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	c := newTestClient(t, srv.URL, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond })
	res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(2)})
	if err != nil || res.Count(Accepted) != 2 || res.Requests != 2 {
		t.Fatalf("err=%v res=%+v", err, res)
	}
}

// rejectIfContains answers 400 to any real or validate-only request holding one
// of the bad ids, as the API does (whole-batch failure, no index named).
func rejectIfContains(bad ...string) func(int, fakeReq) (int, http.Header, string) {
	set := map[string]bool{}
	for _, b := range bad {
		set[b] = true
	}
	return func(_ int, r fakeReq) (int, http.Header, string) {
		for _, id := range r.IDs {
			if set[id] {
				return 400, nil, `{"error":{"message":"invalid event"}}`
			}
		}
		return 200, nil, ""
	}
}

func TestSendIsolatesRejectedEvents(t *testing.T) {
	for _, mode := range []IsolationMode{IsolateSplit, IsolateProbe} {
		for _, bad := range [][]string{{"e537"}, {"e0", "e999"}, {"e10", "e11", "e500", "e501", "e777"}} {
			t.Run(fmt.Sprintf("mode%d/%d-bad", mode, len(bad)), func(t *testing.T) {
				f, srv := newFakeAPI(t, rejectIfContains(bad...))
				c := newTestClient(t, srv.URL, func(c *Config) { c.Isolation = mode })
				res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(1000)})
				if err != nil {
					t.Fatal(err)
				}
				var rejected []string
				for _, r := range res.Rejections {
					rejected = append(rejected, fmt.Sprintf("e%d", r.Index))
					if r.Status != 400 || !strings.Contains(r.Body, "invalid event") {
						t.Errorf("rejection lacks status/body: %+v", r)
					}
				}
				if strings.Join(rejected, ",") != strings.Join(bad, ",") {
					t.Fatalf("rejected %v, want %v", rejected, bad)
				}
				if got := res.Count(Accepted); got != 1000-len(bad) {
					t.Fatalf("accepted %d", got)
				}
				// Every good event accepted by exactly one real request.
				acceptedBy := map[string]int{}
				realRequests := 0
				for _, r := range f.requests() {
					if r.ValidateOnly {
						continue
					}
					realRequests++
					if code, _, _ := rejectIfContains(bad...)(0, r); code == 200 {
						for _, id := range r.IDs {
							acceptedBy[id]++
						}
					}
				}
				for id, n := range acceptedBy {
					if n != 1 {
						t.Fatalf("%s accepted %d times", id, n)
					}
				}
				// k bad among n: about 2·k·log2(n) requests, not n.
				limit := 2*len(bad)*10 + 3
				t.Logf("mode %d: %d bad of 1000 → %d requests (%d real), limit %d", mode, len(bad), res.Requests, realRequests, limit)
				if res.Requests > limit {
					t.Fatalf("%d requests for %d bad events, want ≤ %d", res.Requests, len(bad), limit)
				}
				if mode == IsolateProbe && realRequests != 2 {
					t.Fatalf("probe mode: want the refused request and one real resend, got %d real requests", realRequests)
				}
			})
		}
	}
}

func TestSendSplitsOn413(t *testing.T) {
	f, srv := newFakeAPI(t, func(_ int, r fakeReq) (int, http.Header, string) {
		if len(r.IDs) > 100 {
			return 413, nil, "too large"
		}
		return 200, nil, ""
	})
	c := newTestClient(t, srv.URL, nil)
	res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(400)})
	if err != nil || res.Count(Accepted) != 400 {
		t.Fatalf("err=%v accepted=%d", err, res.Count(Accepted))
	}
	if len(f.requests()) != 1+2+4 {
		t.Fatalf("requests %d", len(f.requests()))
	}
}

func TestSendConcurrent(t *testing.T) {
	var total atomic.Int64
	_, srv := newFakeAPI(t, func(_ int, r fakeReq) (int, http.Header, string) {
		total.Add(int64(len(r.IDs)))
		return 200, nil, ""
	})
	c := newTestClient(t, srv.URL, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(250)})
			if err != nil || res.Count(Accepted) != 250 {
				t.Errorf("err=%v", err)
			}
		})
	}
	wg.Wait()
	if total.Load() != 2000 {
		t.Fatalf("server saw %d events", total.Load())
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{APIKey: secret.New(testKey)}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{BaseURL: "ftp://x?y=1", IntegrationSource: "-bad", MaxEventsPerRequest: 1001, MaxRequestBytes: 10,
		Retry: RetryPolicy{InitialBackoff: time.Minute, MaxBackoff: time.Second}}
	err := bad.Validate()
	for _, want := range []string{"base URL", "API key is required", "integration_source", "max events per request", "max request bytes", "initial backoff"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	withKey := Config{APIKey: secret.New(testKey), BaseURL: "http://localhost"}
	if s := fmt.Sprintf("%v %+v %#v", withKey, withKey, withKey); strings.Contains(s, testKey) {
		t.Fatalf("config printing leaks the key: %s", s)
	}
}

func TestConfigRejectsNegativeTimeoutAndErrorBody(t *testing.T) {
	// Accepted, a negative timeout would time every attempt out and a
	// negative MaxErrorBody would panic on the first error response.
	cfg := Config{APIKey: secret.New(testKey), RequestTimeout: -time.Second, MaxErrorBody: -1}
	err := cfg.Validate()
	for _, want := range []string{"request timeout must not be negative", "max error body must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestOnRequestHook(t *testing.T) {
	_, srv := newFakeAPI(t, func(n int, _ fakeReq) (int, http.Header, string) {
		if n == 0 {
			return 503, nil, ""
		}
		return 200, nil, ""
	})
	var infos []RequestInfo
	c := newTestClient(t, srv.URL, func(c *Config) { c.OnRequest = func(i RequestInfo) { infos = append(infos, i) } })
	if _, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(7)}); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Status != 503 || infos[0].Class != ClassTransient || infos[1].Attempt != 2 ||
		infos[1].Class != ClassAccepted || infos[1].Events != 7 || infos[1].Duration <= 0 {
		t.Fatalf("hook saw %+v", infos)
	}
}

type countingLimiter struct{ n int }

func (l *countingLimiter) Wait(ctx context.Context) error { l.n++; return ctx.Err() }

func TestLimiterWaitedBeforeEveryAttempt(t *testing.T) {
	_, srv := newFakeAPI(t, rejectIfContains("e3"))
	lim := &countingLimiter{}
	c := newTestClient(t, srv.URL, func(c *Config) { c.Limiter = lim })
	res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(8)})
	if err != nil {
		t.Fatal(err)
	}
	if lim.n != res.Requests || lim.n < 4 {
		t.Fatalf("limiter waited %d times for %d requests", lim.n, res.Requests)
	}
}

// An API key the server echoes must not survive in part when the echo
// straddles the MaxErrorBody cut, nor when earlier echoes shrink under
// scrubbing and pull a key cut off by the read limit into the kept text.
func TestErrorBodyNeverKeepsPartOfTheKey(t *testing.T) {
	const maxBody = 256
	var body atomic.Pointer[string]
	_, srv := newFakeAPI(t, func(_ int, r fakeReq) (int, http.Header, string) {
		if r.Pixel == "config" {
			return 401, nil, *body.Load()
		}
		return 400, nil, *body.Load()
	})
	c := newTestClient(t, srv.URL, func(c *Config) { c.MaxErrorBody = maxBody })
	leaked := func(s string) string {
		for n := len(testKey); n >= 8; n-- {
			if strings.Contains(s, testKey[:n]) {
				return testKey[:n]
			}
		}
		return ""
	}
	for _, echoes := range []int{0, 1, 10} {
		for at := maxBody - len(testKey); at <= maxBody+len(testKey)+1; at++ {
			// echoes keys first, then one more starting at byte at.
			b := strings.Repeat(testKey, echoes)
			b += strings.Repeat("x", at-len(b)) + testKey + strings.Repeat("y", 100)
			body.Store(&b)
			res, err := c.Send(context.Background(), Batch{Pixel: "p", Events: encodedEvents(1)})
			if err != nil || len(res.Rejections) != 1 {
				t.Fatalf("echoes=%d at=%d: err=%v res=%+v", echoes, at, err, res)
			}
			if got := res.Rejections[0].Body; leaked(got) != "" || len(got) > maxBody+len("…(truncated)") {
				t.Fatalf("echoes=%d at=%d: rejection body keeps %q of the key: %q", echoes, at, leaked(got), got)
			}
			_, err = c.Send(context.Background(), Batch{Pixel: "config", Events: encodedEvents(1)})
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Class != ClassConfig {
				t.Fatalf("want config APIError, got %v", err)
			}
			if p := leaked(apiErr.Body); p != "" {
				t.Fatalf("echoes=%d at=%d: APIError body keeps %q of the key: %q", echoes, at, p, apiErr.Body)
			}
		}
	}
}

// lateReader is a RoundTripper that answers at once and reads request bodies
// only later, as net/http's transport may (it can still be writing a body when
// an early response arrives, and closes bodies in a separate goroutine).
type lateReader struct {
	mu     sync.Mutex
	bodies []io.ReadCloser
}

func (l *lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.bodies = append(l.bodies, r.Body)
	l.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

func TestRequestBodyOutlivesSend(t *testing.T) {
	lr := &lateReader{}
	c := newTestClient(t, "http://capi.invalid", func(c *Config) { c.HTTPClient = &http.Client{Transport: lr} })
	const sends = 20
	for n := range sends {
		evs := encodedEvents(3)
		for i := range evs {
			evs[i] = bytes.Replace(evs[i], []byte(`"id":"e`), fmt.Appendf(nil, `"id":"%02d-`, n), 1)
		}
		if _, err := c.Send(context.Background(), Batch{Pixel: "p", Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	if len(lr.bodies) != sends {
		t.Fatalf("%d requests, want %d", len(lr.bodies), sends)
	}
	for n, rc := range lr.bodies {
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		_ = rc.Close()
		if want := fmt.Sprintf(`"id":"%02d-0"`, n); !bytes.Contains(b, []byte(want)) {
			t.Fatalf("request %d: body read after Send returned lacks %s (buffer reused too early): %.80s", n, want, b)
		}
	}
}
