package capi

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/secret"
)

// DefaultBaseURL is the production endpoint's base.
const DefaultBaseURL = "https://bzr.openai.com"

// DefaultMaxRequestBytes caps a request body (the API's own limit is
// undocumented; one third-party client uses 4 MB).
const DefaultMaxRequestBytes = 4 << 20

// IsolationMode says how the client finds the offending events of a batch the
// API rejected with 400/422.
type IsolationMode uint8

const (
	// IsolateSplit resends the two halves of a rejected batch, recursively,
	// so good events are accepted as soon as their half passes. With k bad
	// events among n it costs about 2·k·log2(n/k) requests.
	IsolateSplit IsolationMode = iota
	// IsolateProbe bisects with validate_only: true requests (which save
	// nothing) to find the offending events, then sends all the good events
	// in one real request. It costs one more request than IsolateSplit but
	// the API saves the good events in a single write, and no real request
	// is ever refused for a second time.
	IsolateProbe
)

// RetryPolicy bounds the retries of transient failures (408, 429, 5xx,
// timeouts, connection errors).
type RetryPolicy struct {
	// InitialBackoff is the first wait; each further wait doubles, up to
	// MaxBackoff, and is drawn uniformly from [d/2, d] (jitter). Default 250ms.
	InitialBackoff time.Duration
	// MaxBackoff caps a computed wait. Default 30s.
	MaxBackoff time.Duration
	// MaxAttempts is how many times one request is tried before Send gives up
	// and returns the events unsent. 0 means no limit: retry until the
	// context ends (what the relay does: transient failures must never turn
	// into dead letters).
	MaxAttempts int
	// MaxRetryAfter caps a server's Retry-After. Default 10m.
	MaxRetryAfter time.Duration
}

// RequestInfo describes one HTTP attempt, for metrics and logs. It never holds
// the API key.
type RequestInfo struct {
	Pixel        string
	Events       int
	Bytes        int
	ValidateOnly bool
	Status       int // 0 when no response arrived
	Class        Class
	Duration     time.Duration
	Err          error // network error, if any
	Attempt      int   // 1 for the first try
}

// Config configures a Client. Validate reports every problem at once.
type Config struct {
	// BaseURL is scheme://host[/prefix]; requests go to BaseURL/v1/events.
	// Default DefaultBaseURL; a sandbox or the local simulator override it.
	BaseURL string
	// APIKey is the Conversions API key (Bearer token). Required.
	APIKey secret.Value
	// IntegrationSource is sent on every request when set; see
	// CheckIntegrationSource.
	IntegrationSource string
	// HTTPClient is used for requests; nil means a client with a tuned
	// transport (keep-alive pool sized for concurrent senders).
	HTTPClient *http.Client
	// RequestTimeout bounds one HTTP attempt. Default 30s. A timeout is
	// transient.
	RequestTimeout time.Duration
	// MaxEventsPerRequest is at most MaxEventsPerRequest (1,000); default 1,000.
	MaxEventsPerRequest int
	// MaxRequestBytes caps a request body; default DefaultMaxRequestBytes.
	MaxRequestBytes int
	// Retry bounds transient retries.
	Retry RetryPolicy
	// Isolation picks how rejected batches are narrowed down.
	Isolation IsolationMode
	// MaxErrorBody is how many bytes of an error response body are kept in
	// APIError and Rejection. Default 1,024.
	MaxErrorBody int
	// UserAgent is sent as User-Agent. Default "capirelay".
	UserAgent string
	// Limiter, when set, is waited on before every HTTP attempt (retries
	// and isolation probes included), e.g. a *rate.Limiter from
	// golang.org/x/time/rate, so a backfill cannot starve the live relay of
	// the API's rate limit.
	Limiter Limiter
	// OnRequest, when set, is called after every HTTP attempt (from the
	// goroutine that called Send). It must be fast and must not block.
	OnRequest func(RequestInfo)
}

