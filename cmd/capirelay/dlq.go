package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/consumer"
)

func init() {
	commands = append(commands, command{"dlq", "dead-letter tools: `dlq redrive` re-sends dead-lettered records with the current rules", runDLQ})
}

// redriveReport is the summary of a redrive; --report writes it as JSON.
type redriveReport struct {
	DeadLetterTopic string `json:"dead_letter_topic"`
	Group           string `json:"group"`
	ValidateOnly    bool   `json:"validate_only"`
	// ByClass is keyed by the class the record was dead-lettered with:
	// what now succeeded (accepted/filtered) and what failed again.
	ByClass map[string]topicReport `json:"by_class"`
	Seconds float64                `json:"seconds"`
}

func runDLQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "redrive" {
		fmt.Fprintln(stderr, "usage: capirelay dlq redrive --config FILE [--from T] [--to T] [--validate-only] [--report FILE]")
		return 2
	}
	fs := flag.NewFlagSet("dlq redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (required)")
	fromS := fs.String("from", "", "only records dead-lettered at or after T (duration back from now or RFC 3339); applies when the redrive group has no progress yet")
	toS := fs.String("to", "", "only records dead-lettered before T; default: the topic's end when the redrive starts")
	group := fs.String("group", "", "consumer group that tracks redrive progress (default: <kafka.group>-redrive)")
	validateOnly := fs.Bool("validate-only", false, "dry run: send with validate_only, write nothing, commit nothing")
	reportPath := fs.String("report", "", "write the summary as JSON to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: capirelay dlq redrive --config FILE [--from T] [--to T] [--validate-only] [--report FILE]

Reads the dead-letter topic, rebuilds each record's original (source topic,
key, value, headers), maps it with the current rules and sends it. Records
that fail again are dead-lettered again with their attempt count raised.
Progress is committed in its own consumer group, so a redrive can be stopped
(SIGTERM drains) and resumed; it stops at the topic's end as of its start.
The summary is per original error class: what now succeeded, what failed again.

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fs.Usage()
		return 2
	}
	now := time.Now()
	var from, to time.Time
	var err error
	if *fromS != "" {
		if from, err = parseTime(*fromS, now); err != nil {
			fmt.Fprintln(stderr, "--from:", err)
			return 2
		}
	}
	if *toS != "" {
		if to, err = parseTime(*toS, now); err != nil {
			fmt.Fprintln(stderr, "--to:", err)
			return 2
		}
	}
	s, err := loadSetup(*cfgPath, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s.limitMemory(slog.New(slog.DiscardHandler))
	if *group == "" {
		*group = s.kafka.Group + "-redrive"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := redrive(ctx, s, redriveOptions{group: *group, from: from, to: to, validateOnly: *validateOnly || s.api.ValidateOnly, out: stdout})
	if rep != nil {
		printRedriveSummary(stdout, rep)
	}
	return finish("dlq redrive", rep != nil, rep, *reportPath, err, stderr)
}

type redriveOptions struct {
	group        string
	from, to     time.Time
	validateOnly bool
	out          io.Writer
}

func redrive(ctx context.Context, s *setup, o redriveOptions) (*redriveReport, error) {
	dlq := s.kafka.DeadLetterTopic
	cl, err := kgo.NewClient(s.conn...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	if o.to.IsZero() {
		ends, err = adm.ListCommittedOffsets(ctx, dlq)
	} else {
		ends, err = adm.ListOffsetsAfterMilli(ctx, o.to.UnixMilli(), dlq)
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", dlq, err)
	}
	end := map[string]map[int32]int64{dlq: {}}
	var ferr error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			ferr = fmt.Errorf("%s[%d]: %w", e.Topic, e.Partition, e.Err)
		}
		end[dlq][e.Partition] = e.Offset
	})
	if ferr != nil {
		return nil, ferr
	}
	ccfg := s.consumerConfig([]string{dlq})
	ccfg.Group = o.group
	ccfg.AllowDeadLetterSource = true
	ccfg.End = end
	ccfg.StartAfter = o.from
	if o.from.IsZero() {
		ccfg.StartAtEnd = false
	}
	if o.validateOnly {
		// A dry run commits nothing: read the partitions from where the
		// redrive group stands (or --from) without joining it.
		starts, err := redriveStarts(ctx, adm, o.group, dlq, o.from, end[dlq])
		if err != nil {
			return nil, err
		}
		ccfg.Group, ccfg.Partitions = "", map[string]map[int32]int64{dlq: starts}
	}
	counter := newOutcomeCounter(func(r *kgo.Record) string {
		if info, ok := consumer.Redriven(r); ok && info.Class != "" {
			return info.Class
		}
		return "unknown"
	})
	deps := s.deps(s.newAdapter())
	deps.ValidateOnly, deps.DryRun, deps.Unwrap = o.validateOnly, o.validateOnly, consumer.Unwrap
	deps.Logger, deps.OnOutcome = newLogger(io.Discard, "text", "error"), counter.observe
	relay, err := consumer.New(ccfg, deps)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.out, "redriving %s (group %s)%s\n", dlq, o.group, map[bool]string{true: " with validate_only", false: ""}[o.validateOnly])
	start := time.Now()
	err = relay.Run(ctx, nil)
	rep := &redriveReport{DeadLetterTopic: dlq, Group: o.group, ValidateOnly: o.validateOnly, ByClass: counter.snapshot(), Seconds: time.Since(start).Seconds()}
	if err == nil && ctx.Err() != nil {
		err = errors.New("interrupted: progress up to here is committed; run again to resume")
	}
	return rep, err
}

// redriveStarts returns where a dry run starts: the redrive group's
// committed offsets, else the first record at or after from, else the start.
func redriveStarts(ctx context.Context, adm *kadm.Client, group, topic string, from time.Time, end map[int32]int64) (map[int32]int64, error) {
	starts := map[int32]int64{}
	for p := range end {
		starts[p] = 0
	}
	if !from.IsZero() {
		after, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
		if err != nil {
			return nil, err
		}
		after.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset >= 0 {
				starts[o.Partition] = o.Offset
			}
		})
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, err
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			starts[o.Partition] = o.At
		}
	})
	return starts, nil
}

func printRedriveSummary(w io.Writer, r *redriveReport) {
	fmt.Fprintf(w, "\nredrive summary (%.1fs)%s\n", r.Seconds, map[bool]string{true: " [validate_only: nothing saved, nothing committed]", false: ""}[r.ValidateOnly])
	fmt.Fprintf(w, "  %-14s %10s %9s %14s\n", "was", "accepted", "filtered", "failed again")
	for _, c := range slices.Sorted(maps.Keys(r.ByClass)) {
		tr := r.ByClass[c]
		fmt.Fprintf(w, "  %-14s %10d %9d %14d", c, tr.Accepted, tr.Filtered, tr.DeadLettered+tr.Expired)
		if len(tr.ByClass) > 0 {
			fmt.Fprintf(w, "  (now: %v)", tr.ByClass)
		}
		fmt.Fprintln(w)
	}
}
