// Command capisim serves the local Conversions API simulator
// (internal/capisim) on a TCP address, for the demo, manual testing and
// offline work on mapping rules.
//
//	capisim --api-key KEY --pixel ID [--pixel ID ...] [fault flags]
//
// The key may come from CAPISIM_API_KEY instead of --api-key (preferred: a
// flag is visible in the process list). The key is never printed. SIGINT or
// SIGTERM shut the server down gracefully; requests held by --hang-rate are
// answered 503 first. Run capisim --help for every flag and endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/capirelay/capirelay/internal/capisim"
)

// version is stamped by the Makefile (-X main.version=...).
var version = "dev"

// envAPIKey is the environment variable read when --api-key is not given.
const envAPIKey = "CAPISIM_API_KEY"

const usageHeader = `capisim: local simulator of the OpenAI Ads Conversions API.

Usage:
  CAPISIM_API_KEY=KEY capisim --pixel ID [--pixel ID ...] [flags]
  capisim --api-key KEY --pixel ID [flags]

Endpoints:
  POST    /v1/events?pid=PIXEL  the Conversions API: Authorization: Bearer KEY,
                                Content-Type: application/json, body {"events":[...]}.
                                Enforces every rule of docs/conversions-api.md;
                                401 bad key, 403 unknown pixel, 415 content type,
                                413 too large, 400 invalid batch (nothing saved),
                                200 {"events_received":N}.
  GET     /_sim/events          accepted, deduplicated events, one JSON object per line
                                (with seq, pixel, id, type, received_at, event)
  GET     /_sim/stats           counters as JSON: requests by status, events accepted,
                                duplicates ignored, batches rejected, validate_only ...
  POST    /_sim/reset           forget events, dedup state and counters
  GET|PUT /_sim/faults          read or replace the fault settings at runtime, e.g.
                                {"fail_rate":1,"status_5xx":503} to start an outage, {} to end it
The /_sim endpoints need no key and are never faulted.

Flags (--name and -name both work):
`

// config is the parsed command line.
type config struct {
	addr                string
	rejectUnknownFields bool
	opts                capisim.Options
}

// pixelList is a repeatable --pixel flag; a value may also hold several ids
// separated by commas.
type pixelList []string

func (p *pixelList) String() string { return strings.Join(*p, ",") }

func (p *pixelList) Set(v string) error {
	for _, id := range strings.Split(v, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			return errors.New("empty pixel id")
		}
		*p = append(*p, id)
	}
	return nil
}

// newFlagSet defines every flag on a new FlagSet writing usage to out.
func newFlagSet(out io.Writer) (*flag.FlagSet, *config) {
	c := &config{}
	fs := flag.NewFlagSet("capisim", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageHeader)
		fs.PrintDefaults()
	}
	o := &c.opts
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8787", "listen on `HOST:PORT` (port 0 picks a free port; the startup line shows it)")
	fs.StringVar(&o.APIKey, "api-key", "", "the API key clients must send as `KEY` in Authorization: Bearer KEY (default $"+envAPIKey+"; never printed)")
	fs.Var((*pixelList)(&o.Pixels), "pixel", "accepted pixel `ID` (repeatable, or comma-separated; at least one); other pids get 403")
	fs.Float64Var(&o.FailRate, "fail-rate", 0, "probability 0..1 of answering --status-5xx (simulated outage)")
	fs.IntVar(&o.Status5xx, "status-5xx", capisim.DefaultStatus5xx, "`STATUS` (500..599) of injected failures")
	fs.Float64Var(&o.ThrottleRate, "throttle-rate", 0, "probability 0..1 of answering 429 with Retry-After")
	fs.DurationVar(&o.RetryAfter, "retry-after", capisim.DefaultRetryAfter, "Retry-After of injected 429s, sent as whole seconds rounded up")
	fs.DurationVar(&o.Latency, "latency", 0, "fixed latency added to every /v1/events request")
	fs.Float64Var(&o.HangRate, "hang-rate", 0, "probability 0..1 that a request is never answered (until the client gives up)")
	fs.Float64Var(&o.AuthFailRate, "auth-fail-rate", 0, "probability 0..1 of answering 401 even with the right key")
	fs.BoolVar(&o.NameFailingEvent, "name-failing-event", false, "name the failing event (events[i] and event_index) in 400 errors; the real API's behaviour is unknown")
	fs.BoolVar(&o.NullSink, "null-sink", false, "accept any well-formed request without checking fields or deduplicating (throughput tests; events counted, not stored)")
	fs.BoolVar(&c.rejectUnknownFields, "reject-unknown-fields", true, "reject fields the contract does not define (false: ignore them; legacy names are always rejected)")
	fs.BoolVar(&o.LenientUserLists, "lenient-user-lists", false, "skip invalid values in user lists (emails_sha256, countries, ...) instead of rejecting the batch")
	fs.IntVar(&o.MaxContents, "max-contents", 0, "reject events with more data.contents items than this (stands in for an undocumented API limit; 0 = no limit)")
	fs.Int64Var(&o.Seed, "seed", 0, "seed of the fault random generator (same seed, same faults for the same requests)")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", capisim.DefaultMaxBodyBytes, "largest request body in `BYTES`; larger gets 413")
	fs.IntVar(&o.MaxStoredEvents, "max-stored-events", 0, "keep at most `N` accepted events for /_sim/events, dropping the oldest (0: all; dedup remembers every id)")
	return fs, c
}

