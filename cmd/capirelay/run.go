package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/capirelay/capirelay/consumer"
)

func init() {
	commands = append(commands, command{"run", "run the relay: consume, map, send, commit after acceptance", runRun})
}

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: capirelay run --config FILE

Consumes the config's topics in a consumer group, maps each record with the
rules, sends the events in batches to the Conversions API and commits offsets
only after every event of a record is accepted or dead-lettered.

Signals: SIGTERM or SIGINT drains (stop fetching, send what is batched, wait
up to relay.drain_timeout, commit, leave the group) and exits 0; a second
signal abandons the drain at once (nothing unsettled is committed) and exits 1.
Endpoints on relay.listen: /healthz, /readyz, /metrics.

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fs.Usage()
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := consumer.NewMetrics(reg)
	s, err := loadSetup(*cfgPath, metrics)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := newLogger(stderr, s.relay.LogFormat, s.relay.LogLevel)
	s.warnStart(logger)
	s.limitMemory(logger)

	ctx, stop := context.WithCancel(context.Background())
	force, forceStop := context.WithCancel(context.Background())
	defer stop()
	defer forceStop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	forced := make(chan struct{})
	go func() {
		sig := <-sigs
		logger.Info("signal received: draining", "signal", sig.String(), "deadline", s.relay.DrainTimeout)
		stop()
		sig = <-sigs
		logger.Warn("second signal: abandoning the drain; unsettled records are not committed", "signal", sig.String())
		close(forced)
		forceStop()
	}()

	relay, adapter, err := s.newRelay(logger, metrics)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if s.relay.Listen != "off" {
		srv, addr, err := serveOps(s.relay.Listen, reg, relay.Ready)
		if err != nil {
			fmt.Fprintf(stderr, "relay.listen %s: %v\n", s.relay.Listen, err)
			return 1
		}
		defer srv.Close()
		logger.Info("operational endpoints", "addr", addr, "paths", "/healthz /readyz /metrics")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadLoop(ctx, reloader{path: *cfgPath, cur: s, adapter: adapter, relay: relay, m: metrics, log: logger,
		hup: hup, every: s.relay.ReloadCheckInterval})
	logger.Info("capirelay starting", "version", version, "topics", s.mapper.Topics(), "group", s.kafka.Group,
		"dead_letter_topic", s.kafka.DeadLetterTopic, "validate_only", s.api.ValidateOnly)
	if err := relay.Run(ctx, force); err != nil {
		logger.Error("relay stopped with an error", "err", err)
		return 1
	}
	select {
	case <-forced:
		logger.Warn("stopped without a full drain")
		return 1
	default:
	}
	logger.Info("capirelay stopped")
	return 0
}

// warnStart logs, at start, the settings that must not go unnoticed.
func (s *setup) warnStart(logger *slog.Logger) {
	if s.kafka.TLS.InsecureSkipVerify {
		logger.Warn("kafka.tls.insecure_skip_verify is set: broker certificates are NOT verified; never use this in production")
	}
	if s.api.ValidateOnly {
		logger.Warn("api.validate_only is set: the API validates every event and saves nothing (dry run)")
	}
	if s.registry.TLS.InsecureSkipVerify {
		logger.Warn("schema_registry.tls.insecure_skip_verify is set: registry certificates are NOT verified; never use this in production")
	}
}

// serveOps starts the operational HTTP server: /healthz (the process serves
// requests), /readyz (the relay consumes and the API accepts its credentials),
// /metrics (Prometheus).
func serveOps(addr string, reg *prometheus.Registry, ready func() bool) (*http.Server, string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: not consuming yet, or the Conversions API refuses the key or pixel (see logs)", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("operational server", "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	lvl, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// reloader reloads the rules when the config file changes (a ConfigMap
// update) or on SIGHUP.
type reloader struct {
	path    string
	cur     *setup
	adapter *mapperAdapter
	relay   *consumer.Relay
	m       *consumer.Metrics
	log     *slog.Logger
	hup     <-chan os.Signal
	every   time.Duration
}

// reloadLoop checks the config file every r.every (content hash, so a
// ConfigMap's symlink swap is seen) and reloads on SIGHUP. A reload compiles
// and checks the new rules first; if that fails the old rules stay, the error
// is logged and capirelay_rules_last_reload_success drops to 0. Only the
// topics section is reloaded: changes to kafka, api, relay or schema_registry
// need a restart and are reported as such (new avro topics need the
// schema_registry urls the relay started with).
func reloadLoop(ctx context.Context, r reloader) {
	if r.every <= 0 {
		r.every = 5 * time.Second
	}
	last := fileHash(r.path)
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		var why, h string
		select {
		case <-ctx.Done():
			return
		case <-r.hup:
			why, h = "SIGHUP", fileHash(r.path)
		case <-tick.C:
			if h = fileHash(r.path); h == "" || h == last {
				continue
			}
			why = "config file changed"
		}
		last = h
		r.reload(ctx, why)
	}
}

func (r *reloader) reload(ctx context.Context, why string) {
	next, err := parseSetup(r.path)
	if err == nil && r.cur.decoder == nil && next.hasAvro() {
		// The decoder is built at start, from the schema_registry section
		// of then: without it every record of the topic would be
		// dead-lettered.
		err = fmt.Errorf("%s: the avro topics (%s) need a schema registry, but the relay started without schema_registry.urls (the schema_registry section takes effect only after a restart)",
			r.path, strings.Join(next.avroTopics(), ", "))
	}
	if err != nil {
		r.m.RulesReload.WithLabelValues("error").Inc()
		r.m.RulesLastReloadOK.Set(0)
		r.log.Error("rule reload failed; the previous rules stay in force", "why", why, "err", err.Error())
		return
	}
	if !sameSections(r.cur, next) {
		r.log.Warn("the kafka, api, relay or schema_registry section changed: those take effect only after a restart; reloading the topics section only", "why", why)
	}
	// The new rules go live before the topics change, so that the first
	// records of an added topic find them; if the topics cannot change, the
	// previous rules are put back.
	undo := r.adapter.swap(next.mapper)
	added, removed, err := r.relay.SetTopics(ctx, next.mapper.Topics())
	if err != nil {
		undo()
		r.m.RulesReload.WithLabelValues("error").Inc()
		r.m.RulesLastReloadOK.Set(0)
		r.log.Error("rule reload: changing topics failed; the previous rules stay in force", "why", why, "err", err.Error())
		return
	}
	r.m.RulesReload.WithLabelValues("ok").Inc()
	r.m.RulesLastReloadOK.Set(1)
	r.log.Info("rules reloaded", "why", why, "topics", next.mapper.Topics(), "added", added, "removed", removed)
}

func fileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sameSections reports whether the non-reloadable sections are unchanged.
func sameSections(a, b *setup) bool {
	return fmt.Sprintf("%+v|%+v|%+v|%+v", a.kafka, a.api, a.relay, a.registry) == fmt.Sprintf("%+v|%+v|%+v|%+v", b.kafka, b.api, b.relay, b.registry)
}