// Validate checks the configuration and returns every problem found, joined.
func (c *Config) Validate() error {
	var errs []error
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("capi: base URL %q must be http(s)://host[/path] without a query", base))
	}
	if c.APIKey.IsZero() {
		errs = append(errs, errors.New("capi: API key is required"))
	}
	if c.IntegrationSource != "" {
		if err := CheckIntegrationSource(c.IntegrationSource); err != nil {
			errs = append(errs, fmt.Errorf("capi: integration_source %q: %w", c.IntegrationSource, err))
		}
	}
	if c.MaxEventsPerRequest < 0 || c.MaxEventsPerRequest > MaxEventsPerRequest {
		errs = append(errs, fmt.Errorf("capi: max events per request must be 1 to %d, got %d", MaxEventsPerRequest, c.MaxEventsPerRequest))
	}
	if c.MaxRequestBytes < 0 || (c.MaxRequestBytes > 0 && c.MaxRequestBytes < 1024) {
		errs = append(errs, fmt.Errorf("capi: max request bytes must be at least 1024, got %d", c.MaxRequestBytes))
	}
	if c.Retry.InitialBackoff < 0 || c.Retry.MaxBackoff < 0 || c.Retry.MaxAttempts < 0 || c.Retry.MaxRetryAfter < 0 {
		errs = append(errs, errors.New("capi: retry durations and attempts must not be negative"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("capi: request timeout must not be negative, got %v", c.RequestTimeout))
	}
	if c.MaxErrorBody < 0 {
		errs = append(errs, fmt.Errorf("capi: max error body must not be negative, got %d", c.MaxErrorBody))
	}
	if c.Retry.MaxBackoff > 0 && c.Retry.InitialBackoff > c.Retry.MaxBackoff {
		errs = append(errs, fmt.Errorf("capi: initial backoff %v exceeds max backoff %v", c.Retry.InitialBackoff, c.Retry.MaxBackoff))
	}
	if c.Isolation > IsolateProbe {
		errs = append(errs, fmt.Errorf("capi: unknown isolation mode %d", c.Isolation))
	}
	return errors.Join(errs...)
}

// Limiter paces requests; *rate.Limiter implements it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Client sends batches of encoded events to the Conversions API. It is safe for
// concurrent use; callers run several Sends at once to overlap requests.
type Client struct {
	cfg      Config
	endpoint string
	http     *http.Client
	bufs     sync.Pool
}

// NewClient validates cfg, fills in defaults and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxEventsPerRequest == 0 {
		cfg.MaxEventsPerRequest = MaxEventsPerRequest
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.Retry.InitialBackoff == 0 {
		cfg.Retry.InitialBackoff = 250 * time.Millisecond
	}
	if cfg.Retry.MaxBackoff == 0 {
		cfg.Retry.MaxBackoff = 30 * time.Second
	}
	if cfg.Retry.MaxRetryAfter == 0 {
		cfg.Retry.MaxRetryAfter = 10 * time.Minute
	}
	if cfg.MaxErrorBody == 0 {
		cfg.MaxErrorBody = 1024
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "capirelay"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	return &Client{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/v1/events?pid=",
		http:     hc,
	}, nil
}

// Class is the design's classification of an API outcome.
type Class uint8

const (
	// ClassAccepted: any 2xx.
	ClassAccepted Class = iota
	// ClassRejected: 400/422 (some event is invalid) or 413 on a single event.
	ClassRejected
	// ClassTransient: 408, 429, 5xx, timeouts and network errors; retried.
	ClassTransient
	// ClassConfig: 401, 403, 404 (key or pixel wrong); never retried by the
	// client, never a reason to dead-letter.
	ClassConfig
	// classTooLarge: 413 on a batch of more than one event; split.
	classTooLarge
)

// String returns "accepted", "rejected", "transient" or "config".
func (c Class) String() string {
	switch c {
	case ClassAccepted:
		return "accepted"
	case ClassRejected:
		return "rejected"
	case ClassTransient:
		return "transient"
	case ClassConfig:
		return "config"
	case classTooLarge:
		return "too_large"
	}
	return "unknown"
}

// Classify maps an HTTP status to its class. Statuses the API does not
// document are classified by their family: other 4xx are rejected (the
// request itself is wrong), other 1xx/3xx are transient.
func Classify(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return ClassAccepted
	case status == 401 || status == 403 || status == 404:
		return ClassConfig
	case status == 408 || status == 429 || status >= 500:
		return ClassTransient
	case status == 413:
		return classTooLarge
	case status >= 400:
		return ClassRejected
	}
	return ClassTransient
}

// APIError is a failed request: its class, HTTP status (0 when no response
// arrived), the start of the response body (truncated, with the API key
// scrubbed) and the network error, if any. It never holds the API key.
type APIError struct {
	Class      Class
	Status     int
	Body       string
	RetryAfter time.Duration
	Err        error
	Attempts   int
}