// parse reads args; getenv supplies CAPISIM_API_KEY.
func parse(args []string, out io.Writer, getenv func(string) string) (*config, error) {
	fs, c := newFlagSet(out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.opts.APIKey == "" {
		c.opts.APIKey = getenv(envAPIKey)
	}
	if c.opts.APIKey == "" {
		return nil, errors.New("an API key is required: set " + envAPIKey + " or --api-key")
	}
	if len(c.opts.Pixels) == 0 {
		return nil, errors.New("at least one --pixel is required")
	}
	c.opts.IgnoreUnknownFields = !c.rejectUnknownFields
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, os.Getenv))
}

// run serves until ctx is done and returns the exit status: 0 after a
// clean shutdown (or --help), 1 when serving fails, 2 for bad usage.
func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
	c, err := parse(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "capisim: %v (see capisim --help)\n", err)
		return 2
	}
	sim, err := capisim.New(c.opts)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 2
	}
	logger := log.New(stderr, "capisim: ", log.LstdFlags)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		logger.Printf("listen: %v", err)
		return 1
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	logger.Printf("%s listening on http://%s pixels=%s %s", version, ln.Addr(), strings.Join(c.opts.Pixels, ","), describe(c))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		logger.Printf("serve: %v", err)
		return 1
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	sim.Close() // release hung requests, or Shutdown would wait for them
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Printf("shutdown: %v", err)
		return 1
	}
	st := sim.Stats()
	logger.Printf("stopped: %d events accepted, %d duplicates ignored, %d batches rejected", st.EventsAccepted, st.DuplicatesIgnored, st.BatchesRejected)
	return 0
}

// describe summarizes modes and faults for the startup line (never the key).
func describe(c *config) string {
	o := c.opts
	var parts []string
	add := func(cond bool, s string) {
		if cond {
			parts = append(parts, s)
		}
	}
	add(o.NullSink, "null-sink")
	add(o.NameFailingEvent, "name-failing-event")
	add(o.IgnoreUnknownFields, "ignore-unknown-fields")
	add(o.LenientUserLists, "lenient-user-lists")
	add(o.FailRate > 0, fmt.Sprintf("fail-rate=%g status-5xx=%d", o.FailRate, o.Status5xx))
	add(o.ThrottleRate > 0, fmt.Sprintf("throttle-rate=%g retry-after=%v", o.ThrottleRate, o.RetryAfter))
	add(o.HangRate > 0, fmt.Sprintf("hang-rate=%g", o.HangRate))
	add(o.AuthFailRate > 0, fmt.Sprintf("auth-fail-rate=%g", o.AuthFailRate))
	add(o.Latency > 0, fmt.Sprintf("latency=%v", o.Latency))
	add(o.FailRate+o.ThrottleRate+o.HangRate+o.AuthFailRate > 0, fmt.Sprintf("seed=%d", o.Seed))
	if len(parts) == 0 {
		return "faults=none"
	}
	return strings.Join(parts, " ")
}
