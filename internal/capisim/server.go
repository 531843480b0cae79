package capisim

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AcceptedEvent is an event the simulator accepted and stored: the first
// event seen for its dedup key (pixel + event name + id), outside
// validate_only requests.
type AcceptedEvent struct {
	// Seq is the 1-based acceptance order since the last Reset.
	Seq int64 `json:"seq"`
	// Pixel is the pid the event was sent to.
	Pixel string `json:"pixel"`
	// ID is the event's "id".
	ID string `json:"id"`
	// Type is the event's "type".
	Type string `json:"type"`
	// CustomEventName is the event's "custom_event_name" (custom events
	// only; the simulator requires it lowercase, so it is as sent).
	CustomEventName string `json:"custom_event_name,omitempty"`
	// TimestampMS is the event's "timestamp_ms".
	TimestampMS int64 `json:"timestamp_ms"`
	// ActionSource is the event's "action_source", empty when omitted.
	ActionSource string `json:"action_source,omitempty"`
	// IntegrationSource is the request's "integration_source", trimmed and
	// lowercased as the API does; empty when omitted.
	IntegrationSource string `json:"integration_source,omitempty"`
	// ReceivedAt is Options.Now when the request was handled.
	ReceivedAt time.Time `json:"received_at"`
	// Event is the event object exactly as received (GET /_sim/events
	// prints it compacted onto one line).
	Event json.RawMessage `json:"event"`
}

// DedupName is the event-name part of the dedup key: CustomEventName for
// custom events, else Type.
func (e AcceptedEvent) DedupName() string {
	return dedupName(e.Type, e.CustomEventName)
}

// dedupName is the event-name part of the dedup key of an event of type
// typ: its custom_event_name for custom events, else typ.
func dedupName(typ, customEventName string) string {
	if typ == "custom" {
		return customEventName
	}
	return typ
}

// FaultCounts counts injected faults by kind.
type FaultCounts struct {
	Hang     int64 `json:"hang"`
	AuthFail int64 `json:"auth_fail"`
	Throttle int64 `json:"throttle"`
	Fail     int64 `json:"fail"`
}

// Stats are counters since New or the last Reset. Only requests to
// /v1/events are counted; /_sim/* requests are not.
type Stats struct {
	// RequestsByStatus counts responses to /v1/events by HTTP status
	// (JSON keys are the status as a string). Hung requests have no
	// status and are counted in Hung instead.
	RequestsByStatus map[int]int64 `json:"requests_by_status"`
	// Hung counts requests that got no answer (hang fault).
	Hung int64 `json:"hung"`
	// BatchesAccepted counts 200 responses to requests without
	// validate_only.
	BatchesAccepted int64 `json:"batches_accepted"`
	// BatchesRejected counts requests refused for their body: 400
	// (malformed JSON or a rule violated), 413 and 415. Auth, pixel and
	// injected faults are not counted here.
	BatchesRejected int64 `json:"batches_rejected"`
	// ValidateOnlyRequests counts 200 responses to validate_only
	// requests.
	ValidateOnlyRequests int64 `json:"validate_only_requests"`
	// EventsReceived counts the events of every request answered 200:
	// EventsAccepted + DuplicatesIgnored + ValidateOnlyEvents.
	EventsReceived int64 `json:"events_received"`
	// EventsAccepted counts events stored (first of their dedup key); in
	// NullSink mode, every event of a non-validate_only request.
	EventsAccepted int64 `json:"events_accepted"`
	// DuplicatesIgnored counts events dropped because their dedup key
	// was already accepted (including earlier in the same batch).
	DuplicatesIgnored int64 `json:"duplicates_ignored"`
	// ValidateOnlyEvents counts the events of validate_only requests
	// answered 200.
	ValidateOnlyEvents int64 `json:"validate_only_events"`
	// FaultsInjected counts injected faults by kind.
	FaultsInjected FaultCounts `json:"faults_injected"`
	// StoredEvents is how many accepted events Events would return now
	// (bounded by Options.MaxStoredEvents).
	StoredEvents int `json:"stored_events"`
}

