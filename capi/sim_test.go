package capi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/secret"
)

const simPixel = "px_sim"

// newSim starts the simulator (an independent reading of the API contract)
// with the test clock.
func newSim(t testing.TB, opts capisim.Options) (*capisim.Server, string) {
	t.Helper()
	opts.APIKey = testKey
	opts.Pixels = []string{simPixel}
	if opts.Now == nil {
		opts.Now = fixedClock
	}
	sim, err := capisim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	return sim, srv.URL
}

func TestSimAcceptsClientEvents(t *testing.T) {
	sim, url := newSim(t, capisim.Options{})
	c := newTestClient(t, url, nil)
	res, err := c.Send(context.Background(), Batch{Pixel: simPixel, Events: encodedEvents(1500)})
	if err != nil || res.Count(Accepted) != 1500 || res.Requests != 2 {
		t.Fatalf("err=%v res.Requests=%d accepted=%d", err, res.Requests, res.Count(Accepted))
	}
	if st := sim.Stats(); st.EventsAccepted != 1500 || st.BatchesAccepted != 2 {
		t.Fatalf("sim stats %+v", st)
	}
}

func TestSimDuplicatesIgnored(t *testing.T) {
	sim, url := newSim(t, capisim.Options{})
	c := newTestClient(t, url, nil)
	evs := encodedEvents(10)
	for range 3 {
		if res, err := c.Send(context.Background(), Batch{Pixel: simPixel, Events: evs}); err != nil || res.Count(Accepted) != 10 {
			t.Fatal(err)
		}
	}
	if st := sim.Stats(); st.EventsAccepted != 10 || st.DuplicatesIgnored != 20 {
		t.Fatalf("sim stats %+v", st)
	}
	if n := len(sim.Events()); n != 10 {
		t.Fatalf("stored %d", n)
	}
}

