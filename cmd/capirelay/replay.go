package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/consumer"
)

func init() {
	commands = append(commands, command{"replay", "backfill: re-send a time range of topics within the API's 7-day window", runReplay})
}

// parseTime reads T: a duration back from now ("72h", "6d", "90m", "1d12h")
// or an RFC 3339 time.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration back from now (72h, 6d, 1d12h) nor an RFC 3339 time (2026-11-20T00:00:00Z)", s)
	}
	return now.Add(-d), nil
}

// parseAgo is time.ParseDuration plus a leading whole-days part ("6d",
// "1d12h").
func parseAgo(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, errors.New("bad days")
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return days + d, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// topicReport is one topic's line of a replay or redrive summary.
type topicReport struct {
	Records int64 `json:"records"`
	// SkippedBeforeCutoff counts records a clamped --from skipped: their
	// record time is before the window's cutoff, so their events are
	// expired; they are included in Expired.
	SkippedBeforeCutoff int64            `json:"skipped_before_cutoff,omitempty"`
	Accepted            int64            `json:"events_accepted"`
	Rejected            int64            `json:"rejected"`
	Expired             int64            `json:"expired"`
	Filtered            int64            `json:"filtered"`
	DeadLettered        int64            `json:"dead_lettered"`
	ByClass             map[string]int64 `json:"dead_lettered_by_class,omitempty"`
}

// outcomeCounter builds per-key reports from the relay's outcome hook.
type outcomeCounter struct {
	mu  sync.Mutex
	key func(*kgo.Record) string
	m   map[string]*topicReport
}

func newOutcomeCounter(key func(*kgo.Record) string) *outcomeCounter {
	return &outcomeCounter{key: key, m: map[string]*topicReport{}}
}

func (c *outcomeCounter) get(k string) *topicReport {
	r := c.m[k]
	if r == nil {
		r = &topicReport{ByClass: map[string]int64{}}
		c.m[k] = r
	}
	return r
}

func (c *outcomeCounter) observe(rec *kgo.Record, o consumer.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.get(c.key(rec))
	switch o.Kind {
	case "accepted":
		r.Accepted++
	case "expired":
		r.Expired++
	case "filtered":
		r.Filtered++
	case "dead_lettered":
		r.DeadLettered++
		r.ByClass[o.Class]++
		switch o.Class {
		case consumer.ClassRejected:
			r.Rejected++
		case consumer.ClassExpired:
			r.Expired++
		}
	}
}

func (c *outcomeCounter) snapshot() map[string]topicReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]topicReport, len(c.m))
	for k, v := range c.m {
		cp := *v
		cp.ByClass = make(map[string]int64, len(v.ByClass))
		for kk, vv := range v.ByClass {
			cp.ByClass[kk] = vv
		}
		out[k] = cp
	}
	return out
}

// replayReport is the summary of a replay; --report writes it as JSON.
type replayReport struct {
	From         time.Time              `json:"from"`
	To           *time.Time             `json:"to,omitempty"`
	Cutoff       time.Time              `json:"cutoff"`
	Clamped      bool                   `json:"clamped"`
	ValidateOnly bool                   `json:"validate_only"`
	Topics       map[string]topicReport `json:"topics"`
	Seconds      float64                `json:"seconds"`
}