// Server is the simulated Conversions API. It is an http.Handler and is
// safe for concurrent use. Create it with New.
type Server struct {
	apiKey        []byte
	pixels        map[string]string
	now           func() time.Time
	nameFailing   bool
	ignoreUnknown bool
	lenientLists  bool
	maxContents   int
	nullSink      bool
	maxBody       int64
	maxStored     int
	seed          int64

	closeOnce sync.Once
	closed    chan struct{}

	faultMu      sync.Mutex
	faults       Faults
	rng          *rand.Rand
	faultsActive atomic.Bool

	mu     sync.Mutex
	seen   map[string]struct{}
	events []AcceptedEvent
	seq    int64
	st     counters

	bufPool sync.Pool // *[]byte request buffers, NullSink mode only
}

// counters are the mutable statistics, guarded by Server.mu. The plain
// counts live in the embedded Stats; Server.Stats derives RequestsByStatus
// (from status), Hung and FaultsInjected (from faults) and StoredEvents.
type counters struct {
	Stats
	status [600]int64
	faults [faultFail + 1]int64 // by faultKind; a hang is also Stats.Hung
}

// New checks opts and returns a Server. It fails when APIKey is empty, no
// pixel is given (or one is empty), a rate is outside 0..1, Status5xx is
// outside 500..599, a duration or MaxBodyBytes or MaxStoredEvents is
// negative.
func New(opts Options) (*Server, error) {
	var errs []error
	if opts.APIKey == "" {
		errs = append(errs, errors.New("APIKey is required"))
	}
	if len(opts.Pixels) == 0 {
		errs = append(errs, errors.New("at least one pixel id is required"))
	}
	pixels := make(map[string]string, len(opts.Pixels))
	for _, p := range opts.Pixels {
		if p == "" {
			errs = append(errs, errors.New("pixel ids must not be empty"))
			continue
		}
		pixels[p] = p
	}
	if opts.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes must not be negative, got %d", opts.MaxBodyBytes))
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxStoredEvents < 0 {
		errs = append(errs, fmt.Errorf("MaxStoredEvents must not be negative, got %d", opts.MaxStoredEvents))
	}
	f, err := opts.faults().normalize()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("capisim: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		apiKey:        []byte(opts.APIKey),
		pixels:        pixels,
		now:           opts.Now,
		nameFailing:   opts.NameFailingEvent,
		ignoreUnknown: opts.IgnoreUnknownFields,
		lenientLists:  opts.LenientUserLists,
		maxContents:   opts.MaxContents,
		nullSink:      opts.NullSink,
		maxBody:       opts.MaxBodyBytes,
		maxStored:     opts.MaxStoredEvents,
		seed:          opts.Seed,
		closed:        make(chan struct{}),
		seen:          make(map[string]struct{}),
	}
	s.rng = newRNG(opts.Seed)
	s.setFaults(f)
	return s, nil
}

func newRNG(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
}

// SetFaults replaces the fault settings (zero fields get their defaults) at
// runtime; requests already past the fault stage are not affected. It
// returns an error, and changes nothing, when f is out of range.
func (s *Server) SetFaults(f Faults) error {
	f, err := f.normalize()
	if err != nil {
		return fmt.Errorf("capisim: %w", err)
	}
	s.setFaults(f)
	return nil
}

func (s *Server) setFaults(f Faults) {
	s.faultMu.Lock()
	s.faults = f
	s.faultsActive.Store(f.FailRate > 0 || f.ThrottleRate > 0 || f.HangRate > 0 || f.AuthFailRate > 0 || f.Latency > 0)
	s.faultMu.Unlock()
}

// Faults returns the current fault settings, with defaults filled in.
func (s *Server) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// Reset forgets every accepted event, the dedup state and the statistics,
// and reseeds the fault generator with Options.Seed. Fault settings are
// kept.
func (s *Server) Reset() {
	s.mu.Lock()
	s.seen = make(map[string]struct{})
	s.events = nil
	s.seq = 0
	s.st = counters{}
	s.mu.Unlock()
	s.faultMu.Lock()
	s.rng = newRNG(s.seed)
	s.faultMu.Unlock()
}

// Close releases requests held by the hang fault or waiting out Latency
// (they are answered 503) and makes later such requests answer 503 at once.
// Call it before shutting down an http.Server or closing an httptest.Server
// that serves s, since both wait for in-flight requests. Other requests are
// still served normally. Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Events returns a copy of the accepted events in acceptance order.
func (s *Server) Events() []AcceptedEvent {
	s.mu.Lock()
	evs := s.events
	s.mu.Unlock()
	out := make([]AcceptedEvent, len(evs))
	for i, e := range evs {
		e.Event = append(json.RawMessage(nil), e.Event...)
		out[i] = e
	}
	return out
}

