package consumer

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/capi"
)

// Metrics are the relay's Prometheus metrics. Create them once with
// NewMetrics and pass them to every Relay of the process. Labels never carry
// secrets or record content: only topic, partition, pixel-free outcome names,
// classes and HTTP status codes.
type Metrics struct {
	RecordsConsumed    *prometheus.CounterVec // topic
	RecordsFiltered    *prometheus.CounterVec // topic: no rule produced an event
	EventsAccepted     *prometheus.CounterVec // topic
	DeadLettered       *prometheus.CounterVec // topic, class
	DeadLetterFailures prometheus.Counter     // failed dead-letter writes (retried)
	Requests           *prometheus.CounterVec // status ("200", "503", "error")
	Retries            prometheus.Counter     // API attempts after the first
	RequestDuration    prometheus.Histogram   // seconds per HTTP attempt
	BatchEvents        prometheus.Histogram   // events per request
	RequestsInFlight   prometheus.Gauge       // batches being sent
	UnsettledRecords   prometheus.Gauge       // read, not yet settled
	UnsettledBytes     prometheus.Gauge       // their share of the byte budget
	RecordsParked      prometheus.Gauge       // records waiting to retry a transient decode/mapping error
	DeadLettersReduced *prometheus.CounterVec // topic: dead letters written without their value (too large)
	SettleViolations   prometheus.Counter     // misused settle tokens (a bug; ignored, never commits early)
	OldestUnsettledAge prometheus.Gauge       // seconds, by event time
	ExpiresIn          prometheus.Gauge       // seconds before the oldest unsettled event leaves the window
	CommittedOffset    *prometheus.GaugeVec   // topic, partition
	Lag                *prometheus.GaugeVec   // topic, partition: high watermark - committed
	Ready              prometheus.Gauge       // 1 when ready
	ConfigFaults       prometheus.Counter     // 401/403/404 answers
	Commits            *prometheus.CounterVec // result ("ok", "error")
	MapErrors          *prometheus.CounterVec // topic, class (decode, mapping, validation, expired)
	RulesReload        *prometheus.CounterVec // result ("ok", "error")
	RulesLastReloadOK  prometheus.Gauge       // 1 when the last reload succeeded (or none happened)
	registry           prometheus.Registerer
}