// Error describes the failure without secrets.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("conversions API: ")
	b.WriteString(e.Class.String())
	if e.Status != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Class == ClassConfig {
		b.WriteString(" (API key or pixel id wrong, or not authorized)")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	if e.Attempts > 1 {
		b.WriteString(" (after ")
		b.WriteString(strconv.Itoa(e.Attempts))
		b.WriteString(" attempts)")
	}
	return b.String()
}

// Unwrap returns the network error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// Batch is what Send takes: events of one pixel, each encoded with
// AppendEvent. Send does not modify or retain Events after it returns.
type Batch struct {
	Pixel        string
	ValidateOnly bool
	Events       [][]byte
}

// Outcome is the fate of one event of a Send.
type Outcome uint8

const (
	// Unsent: not known to be accepted (Send returned an error before the
	// event's request succeeded). The caller must send it again later; it is
	// safe to, since the API deduplicates on id.
	Unsent Outcome = iota
	// Accepted: the API answered 2xx to a request holding the event.
	Accepted
	// Rejected: the API refused a request holding only this event (400, 422,
	// or 413), or the event alone exceeds MaxRequestBytes. It will never be
	// accepted as it is: dead-letter it.
	Rejected
)

// Rejection describes why one event was rejected.
type Rejection struct {
	Index  int    // index in Batch.Events
	Status int    // HTTP status, or 0 when rejected locally (too large)
	Body   string // start of the response body, secret-free
}

// Result reports what Send did.
type Result struct {
	// Outcomes is parallel to Batch.Events.
	Outcomes []Outcome
	// Rejections lists the rejected events in index order.
	Rejections []Rejection
	// Requests counts HTTP attempts, retries included.
	Requests int
	// Retries counts attempts after the first for the same request.
	Retries int
}

// Count returns how many events have outcome o.
func (r *Result) Count(o Outcome) int {
	n := 0
	for _, x := range r.Outcomes {
		if x == o {
			n++
		}
	}
	return n
}

// Send delivers the batch. It splits the events into requests of at most
// MaxEventsPerRequest events and MaxRequestBytes bytes, retries transient
// failures per the RetryPolicy, and isolates rejected events per the
// IsolationMode, so that the good events of a refused batch are still accepted.
//
// The error is nil when every event is Accepted or Rejected. Otherwise some
// events are Unsent and the error says why: a *APIError of ClassConfig (the
// client never retries those), a *APIError of ClassTransient once
// RetryPolicy.MaxAttempts is exhausted, or the context's error. The Result is
// always complete for the events that were settled before the error, so the
// caller can settle those and resend only the Unsent ones.
func (c *Client) Send(ctx context.Context, b Batch) (*Result, error) {
	res := &Result{Outcomes: make([]Outcome, len(b.Events))}
	if len(b.Events) == 0 {
		return res, nil
	}
	idx := make([]int, 0, len(b.Events))
	size := 0
	flush := func() error {
		if len(idx) == 0 {
			return nil
		}
		err := c.sendIsolating(ctx, &b, idx, b.ValidateOnly, c.cfg.Isolation == IsolateProbe, res)
		idx = idx[:0]
		size = 0
		return err
	}
	for i, ev := range b.Events {
		if RequestSize(len(ev), 1, b.ValidateOnly, c.cfg.IntegrationSource) > c.cfg.MaxRequestBytes {
			res.Outcomes[i] = Rejected
			res.Rejections = append(res.Rejections, Rejection{Index: i,
				Body: fmt.Sprintf("event is %d bytes, more than the %d-byte request limit", len(ev), c.cfg.MaxRequestBytes)})
			continue
		}
		if len(idx) == c.cfg.MaxEventsPerRequest ||
			RequestSize(size+len(ev), len(idx)+1, b.ValidateOnly, c.cfg.IntegrationSource) > c.cfg.MaxRequestBytes {
			if err := flush(); err != nil {
				sortRejections(res)
				return res, err
			}
		}
		idx = append(idx, i)
		size += len(ev)
	}
	err := flush()
	sortRejections(res)
	return res, err
}

func sortRejections(r *Result) {
	slices.SortFunc(r.Rejections, func(a, b Rejection) int { return cmp.Compare(a.Index, b.Index) })
}