// Stats returns a consistent snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.st
	st := c.Stats
	st.RequestsByStatus = map[int]int64{}
	st.Hung = c.faults[faultHang]
	st.FaultsInjected = FaultCounts{
		Hang: c.faults[faultHang], AuthFail: c.faults[faultAuth], Throttle: c.faults[faultThrottle], Fail: c.faults[faultFail],
	}
	st.StoredEvents = len(s.events)
	for code, n := range c.status {
		if n != 0 {
			st.RequestsByStatus[code] = n
		}
	}
	return st
}

// ServeHTTP routes:
//
//	POST     /v1/events?pid=PIXEL  the simulated Conversions API
//	GET      /_sim/events          accepted events, one JSON object per line
//	GET      /_sim/stats           Stats as JSON
//	POST     /_sim/reset           Reset; 204
//	GET, PUT /_sim/faults          current Faults as JSON / replace them
//
// Anything else is 404 (405 for a known path with the wrong method). The
// /_sim endpoints need no key and are not subject to faults.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/events":
		s.serveEvents(w, r)
	case "/_sim/events":
		if methodIs(w, r, http.MethodGet) {
			s.serveEventLines(w)
		}
	case "/_sim/stats":
		if methodIs(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Stats())
		}
	case "/_sim/reset":
		if methodIs(w, r, http.MethodPost) {
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
	case "/_sim/faults":
		s.serveFaults(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, "", -1)
	}
}

func methodIs(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" not allowed", "", -1)
	return false
}

func (s *Server) serveEventLines(w http.ResponseWriter) {
	s.mu.Lock()
	evs := s.events // append-only backing array: safe to read unlocked
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return
		}
	}
	bw.Flush()
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	if !methodIs(w, r, http.MethodGet, http.MethodPut, http.MethodPost) {
		return
	}
	if r.Method != http.MethodGet {
		var f Faults
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if err == nil {
			err = s.SetFaults(f)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), "", -1)
			return
		}
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

type faultKind int

const (
	noFault faultKind = iota
	faultHang
	faultAuth
	faultThrottle
	faultFail
)

// drawFaults decides the fault of one request.
func (s *Server) drawFaults() (Faults, faultKind) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.faults
	switch {
	case s.hit(f.HangRate):
		return f, faultHang
	case s.hit(f.AuthFailRate):
		return f, faultAuth
	case s.hit(f.ThrottleRate):
		return f, faultThrottle
	case s.hit(f.FailRate):
		return f, faultFail
	}
	return f, noFault
}

func (s *Server) hit(rate float64) bool {
	switch {
	case rate <= 0:
		return false
	case rate >= 1:
		return true
	}
	return s.rng.Float64() < rate
}

