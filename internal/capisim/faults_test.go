package capisim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// statuses sends n valid batches (distinct ids) and returns the statuses.
func statuses(t *testing.T, s *Server, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = send(t, s, batchOf(orderEvent("o"+itoa(i)))).Code
	}
	return out
}

func TestFaultRates(t *testing.T) {
	cases := []struct {
		name   string
		faults func(*Options)
		want   int // status of every request
		header string
	}{
		{"no faults", func(o *Options) {}, 200, ""},
		{"fail rate 1 → 503", func(o *Options) { o.FailRate = 1 }, 503, ""},
		{"fail rate 1, status 502", func(o *Options) { o.FailRate, o.Status5xx = 1, 502 }, 502, ""},
		{"fail rate 0", func(o *Options) { o.FailRate = 0; o.Status5xx = 500 }, 200, ""},
		{"throttle rate 1 → 429", func(o *Options) { o.ThrottleRate = 1 }, 429, "1"},
		{"throttle with 1.5s retry after → 2", func(o *Options) { o.ThrottleRate, o.RetryAfter = 1, 1500*time.Millisecond }, 429, "2"},
		{"throttle with 30s retry after", func(o *Options) { o.ThrottleRate, o.RetryAfter = 1, 30*time.Second }, 429, "30"},
		{"throttle rate 0", func(o *Options) { o.ThrottleRate, o.RetryAfter = 0, time.Minute }, 200, ""},
		{"auth fail rate 1 → 401 with the right key", func(o *Options) { o.AuthFailRate = 1 }, 401, ""},
		{"auth fail rate 0", func(o *Options) { o.AuthFailRate = 0 }, 200, ""},
		{"auth fail wins over throttle and fail", func(o *Options) { o.AuthFailRate, o.ThrottleRate, o.FailRate = 1, 1, 1 }, 401, ""},
		{"throttle wins over fail", func(o *Options) { o.ThrottleRate, o.FailRate = 1, 1 }, 429, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, func(o *Options) { o.Seed = 42; tc.faults(o) })
			for i := 0; i < 20; i++ {
				w := send(t, s, batchOf(orderEvent("o"+itoa(i))))
				wantStatus(t, w, tc.want)
				if got := w.Header().Get("Retry-After"); got != tc.header {
					t.Fatalf("Retry-After %q, want %q", got, tc.header)
				}
				if tc.want != 200 {
					decodeError(t, w)
				}
			}
			st := s.Stats()
			if st.RequestsByStatus[tc.want] != 20 {
				t.Fatalf("stats %+v", st)
			}
			if tc.want != 200 && (len(s.Events()) != 0 || st.BatchesRejected != 0) {
				t.Fatalf("a faulted request was processed: %+v", st)
			}
			injected := st.FaultsInjected.Fail + st.FaultsInjected.Throttle + st.FaultsInjected.AuthFail
			if (tc.want != 200) != (injected == 20) {
				t.Fatalf("faults injected %+v", st.FaultsInjected)
			}
		})
	}
}

// TestFaultsAreSeeded: a fractional rate gives the same sequence for the
// same seed, both outcomes occur, and Reset replays the sequence.
func TestFaultsAreSeeded(t *testing.T) {
	mk := func(seed int64) *Server {
		return newSim(t, func(o *Options) { o.Seed, o.FailRate, o.ThrottleRate = seed, 0.3, 0.2 })
	}
	a, b := mk(7), mk(7)
	sa, sb := statuses(t, a, 60), statuses(t, b, 60)
	if !equalInts(sa, sb) {
		t.Fatalf("same seed, different faults:\n%v\n%v", sa, sb)
	}
	count := map[int]int{}
	for _, c := range sa {
		count[c]++
	}
	if count[200] == 0 || count[503] == 0 || count[429] == 0 || len(count) != 3 {
		t.Fatalf("outcomes %v", count)
	}
	a.Reset()
	if again := statuses(t, a, 60); !equalInts(again, sa) {
		t.Fatalf("Reset did not reseed:\n%v\n%v", again, sa)
	}
	if other := statuses(t, mk(8), 60); equalInts(other, sa) {
		t.Fatalf("different seeds gave the same 60 outcomes")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSetFaults turns an outage on and off at runtime.
func TestSetFaults(t *testing.T) {
	s := newSim(t, nil)
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"))), 200)
	if err := s.SetFaults(Faults{FailRate: 1, Status5xx: 500}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, send(t, s, batchOf(orderEvent("o2"))), 500)
	if err := s.SetFaults(Faults{FailRate: 2}); err == nil {
		t.Fatal("SetFaults accepted rate 2")
	}
	if f := s.Faults(); f.FailRate != 1 || f.Status5xx != 500 {
		t.Fatalf("failed SetFaults changed faults: %+v", f)
	}
	if err := s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, send(t, s, batchOf(orderEvent("o2"))), 200)
	if len(s.Events()) != 2 {
		t.Fatalf("events %d", len(s.Events()))
	}
}

func TestFaultsEndpoint(t *testing.T) {
	s := newSim(t, nil)
	put := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("PUT", "/_sim/faults", strings.NewReader(body)))
		return w
	}
	w := put(`{"throttle_rate":1,"retry_after":"2500ms","latency":"1ms"}`)
	wantStatus(t, w, 200)
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["throttle_rate"] != 1.0 || got["retry_after"] != "2.5s" || got["latency"] != "1ms" || got["status_5xx"] != 503.0 {
		t.Fatalf("faults %s", w.Body)
	}
	r := send(t, s, batchOf(orderEvent("o1")))
	wantStatus(t, r, 429)
	if r.Header().Get("Retry-After") != "3" {
		t.Fatalf("Retry-After %q", r.Header().Get("Retry-After"))
	}
	// /_sim endpoints are not subject to faults.
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/_sim/faults", nil))
	wantStatus(t, w, 200)
	for _, bad := range []string{`{"fail_rate":3}`, `{"latency":"soon"}`, `{"nope":1}`, `not json`} {
		wantStatus(t, put(bad), 400)
	}
	wantStatus(t, put(`{}`), 200)
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"))), 200)
}