// flipAfterFirst turns the simulator's faults off after the first attempt.
func flipAfterFirst(t *testing.T, sim *capisim.Server) func(RequestInfo) {
	return func(info RequestInfo) {
		if info.Attempt == 1 {
			if err := sim.SetFaults(capisim.Faults{}); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestSim5xxThenSuccess(t *testing.T) {
	sim, url := newSim(t, capisim.Options{FailRate: 1, Status5xx: 502})
	c := newTestClient(t, url, func(c *Config) { c.OnRequest = flipAfterFirst(t, sim) })
	res, err := c.Send(context.Background(), Batch{Pixel: simPixel, Events: encodedEvents(20)})
	if err != nil || res.Count(Accepted) != 20 || res.Retries != 1 {
		t.Fatalf("err=%v res=%+v", err, res)
	}
	if st := sim.Stats(); st.RequestsByStatus[502] != 1 || st.RequestsByStatus[200] != 1 {
		t.Fatalf("sim stats %+v", st)
	}
}

func TestSim429RetryAfterHonoured(t *testing.T) {
	sim, url := newSim(t, capisim.Options{ThrottleRate: 1, RetryAfter: 2 * time.Second})
	var times []time.Time
	flip := flipAfterFirst(t, sim)
	c := newTestClient(t, url, func(c *Config) {
		c.OnRequest = func(i RequestInfo) { times = append(times, time.Now()); flip(i) }
	})
	res, err := c.Send(context.Background(), Batch{Pixel: simPixel, Events: encodedEvents(3)})
	if err != nil || res.Count(Accepted) != 3 || len(times) != 2 {
		t.Fatalf("err=%v res=%+v", err, res)
	}
	gap := times[1].Sub(times[0])
	t.Logf("simulator 429 Retry-After: 2 → next attempt after %v", gap)
	if gap < 2*time.Second-50*time.Millisecond || gap > 4*time.Second {
		t.Fatalf("next attempt after %v, want about 2s", gap)
	}
}

func TestSim401IsConfigNoRetryStorm(t *testing.T) {
	sim, url := newSim(t, capisim.Options{})
	c := newTestClient(t, url, func(c *Config) { c.APIKey = secret.New("sk-wrong-key-123") })
	res, err := c.Send(context.Background(), Batch{Pixel: simPixel, Events: encodedEvents(50)})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Class != ClassConfig || apiErr.Status != 401 {
		t.Fatalf("want a config error, got %v", err)
	}
	if res.Requests != 1 || sim.Stats().RequestsByStatus[401] != 1 || res.Count(Unsent) != 50 {
		t.Fatalf("a 401 must be tried once and leave every event unsent: requests %d, sim %+v", res.Requests, sim.Stats())
	}
	// Unknown pixel: 403, also configuration.
	c = newTestClient(t, url, nil)
	_, err = c.Send(context.Background(), Batch{Pixel: "px_unknown", Events: encodedEvents(1)})
	if !errors.As(err, &apiErr) || apiErr.Class != ClassConfig || apiErr.Status != 403 {
		t.Fatalf("unknown pixel: %v", err)
	}
}

// One event the API refuses among 1,000 (here: older than the API's window,
// which the client does not check at send time): exactly that one is
// rejected, the 999 others are accepted.
func TestSimIsolatesOneBadInThousand(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode IsolationMode
		opts capisim.Options
	}{
		{"split", IsolateSplit, capisim.Options{}},
		{"split, API names the event", IsolateSplit, capisim.Options{NameFailingEvent: true}},
		{"probe", IsolateProbe, capisim.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, url := newSim(t, tc.opts)
			c := newTestClient(t, url, func(c *Config) { c.Isolation = tc.mode })
			evs := encodedEvents(1000)
			bad := orderEvent()
			bad.ID = "e421"
			bad.TimestampMS = testNow.Add(-8 * 24 * time.Hour).UnixMilli()
			evs[421] = AppendEvent(nil, &bad)
			res, err := c.Send(context.Background(), Batch{Pixel: simPixel, Events: evs})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rejections) != 1 || res.Rejections[0].Index != 421 || res.Rejections[0].Status != 400 {
				t.Fatalf("rejections %+v", res.Rejections)
			}
			if !bytes.Contains([]byte(res.Rejections[0].Body), []byte("timestamp_ms")) {
				t.Errorf("rejection body should carry the API's reason: %q", res.Rejections[0].Body)
			}
			st := sim.Stats()
			if res.Count(Accepted) != 999 || st.EventsAccepted != 999 {
				t.Fatalf("accepted %d, sim stored %d", res.Count(Accepted), st.EventsAccepted)
			}
			t.Logf("%s: 1 bad in 1000 isolated with %d requests (2·log2(1000) ≈ 20); sim %v", tc.name, res.Requests, st.RequestsByStatus)
			if res.Requests > 23 {
				t.Fatalf("%d requests", res.Requests)
			}
		})
	}
}

// Every event the Validator accepts, the simulator accepts too (the property
// the fuzz test checks on random events, here on the fixed corpus).
func TestSimAgreesWithValidatorOnValidEvents(t *testing.T) {
	sim, _ := newSim(t, capisim.Options{})
	e := orderEvent()
	custom := orderEvent()
	toCustom(&custom, "quote_requested")
	custom.Data.Properties = map[string]any{"tier": "gold", "n": 3}
	app := Event{ID: "a1", Type: AppInstalled, TimestampMS: testNow.UnixMilli(), ActionSource: SourceMobileApp,
		User: User{AndroidAdvertisingID: "38400000-8cf0-11bd-b23e-10b96e40000d"}, Data: Data{Type: DataCustomerAction}}
	plan := Event{ID: "s1", Type: TrialStarted, TimestampMS: testNow.UnixMilli(), ActionSource: SourceWeb,
		SourceURL: "https://a.example/x", Data: Data{Type: DataPlanEnrollment, PlanID: "pro", Amount: Int64(0), Currency: "EUR"}}
	for i, ev := range []Event{e, custom, app, plan} {
		if err := (&Validator{Now: fixedClock}).Validate(&ev); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if code, body := postToSim(t, sim, AppendRequest(nil, [][]byte{AppendEvent(nil, &ev)}, false, "")); code != 200 {
			t.Fatalf("event %d: simulator answered %d: %s", i, code, body)
		}
	}
}

func postToSim(t testing.TB, sim http.Handler, body []byte) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/events?pid="+simPixel, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}