// serveEvents is POST /v1/events. Order of checks: method, latency and
// faults, key (401), pixel (403), content type and encoding (415), size
// (413), body (400).
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST", false)
		return
	}
	var bufp *[]byte
	if s.nullSink {
		bufp = s.getBuf()
		defer s.bufPool.Put(bufp)
	}
	var body []byte
	var bodyErr error
	bodyRead := false
	if s.faultsActive.Load() {
		f, kind := s.drawFaults()
		if (kind == faultHang || f.Latency > 0) && r.ContentLength <= s.maxBody {
			// net/http notices that the client hung up only once the
			// request body has been read: read it before waiting.
			body, bodyErr = s.readBody(r, bufp)
			bodyRead = true
		}
		if !s.applyFault(w, r, f, kind) {
			return
		}
	}
	if !s.authorized(r) {
		s.unauthorized(w)
		return
	}
	pids := r.URL.Query()["pid"]
	if len(pids) != 1 || pids[0] == "" {
		s.fail(w, http.StatusForbidden, "permission_denied", "exactly one pid query parameter (the pixel id) is required", false)
		return
	}
	pixel, ok := s.pixels[pids[0]]
	if !ok {
		s.fail(w, http.StatusForbidden, "permission_denied", "unknown pixel id"+quoteValue([]byte(pids[0]))+" for this API key", false)
		return
	}
	if msg := checkContentType(r.Header); msg != "" {
		s.fail(w, http.StatusUnsupportedMediaType, "unsupported_media_type", msg, true)
		return
	}
	if r.ContentLength > s.maxBody {
		s.tooLarge(w)
		return
	}
	if !bodyRead {
		body, bodyErr = s.readBody(r, bufp)
	}
	if bodyErr != nil {
		var mbe *http.MaxBytesError
		if errors.As(bodyErr, &mbe) || errors.Is(bodyErr, errTooLarge) {
			s.tooLarge(w)
			return
		}
		s.fail(w, http.StatusBadRequest, "invalid_request", "could not read the request body", true)
		return
	}
	now := s.now()
	v := validator{sc: scanner{b: body}, nowMs: now.UnixMilli(), ignoreUnknown: s.ignoreUnknown, lenientLists: s.lenientLists, maxContents: s.maxContents}
	if s.nullSink {
		n, validateOnly, err := v.countEvents()
		if err != nil {
			s.invalid(w, &batchError{event: -1, err: err})
			return
		}
		s.mu.Lock()
		s.countOK(validateOnly, n)
		if !validateOnly {
			s.st.EventsAccepted += int64(n)
		}
		s.mu.Unlock()
		writeAccepted(w, n, validateOnly)
		return
	}
	b, err := v.parseBatch()
	if err != nil {
		s.invalid(w, err.(*batchError)) // parseBatch wraps every error
		return
	}
	if b.validateOnly {
		s.mu.Lock()
		s.countOK(true, len(b.events))
		s.mu.Unlock()
		writeAccepted(w, len(b.events), true)
		return
	}
	s.store(pixel, now, body, b)
	writeAccepted(w, len(b.events), false)
}