func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (required)")
	fromS := fs.String("from", "", "start: a duration back from now (72h, 6d) or an RFC 3339 time (required)")
	toS := fs.String("to", "", "end (exclusive), same forms; default: each partition's end when the replay starts")
	var topics multiFlag
	fs.Var(&topics, "topic", "topic to replay (repeatable; default: every topic of the config)")
	validateOnly := fs.Bool("validate-only", false, "send with validate_only: true: the API checks every event and saves nothing; nothing is dead-lettered")
	reportPath := fs.String("report", "", "write the summary as JSON to this file")
	rps := fs.Float64("rate", 0, "at most this many API requests per second (0: no limit); keeps a backfill from starving the live relay")
	dlExpired := fs.Bool("dead-letter-expired", false, "dead-letter events found outside the window (class expired) instead of only counting them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: capirelay replay --config FILE --from T [--to T] [--topic NAME]... [--validate-only] [--rate N] [--report FILE]

Re-reads a time range of the config's topics and sends their events again with
the same rules, validation, batching, isolation and retries as "run". Start
offsets come from record timestamps (Kafka's list-offsets by time); the end is
each partition's end offset when the replay starts (or --to), so it always
terminates. It uses no consumer group and commits nothing: the live relay's
offsets are never touched, and it can run beside it. Event ids are the same as
the first time, so a replay is safe to repeat: the API ignores duplicates.

A --from older than the API's window (7 days minus relay.event_age_margin) is
clamped to it; events older than the window when they would be sent are
counted as expired and not sent.

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || *fromS == "" {
		fs.Usage()
		return 2
	}
	now := time.Now()
	from, err := parseTime(*fromS, now)
	if err != nil {
		fmt.Fprintln(stderr, "--from:", err)
		return 2
	}
	var to time.Time
	if *toS != "" {
		if to, err = parseTime(*toS, now); err != nil {
			fmt.Fprintln(stderr, "--to:", err)
			return 2
		}
		if !to.After(from) {
			fmt.Fprintln(stderr, "--to must be after --from")
			return 2
		}
	}
	s, err := loadSetup(*cfgPath, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s.limitMemory(slog.New(slog.DiscardHandler))
	if len(topics) == 0 {
		topics = s.mapper.Topics()
	}
	known := map[string]bool{}
	for _, t := range s.mapper.Topics() {
		known[t] = true
	}
	for _, t := range topics {
		if !known[t] {
			fmt.Fprintf(stderr, "--topic %s: no rules for it in %s (topics: %s)\n", t, *cfgPath, strings.Join(s.mapper.Topics(), ", "))
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := replay(ctx, s, replayOptions{topics: topics, from: from, to: to, validateOnly: *validateOnly || s.api.ValidateOnly,
		rps: *rps, deadLetterExpired: *dlExpired, progress: stdout, log: newLogger(stderr, s.relay.LogFormat, "error")})
	if rep != nil {
		printReplaySummary(stdout, rep)
	}
	return finish("replay", rep != nil, rep, *reportPath, err, stderr)
}

// finish writes the JSON report (when there is one and a path was given),
// prints err, and returns the exit code: 1 on any error.
func finish(what string, haveReport bool, report any, path string, err error, stderr io.Writer) int {
	if haveReport && path != "" {
		b, _ := json.MarshalIndent(report, "", "  ")
		if werr := os.WriteFile(path, append(b, '\n'), 0o644); werr != nil {
			fmt.Fprintln(stderr, werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, what+":", err)
		return 1
	}
	return 0
}

type replayOptions struct {
	topics            []string
	from, to          time.Time
	validateOnly      bool
	rps               float64
	deadLetterExpired bool
	progress          io.Writer
	log               *slog.Logger
}

// replay runs one bounded replay and returns its report.
func replay(ctx context.Context, s *setup, o replayOptions) (*replayReport, error) {
	now := time.Now()
	cutoffMS, _ := s.validator.Window(now)
	cutoff := time.UnixMilli(cutoffMS).UTC()
	rep := &replayReport{From: o.from.UTC(), Cutoff: cutoff, ValidateOnly: o.validateOnly, Topics: map[string]topicReport{}}
	if !o.to.IsZero() {
		t := o.to.UTC()
		rep.To = &t
	}
	from := o.from
	var skipped map[string]int64
	if from.Before(cutoff) {
		rep.Clamped = true
		fmt.Fprintf(o.progress, "--from %s is older than the API's window: clamped to the cutoff %s (7 days minus %v margin)\n",
			from.UTC().Format(time.RFC3339), cutoff.Format(time.RFC3339), s.relay.EventAgeMargin)
		from = cutoff
	}
	cl, err := kgo.NewClient(s.conn...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), o.topics...)
	if err != nil {
		return nil, fmt.Errorf("list offsets after %s: %w", from.Format(time.RFC3339), err)
	}
	var ends kadm.ListedOffsets
	if o.to.IsZero() {
		ends, err = adm.ListCommittedOffsets(ctx, o.topics...)
	} else {
		ends, err = adm.ListOffsetsAfterMilli(ctx, o.to.UnixMilli(), o.topics...)
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	if rep.Clamped {
		// Count what the clamp skips: records between --from and the
		// cutoff, or --to when that is earlier (the records after it are
		// not part of the replay).
		orig, err := adm.ListOffsetsAfterMilli(ctx, o.from.UnixMilli(), o.topics...)
		if err != nil {
			return nil, fmt.Errorf("list offsets after %s: %w", o.from.Format(time.RFC3339), err)
		}
		skipped = map[string]int64{}
		orig.Each(func(lo kadm.ListedOffset) {
			st, ok := starts.Lookup(lo.Topic, lo.Partition)
			if lo.Err != nil || !ok || st.Err != nil || lo.Offset < 0 {
				return
			}
			stop := st.Offset
			if e, ok := ends.Lookup(lo.Topic, lo.Partition); ok && e.Err == nil && e.Offset >= 0 && e.Offset < stop {
				stop = e.Offset
			}
			if stop > lo.Offset {
				skipped[lo.Topic] += stop - lo.Offset
			}
		})
	}
	parts := map[string]map[int32]int64{}
	end := map[string]map[int32]int64{}
	totals := map[string]int64{}
	var firstErr error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			firstErr = fmt.Errorf("%s[%d]: %w", e.Topic, e.Partition, e.Err)
			return
		}
		st, ok := starts.Lookup(e.Topic, e.Partition)
		startOff := e.Offset
		if ok && st.Err == nil && st.Offset >= 0 && st.Offset < e.Offset {
			startOff = st.Offset
		}
		if parts[e.Topic] == nil {
			parts[e.Topic], end[e.Topic] = map[int32]int64{}, map[int32]int64{}
		}
		parts[e.Topic][e.Partition] = startOff
		end[e.Topic][e.Partition] = e.Offset
		totals[e.Topic] += e.Offset - startOff
	})
	if firstErr != nil {
		return nil, firstErr
	}
	for _, t := range o.topics {
		if _, ok := parts[t]; !ok {
			return nil, fmt.Errorf("topic %s does not exist on the cluster", t)
		}
	}
	var sum int64
	for _, n := range totals {
		sum += n
	}
	fmt.Fprintf(o.progress, "replaying %d records of %s from %s (cutoff %s)%s\n", sum, strings.Join(o.topics, ", "),
		from.UTC().Format(time.RFC3339), cutoff.Format(time.RFC3339), map[bool]string{true: " with validate_only", false: ""}[o.validateOnly])

	api := s.client
	if o.rps > 0 {
		ccfg := s.clientConfig()
		ccfg.Limiter = rate.NewLimiter(rate.Limit(o.rps), 1)
		if api, err = capi.NewClient(ccfg); err != nil {
			return nil, err
		}
	}
	counter := newOutcomeCounter(func(r *kgo.Record) string { return r.Topic })
	ccfg := s.consumerConfig(o.topics)
	ccfg.Group, ccfg.Partitions, ccfg.End = "", parts, end
	deps := s.deps(s.newAdapter())
	deps.API, deps.ValidateOnly, deps.DryRun, deps.DropExpired = api, o.validateOnly, o.validateOnly, !o.deadLetterExpired
	deps.Logger, deps.OnOutcome = o.log, counter.observe
	relay, err := consumer.New(ccfg, deps)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx, nil) }()
	bar := newProgress(o.progress, o.topics, totals)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err = <-done:
			bar.update(relay.Progress(), counter.snapshot(), time.Since(start), true)
			rep.Seconds = time.Since(start).Seconds()
			snap := counter.snapshot()
			p := relay.Progress()
			for _, t := range o.topics {
				tr := snap[t]
				tr.Records = p.ConsumedByTopic[t]
				tr.SkippedBeforeCutoff = skipped[t]
				tr.Expired += skipped[t]
				rep.Topics[t] = tr
			}
			if err == nil && ctx.Err() != nil {
				err = errors.New("interrupted: the summary covers what was done; re-running the same replay is safe")
			}
			return rep, err
		case <-tick.C:
			bar.update(relay.Progress(), counter.snapshot(), time.Since(start), false)
		}
	}
}

