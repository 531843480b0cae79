package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Kafka is the kafka section: how to reach the cluster, the consumer group
// and the dead-letter topic.
type Kafka struct {
	// Brokers are the seed brokers (host:port). Required.
	Brokers []string `yaml:"brokers"`
	// ClientID is sent to the brokers (default "capirelay").
	ClientID string `yaml:"client_id"`
	// Group is the consumer group id (default "capirelay").
	Group string `yaml:"group"`
	// InstanceIDEnv names an environment variable holding the static group
	// member id (Kafka's group.instance.id), e.g. the pod name of a
	// StatefulSet; static membership makes rolling restarts rebalance-free.
	InstanceIDEnv string `yaml:"instance_id_env"`
	// SessionTimeout is Kafka's session.timeout.ms: how long the group
	// waits for a member that stopped heartbeating (a crashed pod) before
	// its partitions move (default 45s, the client's default).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is Kafka's rebalance.timeout.ms: how long members
	// have to finish revoking (default 60s). Keep relay.revoke_timeout well
	// under it.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// Start is where a group with no committed offset starts: "earliest"
	// (default: backfill what the topic holds) or "latest".
	Start string `yaml:"start"`
	// DeadLetterTopic receives records that can never be accepted. Required.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// TLS configures TLS to the brokers.
	TLS TLS `yaml:"tls"`
	// SASL configures SASL authentication.
	SASL SASL `yaml:"sasl"`
}