// store applies dedup and keeps the new events.
func (s *Server) store(pixel string, now time.Time, body []byte, b *batch) {
	keys := make([]string, len(b.events))
	for i := range b.events {
		e := &b.events[i]
		keys[i] = pixel + "\x00" + dedupName(e.typ.name, e.cen) + "\x00" + e.id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countOK(false, len(b.events))
	for i := range b.events {
		if _, dup := s.seen[keys[i]]; dup {
			s.st.DuplicatesIgnored++
			continue
		}
		s.seen[keys[i]] = struct{}{}
		e := &b.events[i]
		s.seq++
		s.st.EventsAccepted++
		s.events = append(s.events, AcceptedEvent{
			Seq:               s.seq,
			Pixel:             pixel,
			ID:                e.id,
			Type:              e.typ.name,
			CustomEventName:   e.cen,
			TimestampMS:       e.ts,
			ActionSource:      e.actionSource,
			IntegrationSource: b.integrationSource,
			ReceivedAt:        now,
			Event:             body[e.start:e.end:e.end],
		})
	}
	if s.maxStored > 0 && len(s.events) > s.maxStored {
		// Reslice, never shift: readers may hold the old slice.
		s.events = s.events[len(s.events)-s.maxStored:]
	}
}

// countOK counts a 200 response; s.mu must be held.
func (s *Server) countOK(validateOnly bool, n int) {
	s.st.status[http.StatusOK]++
	s.st.EventsReceived += int64(n)
	if validateOnly {
		s.st.ValidateOnlyRequests++
		s.st.ValidateOnlyEvents += int64(n)
	} else {
		s.st.BatchesAccepted++
	}
}

// applyFault waits out the latency and applies the drawn fault. It returns
// false when the request was answered (or abandoned) here.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Faults, kind faultKind) bool {
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false // client gone: nobody to answer
		case <-s.closed:
			s.fail(w, http.StatusServiceUnavailable, "server_error", "simulator shutting down", false)
			return false
		}
	}
	if kind != noFault {
		s.mu.Lock()
		s.st.faults[kind]++
		s.mu.Unlock()
	}
	switch kind {
	case faultHang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
			// Shutting down: answer so the server can finish. This
			// response is not counted (the request was counted as hung).
			writeError(w, http.StatusServiceUnavailable, "server_error", "simulator shutting down", "", -1)
		}
		return false
	case faultAuth:
		s.unauthorized(w)
		return false
	case faultThrottle:
		w.Header().Set("Retry-After", strconv.FormatInt(f.retryAfterSeconds(), 10))
		s.fail(w, http.StatusTooManyRequests, "rate_limited", "too many requests (simulated)", false)
		return false
	case faultFail:
		s.fail(w, f.Status5xx, "server_error", "internal error (simulated)", false)
		return false
	}
	return true
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const scheme = "Bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(scheme):]), s.apiKey) == 1
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="capisim"`)
	s.fail(w, http.StatusUnauthorized, "authentication_error", "missing or invalid API key (Authorization: Bearer <key>)", false)
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.fail(w, http.StatusRequestEntityTooLarge, "request_too_large",
		"request body larger than "+strconv.FormatInt(s.maxBody, 10)+" bytes; send fewer events per request", true)
}

// fail writes an error response to /v1/events and counts it; rejected
// marks a batch refused for its body.
func (s *Server) fail(w http.ResponseWriter, status int, typ, msg string, rejected bool) {
	s.mu.Lock()
	s.st.status[status]++
	if rejected {
		s.st.BatchesRejected++
	}
	s.mu.Unlock()
	writeError(w, status, typ, msg, "", -1)
}

// invalid answers 400 for a body that breaks a rule, naming the failing
// event only when Options.NameFailingEvent is set.
func (s *Server) invalid(w http.ResponseWriter, be *batchError) {
	var msg, param string
	index := -1
	prefix := ""
	if be.event >= 0 {
		if s.nameFailing {
			prefix = "events[" + strconv.Itoa(be.event) + "]"
			index = be.event
		} else {
			prefix = "events[?]"
		}
	}
	switch e := be.err.(type) {
	case *fieldError:
		param = joinPath(prefix, e.path)
		msg = e.msg
		if param != "" {
			msg = param + ": " + e.msg
		}
	case *syntaxError:
		if s.nameFailing {
			msg = e.Error()
		} else {
			msg = "malformed JSON: " + e.msg
		}
		if prefix != "" {
			msg = prefix + ": " + msg
		}
	}
	s.mu.Lock()
	s.st.status[http.StatusBadRequest]++
	s.st.BatchesRejected++
	s.mu.Unlock()
	writeError(w, http.StatusBadRequest, "invalid_request", msg, param, index)
}

// checkContentType requires application/json (parameters allowed, a charset
// must be utf-8) and no content coding.
func checkContentType(h http.Header) string {
	ct := h.Get("Content-Type")
	if ct == "" {
		return "Content-Type: application/json is required"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return "Content-Type must be application/json"
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "Content-Type charset must be utf-8"
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return "Content-Encoding " + strconv.Quote(ce) + " is not supported; send the body uncompressed"
	}
	return ""
}

var errTooLarge = errors.New("body too large")

func (s *Server) getBuf() *[]byte {
	if p, ok := s.bufPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 1<<20)
	return &b
}

// readBody reads the whole body, at most maxBody bytes. With bufp it reuses
// that buffer (NullSink mode: nothing keeps a reference to the body).
func (s *Server) readBody(r *http.Request, bufp *[]byte) ([]byte, error) {
	var buf []byte
	if bufp != nil {
		buf = (*bufp)[:0]
	}
	if n := r.ContentLength; n >= 0 {
		if int64(cap(buf)) < n {
			buf = make([]byte, 0, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		// Reach EOF so net/http starts watching for the client hanging
		// up (it normally reports EOF with the last bytes already).
		var probe [1]byte
		if n, _ := r.Body.Read(probe[:]); n != 0 {
			return nil, errors.New("body longer than Content-Length")
		}
	} else {
		if buf == nil {
			buf = make([]byte, 0, 64<<10)
		}
		lr := io.LimitReader(r.Body, s.maxBody+1)
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := lr.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		if int64(len(buf)) > s.maxBody {
			return nil, errTooLarge
		}
	}
	if bufp != nil {
		*bufp = buf
	}
	return buf, nil
}

func writeAccepted(w http.ResponseWriter, n int, validateOnly bool) {
	b := make([]byte, 0, 64)
	b = append(b, `{"events_received":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	if validateOnly {
		b = append(b, `,"validate_only":true`...)
	}
	b = append(b, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// errorBody is the simulator's error response (the real API's is
// undocumented).
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type       string `json:"type"`
	Message    string `json:"message"`
	Param      string `json:"param,omitempty"`
	EventIndex *int   `json:"event_index,omitempty"`
}

func writeError(w http.ResponseWriter, status int, typ, msg, param string, index int) {
	d := errorDetail{Type: typ, Message: msg, Param: param}
	if index >= 0 {
		d.EventIndex = &index
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"type":"server_error","message":"encoding failed"}}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