// progress draws per-topic progress bars on a terminal, and a line every few
// seconds elsewhere.
type progress struct {
	w       io.Writer
	topics  []string
	totals  map[string]int64
	tty     bool
	drawn   int
	lastLog time.Time
}

func newProgress(w io.Writer, topics []string, totals map[string]int64) *progress {
	return &progress{w: w, topics: topics, totals: totals, tty: isTerminal(w), lastLog: time.Now()}
}

func (p *progress) update(pr consumer.Progress, snap map[string]topicReport, el time.Duration, final bool) {
	if !p.tty && !final && time.Since(p.lastLog) < 5*time.Second {
		return
	}
	p.lastLog = time.Now()
	if p.tty && p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA", p.drawn)
	}
	p.drawn = 0
	for _, t := range p.topics {
		done, total := pr.ConsumedByTopic[t], p.totals[t]
		frac := 1.0
		if total > 0 {
			frac = min(float64(done)/float64(total), 1)
		}
		rate := float64(snap[t].Accepted) / max(el.Seconds(), 0.001)
		eta := "-"
		if done > 0 && done < total {
			eta = (time.Duration(float64(el) / float64(done) * float64(total-done))).Round(time.Second).String()
		}
		const width = 30
		n := int(frac * width)
		line := fmt.Sprintf("%-24s [%s%s] %d/%d records  %.0f events/s  ETA %s", t, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, rate, eta)
		if p.tty {
			fmt.Fprintf(p.w, "%s\x1b[K\n", line)
			p.drawn++
		} else if !final {
			fmt.Fprintln(p.w, line)
		}
	}
}

func printReplaySummary(w io.Writer, r *replayReport) {
	fmt.Fprintf(w, "\nreplay summary (%.1fs)%s\n", r.Seconds, map[bool]string{true: " [validate_only: nothing saved]", false: ""}[r.ValidateOnly])
	fmt.Fprintf(w, "  window cutoff: %s", r.Cutoff.Format(time.RFC3339))
	if r.Clamped {
		fmt.Fprintf(w, " (--from %s was clamped to it)", r.From.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %-24s %10s %10s %9s %8s %9s %14s\n", "topic", "records", "accepted", "rejected", "expired", "filtered", "dead-lettered")
	for _, t := range slices.Sorted(maps.Keys(r.Topics)) {
		tr := r.Topics[t]
		fmt.Fprintf(w, "  %-24s %10d %10d %9d %8d %9d %14d\n", t, tr.Records, tr.Accepted, tr.Rejected, tr.Expired, tr.Filtered, tr.DeadLettered)
	}
}