// TLS is a TLS client configuration.
type TLS struct {
	// Enabled turns TLS on (implied by any other field).
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs to trust (default: the system pool).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key (mTLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. Never use it in
	// production: the relay logs a loud warning at start when it is set.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is in use.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// ClientConfig builds the TLS client configuration of t (TLS 1.2 at least),
// reading the CA bundle and the client certificate now: a missing or invalid
// file is an error here, not at the first connection. Errors name the key
// ("tls.ca_file: ...").
func (t TLS) ClientConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, warned about at start
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// SASL is a SASL configuration. The password comes from an environment
// variable or a file, never from the config file itself.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
}

// API is the api section: the Conversions API endpoint and credentials.
type API struct {
	// BaseURL defaults to https://bzr.openai.com; set it for a sandbox or
	// the local simulator.
	BaseURL string `yaml:"base_url"`
	// KeyEnv or KeyFile holds the API key (exactly one). Required.
	KeyEnv  string `yaml:"key_env"`
	KeyFile string `yaml:"key_file"`
	// Pixel is the default pixel id, for rules that name none.
	Pixel string `yaml:"pixel"`
	// ValidateOnly sends every request with validate_only: true (a dry run:
	// the API validates and saves nothing). Never the default.
	ValidateOnly bool `yaml:"validate_only"`
	// IntegrationSource is sent on every request (default "capirelay").
	IntegrationSource string `yaml:"integration_source"`
	// RequestTimeout bounds one HTTP attempt (default 30s).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// InitialBackoff and MaxBackoff bound transient retries (defaults 250ms,
	// 30s). Transient failures are retried until they succeed or the relay
	// stops; they never dead-letter.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// Isolation is how a rejected batch is narrowed down: "split" (default)
	// or "probe" (validate_only probes, then one real request).
	Isolation string `yaml:"isolation"`
}

// Relay is the relay section: batching, concurrency, time limits and the
// operational endpoints.
type Relay struct {
	// MaxBatchEvents caps events per request (1..1000, default 1000).
	MaxBatchEvents int `yaml:"max_batch_events"`
	// MaxBatchBytes caps a request body (default 4 MiB).
	MaxBatchBytes int `yaml:"max_batch_bytes"`
	// Linger is how long a non-full batch waits (default 100ms).
	Linger time.Duration `yaml:"linger"`
	// Concurrency is the number of requests in flight (default 8).
	Concurrency int `yaml:"concurrency"`
	// MaxUnsettledRecords bounds memory (default 20000).
	MaxUnsettledRecords int `yaml:"max_unsettled_records"`
	// MaxUnsettledBytes bounds memory in bytes: polling pauses while the
	// records read but not settled hold this much (default 64 MiB; see
	// consumer.Config.MaxUnsettledBytes).
	MaxUnsettledBytes int64 `yaml:"max_unsettled_bytes"`
	// CommitInterval (default 1s), RevokeTimeout (15s), DrainTimeout (30s),
	// ConfigRetryInterval (30s): see the consumer package.
	CommitInterval      time.Duration `yaml:"commit_interval"`
	RevokeTimeout       time.Duration `yaml:"revoke_timeout"`
	DrainTimeout        time.Duration `yaml:"drain_timeout"`
	ConfigRetryInterval time.Duration `yaml:"config_retry_interval"`
	// EventAgeMargin is subtracted from the API's 7-day window: events older
	// than 7 days minus the margin are dead-lettered as expired instead of
	// being sent, so that retries and queueing cannot push them over the
	// API's limit (default 1h).
	EventAgeMargin time.Duration `yaml:"event_age_margin"`
	// MaxFuture is how far ahead an event may be (default 10m, the API's).
	MaxFuture time.Duration `yaml:"max_future"`
	// ReloadCheckInterval is how often the config file is checked for
	// changed rules (default 5s); SIGHUP reloads at once. Only the topics
	// section is reloaded; the others need a restart.
	ReloadCheckInterval time.Duration `yaml:"reload_check_interval"`
	// ExpiryWarning: a warning is logged when the oldest unsettled event has
	// less than this left before it leaves the API's window (default 24h).
	ExpiryWarning time.Duration `yaml:"expiry_warning"`
	// Listen is the address of /healthz, /readyz and /metrics (default
	// ":9090"; "" keeps the default, "off" disables).
	Listen string `yaml:"listen"`
	// LogFormat is "json" (default) or "text"; LogLevel is debug, info
	// (default), warn or error.
	LogFormat string `yaml:"log_format"`
	LogLevel  string `yaml:"log_level"`
}

// DecodeSection decodes the section node n into v (a pointer to one of the
// section structs) strictly: every key must be a known field, and every value
// must have the field's type. Problems are reported with their position,
// field path prefixed by section ("kafka.tls.ca_file").
func DecodeSection(path, section string, n *yaml.Node, v any) Diagnostics {
	var ds Diagnostics
	if n == nil || n.Kind == 0 {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	checkKeys(path, section, n, reflect.TypeOf(v).Elem(), &ds)
	if len(ds) > 0 {
		return ds.Sorted()
	}
	if err := n.Decode(v); err != nil {
		d := SyntaxError(path, err)
		d.Field = section
		d.Message = strings.Replace(d.Message, "YAML syntax: ", "", 1)
		// Point at the value the decoder refused: the parser names only
		// the line, the node on that line has the column and the key.
		if field, at := findLine(n, section, d.Line); at != nil {
			d.Field, d.Line, d.Col = field, at.Line, at.Column
		} else if d.Line == 1 {
			d.Line, d.Col = n.Line, n.Column
		}
		return Diagnostics{d}
	}
	return nil
}

// findLine returns the dotted path and the value node of the first mapping
// value under n that starts on line.
func findLine(n *yaml.Node, prefix string, line int) (string, *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return "", nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Line == line && v.Kind == yaml.ScalarNode {
			return prefix + "." + k.Value, v
		}
		if f, at := findLine(v, prefix+"."+k.Value, line); at != nil {
			return f, at
		}
	}
	return "", nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// checkKeys reports keys of mapping n that t (a struct) has no yaml field for,
// recursing into nested structs.
func checkKeys(path, prefix string, n *yaml.Node, t reflect.Type, ds *Diagnostics) {
	if t.Kind() != reflect.Struct || t == durationType {
		return
	}
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return
		}
		ds.Add(path, n, "", prefix, "must be a mapping")
		return
	}
	fields := map[string]reflect.StructField{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f
		names = append(names, name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			ds.Add(path, k, "", prefix, "unknown key "+strconv.Quote(k.Value)+" (allowed: "+strings.Join(names, ", ")+")")
			continue
		}
		checkKeys(path, prefix+"."+k.Value, v, f.Type, ds)
	}
}