// NewMetrics creates the metrics and registers them with reg (nil means a new
// private registry, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := func(c prometheus.Collector) {
		reg.MustRegister(c)
	}
	m := &Metrics{
		RecordsConsumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_records_consumed_total",
			Help: "Records read from Kafka."}, []string{"topic"}),
		RecordsFiltered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_records_filtered_total",
			Help: "Records for which no rule produced an event (settled, not an error)."}, []string{"topic"}),
		EventsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_events_accepted_total",
			Help: "Events the Conversions API accepted (2xx)."}, []string{"topic"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_dead_lettered_total",
			Help: "Dead-letter records written and acknowledged, by error class."}, []string{"topic", "class"}),
		DeadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "capirelay_dead_letter_write_failures_total",
			Help: "Dead-letter writes that failed and will be retried (nothing is committed past them)."}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_api_requests_total",
			Help: "HTTP attempts to the Conversions API, by status code (\"error\" when no response arrived)."}, []string{"status"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "capirelay_api_retries_total",
			Help: "API attempts after the first for the same request."}),
		RequestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "capirelay_api_request_duration_seconds",
			Help: "Duration of one HTTP attempt.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 13)}),
		BatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "capirelay_api_batch_events",
			Help: "Events per API request.", Buckets: []float64{1, 10, 50, 100, 250, 500, 750, 1000}}),
		RequestsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_batches_in_flight",
			Help: "Batches being sent to the API (including retry waits)."}),
		UnsettledRecords: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_unsettled_records",
			Help: "Records read but not yet settled (accepted or dead-lettered)."}),
		UnsettledBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_unsettled_bytes",
			Help: "Bytes of the records read but not yet settled (key, value, headers and a fixed overhead), against relay.max_unsettled_bytes."}),
		RecordsParked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_records_parked",
			Help: "Records whose decoding or mapping failed transiently (a Schema Registry outage), waiting for a retry; their partitions are paused."}),
		DeadLettersReduced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_dead_letters_reduced_total",
			Help: "Dead-letter records written without the source value (and possibly key and headers) because the full record exceeds the dead-letter topic's max.message.bytes."}, []string{"topic"}),
		SettleViolations: prometheus.NewCounter(prometheus.CounterOpts{Name: "capirelay_settle_violations_total",
			Help: "Settle tokens used twice (a bug in the relay: logged, ignored, never moves a commit)."}),
		OldestUnsettledAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_oldest_unsettled_age_seconds",
			Help: "Age, by event time, of the oldest unsettled event (0 when none)."}),
		ExpiresIn: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_oldest_unsettled_expires_in_seconds",
			Help: "Time left before the oldest unsettled event leaves the API's window (7 days minus the safety margin); the full window when nothing is unsettled."}),
		CommittedOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "capirelay_committed_offset",
			Help: "Last offset committed for the partition (the next record to read)."}, []string{"topic", "partition"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "capirelay_consumer_lag",
			Help: "High watermark minus committed offset."}, []string{"topic", "partition"}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_ready",
			Help: "1 when the relay is consuming and the API accepts its credentials."}),
		ConfigFaults: prometheus.NewCounter(prometheus.CounterOpts{Name: "capirelay_api_config_faults_total",
			Help: "API answers 401/403/404: key or pixel wrong. Sending pauses, nothing is dead-lettered."}),
		Commits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_commits_total",
			Help: "Offset commits, by result."}, []string{"result"}),
		MapErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_bad_records_total",
			Help: "Records or events found bad before sending, by class."}, []string{"topic", "class"}),
		RulesReload: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "capirelay_rules_reload_total",
			Help: "Rule reloads (SIGHUP or a changed config file), by result; a failed reload keeps the old rules."}, []string{"result"}),
		RulesLastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "capirelay_rules_last_reload_success",
			Help: "1 when the last rule reload succeeded or none happened, 0 when it failed (the old rules stay in force)."}),
		registry: reg,
	}
	for _, c := range []prometheus.Collector{m.RecordsConsumed, m.RecordsFiltered, m.EventsAccepted, m.DeadLettered,
		m.DeadLetterFailures, m.Requests, m.Retries, m.RequestDuration, m.BatchEvents, m.RequestsInFlight,
		m.UnsettledRecords, m.UnsettledBytes, m.RecordsParked, m.DeadLettersReduced, m.SettleViolations, m.OldestUnsettledAge, m.ExpiresIn, m.CommittedOffset, m.Lag, m.Ready, m.ConfigFaults, m.Commits, m.MapErrors, m.RulesReload, m.RulesLastReloadOK} {
		f(c)
	}
	m.RulesLastReloadOK.Set(1)
	return m
}

// ObserveRequest records one API attempt; pass it as capi.Config.OnRequest.
func (m *Metrics) ObserveRequest(info capi.RequestInfo) {
	status := "error"
	if info.Status != 0 {
		status = strconv.Itoa(info.Status)
	}
	m.Requests.WithLabelValues(status).Inc()
	if info.Attempt > 1 {
		m.Retries.Inc()
	}
	m.RequestDuration.Observe(info.Duration.Seconds())
	m.BatchEvents.Observe(float64(info.Events))
	if info.Class == capi.ClassConfig {
		m.ConfigFaults.Inc()
	}
}

// initTopics creates the per-topic series at zero, so dashboards and alerts
// see every series from the start (a counter that appears only on its first
// increment hides that increment from rate()).
func (m *Metrics) initTopics(topics []string) {
	for _, t := range topics {
		m.RecordsConsumed.WithLabelValues(t)
		m.RecordsFiltered.WithLabelValues(t)
		m.EventsAccepted.WithLabelValues(t)
		m.DeadLettersReduced.WithLabelValues(t)
		for _, c := range []string{ClassDecode, ClassMapping, ClassValidation, ClassExpired, ClassRejected} {
			m.DeadLettered.WithLabelValues(t, c)
			if c != ClassRejected {
				m.MapErrors.WithLabelValues(t, c)
			}
		}
	}
	for _, r := range []string{"ok", "error"} {
		m.Commits.WithLabelValues(r)
		m.RulesReload.WithLabelValues(r)
	}
}