// sendIsolating sends the events idx as one request and, when it is refused as
// a whole, narrows the refusal down to single events: by splitting (resending
// halves for real) or, when probe is set, by probing with validate_only.
func (c *Client) sendIsolating(ctx context.Context, b *Batch, idx []int, validateOnly, probe bool, res *Result) error {
	out, err := c.post(ctx, b, idx, validateOnly, res)
	if err != nil {
		return err
	}
	switch out.Class {
	case ClassAccepted:
		for _, i := range idx {
			res.Outcomes[i] = Accepted
		}
		return nil
	case ClassRejected, classTooLarge:
		if len(idx) == 1 {
			res.Outcomes[idx[0]] = Rejected
			res.Rejections = append(res.Rejections, Rejection{Index: idx[0], Status: out.Status, Body: out.Body})
			return nil
		}
		if out.Class == ClassRejected && probe && !validateOnly {
			return c.probeThenSend(ctx, b, idx, res)
		}
		// Copy the halves: idx may be the caller's reusable slice.
		mid := len(idx) / 2
		left := append([]int(nil), idx[:mid]...)
		right := append([]int(nil), idx[mid:]...)
		if err := c.sendIsolating(ctx, b, left, validateOnly, probe, res); err != nil {
			return err
		}
		return c.sendIsolating(ctx, b, right, validateOnly, probe, res)
	}
	return fmt.Errorf("capi: unexpected class %v", out.Class)
}

// probeThenSend finds the bad events of idx with validate_only requests, then
// sends the good ones for real in one request.
func (c *Client) probeThenSend(ctx context.Context, b *Batch, idx []int, res *Result) error {
	probe := &Result{Outcomes: make([]Outcome, len(res.Outcomes))}
	err := c.sendIsolating(ctx, b, idx, true, false, probe)
	res.Requests += probe.Requests
	res.Retries += probe.Retries
	if err != nil {
		return err
	}
	good := make([]int, 0, len(idx))
	for _, i := range idx {
		if probe.Outcomes[i] == Accepted {
			good = append(good, i)
		}
	}
	for _, r := range probe.Rejections {
		res.Outcomes[r.Index] = Rejected
		res.Rejections = append(res.Rejections, r)
	}
	if len(good) == 0 {
		return nil
	}
	// The good events passed validation; should the real request be refused
	// anyway (the window moved on, say), narrow it down by splitting.
	return c.sendIsolating(ctx, b, good, false, false, res)
}

// postOutcome is the final answer to one request after retries.
type postOutcome struct {
	Class  Class
	Status int
	Body   string
}

// post sends idx as one request, retrying transient failures. It returns an
// error for config faults, exhausted retries and context end.
func (c *Client) post(ctx context.Context, b *Batch, idx []int, validateOnly bool, res *Result) (postOutcome, error) {
	bufp, _ := c.bufs.Get().(*[]byte)
	if bufp == nil {
		bufp = new([]byte)
	}
	events := make([][]byte, len(idx))
	for n, i := range idx {
		events[n] = b.Events[i]
	}
	body := AppendRequest((*bufp)[:0], events, validateOnly, c.cfg.IntegrationSource)
	*bufp = body
	// The transport may read or close a request body after Do returns, so
	// the buffer goes back to the pool only once post and every request
	// body made from it are done with it.
	shared := &sharedBody{pool: &c.bufs, bufp: bufp}
	shared.refs.Store(1)
	defer shared.release()

	target := c.endpoint + url.QueryEscape(b.Pixel)
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			res.Retries++
		}
		if c.cfg.Limiter != nil {
			if err := c.cfg.Limiter.Wait(ctx); err != nil {
				return postOutcome{Class: ClassTransient}, err
			}
		}
		res.Requests++
		start := time.Now()
		out, retryAfter, netErr := c.attempt(ctx, target, shared)
		if c.cfg.OnRequest != nil {
			c.cfg.OnRequest(RequestInfo{Pixel: b.Pixel, Events: len(idx), Bytes: len(body), ValidateOnly: validateOnly,
				Status: out.Status, Class: out.Class, Duration: time.Since(start), Err: netErr, Attempt: attempt})
		}
		switch out.Class {
		case ClassAccepted, ClassRejected, classTooLarge:
			return out, nil
		case ClassConfig:
			return out, &APIError{Class: ClassConfig, Status: out.Status, Body: out.Body, Attempts: attempt}
		}
		// Transient.
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if c.cfg.Retry.MaxAttempts > 0 && attempt >= c.cfg.Retry.MaxAttempts {
			return out, &APIError{Class: ClassTransient, Status: out.Status, Body: out.Body, Err: netErr, Attempts: attempt, RetryAfter: retryAfter}
		}
		wait := c.backoff(attempt)
		if retryAfter > 0 {
			wait = min(retryAfter, c.cfg.Retry.MaxRetryAfter)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, ctx.Err()
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt+1: InitialBackoff·2^(attempt-1),
// capped at MaxBackoff, drawn from [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Retry.InitialBackoff
	for i := 1; i < attempt && d < c.cfg.Retry.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.cfg.Retry.MaxBackoff)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// attempt makes one HTTP request. Network errors and timeouts are returned as