func TestLatency(t *testing.T) {
	s := newSim(t, func(o *Options) { o.Latency = 60 * time.Millisecond })
	start := time.Now()
	wantStatus(t, send(t, s, batchOf(orderEvent("o1"))), 200)
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("answered after %v", d)
	}

	// The wait ends when the client gives up.
	s = newSim(t, func(o *Options) { o.Latency = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(httptest.NewRecorder(), req(batchOf(orderEvent("o1"))).WithContext(ctx))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("latency wait not released by the client's cancel")
	}
	if len(s.Events()) != 0 {
		t.Fatal("abandoned request was processed")
	}

	// Over real HTTP the handler returns once the client hangs up.
	h, returned := serveCounting(s)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { s.Close(); srv.Close() })
	client := &http.Client{Timeout: 100 * time.Millisecond}
	r := clientReq(srv.URL, batchOf(orderEvent("o1")))
	if _, err := client.Do(r); err == nil {
		t.Fatal("answered before the latency")
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("latency wait not released when the client hung up")
	}
}

// serveCounting wraps s so tests know when handler calls have returned.
func serveCounting(s http.Handler) (http.Handler, <-chan struct{}) {
	returned := make(chan struct{}, 100)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		returned <- struct{}{}
	}), returned
}

func TestHangReleasedWhenClientGivesUp(t *testing.T) {
	s := newSim(t, func(o *Options) { o.HangRate = 1 })
	h, returned := serveCounting(s)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { s.Close(); srv.Close() }) // a hung handler would block srv.Close

	client := &http.Client{Timeout: 200 * time.Millisecond}
	r := clientReq(srv.URL, batchOf(orderEvent("o1")))
	start := time.Now()
	_, err := client.Do(r)
	if err == nil {
		t.Fatal("hung request was answered")
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v, want a client timeout", err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("gave up too early")
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still hanging after the client gave up")
	}
	st := s.Stats()
	if st.Hung != 1 || st.FaultsInjected.Hang != 1 || len(st.RequestsByStatus) != 0 || len(s.Events()) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHangReleasedByClose(t *testing.T) {
	s := newSim(t, func(o *Options) { o.HangRate = 1 })
	srv := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); srv.Close() })
	got := make(chan int, 1)
	go func() {
		resp, err := tryPost(srv.URL, batchOf(orderEvent("o1")))
		if err != nil {
			t.Error(err)
			got <- 0 // do not leave the test waiting for the status
			return
		}
		got <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Hung == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never hung")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	select {
	case code := <-got:
		if code != 503 {
			t.Fatalf("status %d after Close", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
	// After Close, hanging requests are answered at once.
	start := time.Now()
	if code := post(t, srv.URL, batchOf(orderEvent("o2"))).StatusCode; code != 503 || time.Since(start) > 2*time.Second {
		t.Fatalf("status %d after %v", code, time.Since(start))
	}
}

func TestHangRateZeroNeverHangs(t *testing.T) {
	s := newSim(t, func(o *Options) { o.HangRate = 0; o.Latency = time.Millisecond })
	for _, c := range statuses(t, s, 10) {
		if c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	if s.Stats().Hung != 0 {
		t.Fatal("hung")
	}
}