// ClassTransient with netErr set (scrubbed of the key).
func (c *Client) attempt(ctx context.Context, target string, body *sharedBody) (out postOutcome, retryAfter time.Duration, netErr error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, nil)
	if err != nil {
		return postOutcome{Class: ClassTransient}, 0, err
	}
	// What NewRequest sets up for a *bytes.Reader body, with bodies that
	// hold a reference to the pooled buffer until the transport closes them.
	// open cannot fail here: post holds a reference.
	req.Body, _ = body.open()
	req.ContentLength = int64(len(*body.bufp))
	req.GetBody = body.open
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return postOutcome{Class: ClassTransient}, 0, scrubError{msg: c.cfg.APIKey.Scrub(describeNetErr(err))}
	}
	defer resp.Body.Close()
	out.Status = resp.StatusCode
	out.Class = Classify(resp.StatusCode)
	if out.Class == ClassAccepted {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return out, 0, nil
	}
	// Scrub before truncating, and read len(key) bytes past the cut, so that a
	// key echoed across the cut is whole when Scrub sees it. A key cut off by
	// the read limit itself is dropped first: Scrub cannot recognise it, and
	// when earlier echoes shrink to "[redacted]" it would move into the text
	// that is kept.
	key := c.cfg.APIKey.Reveal()
	limit := c.cfg.MaxErrorBody + len(key) + 1
	head, _ := io.ReadAll(io.LimitReader(resp.Body, int64(limit)))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if len(head) == limit {
		head = dropKeyPrefixSuffix(head, key)
	}
	out.Body = truncate(c.cfg.APIKey.Scrub(string(head)), c.cfg.MaxErrorBody)
	if out.Class == ClassTransient {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return out, retryAfter, nil
}

// sharedBody is a pooled request body buffer shared by post and the request
// bodies of its attempts; it returns to the pool when the last one lets go.
type sharedBody struct {
	pool *sync.Pool
	bufp *[]byte
	refs atomic.Int32
}

var errBodyReleased = errors.New("capi: request body already released")

// open returns a new reader over the buffer that holds a reference until it
// is closed. It fails once the buffer has gone back to the pool (a transport
// asking for GetBody after Do returned).
func (s *sharedBody) open() (io.ReadCloser, error) {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return nil, errBodyReleased
		}
		if s.refs.CompareAndSwap(n, n+1) {
			break
		}
	}
	r := &bodyReader{shared: s}
	r.rd.Reset(*s.bufp)
	return r, nil
}

func (s *sharedBody) release() {
	if s.refs.Add(-1) == 0 {
		s.pool.Put(s.bufp)
	}
}

// bodyReader reads a sharedBody; its first Close drops its reference. It has
// only Read and Close (no WriteTo), so nothing reads the buffer past Close.
type bodyReader struct {
	rd     bytes.Reader
	shared *sharedBody
	closed atomic.Bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		return 0, errBodyReleased
	}
	return r.rd.Read(p)
}

func (r *bodyReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.shared.release()
	}
	return nil
}

// dropKeyPrefixSuffix removes the longest end of b that is a proper prefix of
// key: the start of an echo of the key that a read limit cut off.
func dropKeyPrefixSuffix(b []byte, key string) []byte {
	for n := min(len(key)-1, len(b)); n > 0; n-- {
		if string(b[len(b)-n:]) == key[:n] {
			return b[:len(b)-n]
		}
	}
	return b
}

type scrubError struct{ msg string }

func (e scrubError) Error() string { return e.msg }

func describeNetErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…(truncated)"
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent or malformed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
