// Package deploy_test checks the deployment artifacts under deploy/: the Helm
// chart (helm lint, helm template, and assertions on the rendered manifests),
// the Prometheus alert rules (promtool check rules and promtool test rules),
// the Grafana dashboard and the alerts against the relay's metric names, the
// compose stack and the Dockerfile.
//
// helm and promtool are external tools, installed pinned from the Go module
// proxy (see toolInstall). The tests look for them in $HELM / $PROMTOOL, in
// ./.cache/bin of the repository, on $PATH and in $(go env GOPATH)/bin. When a
// tool is absent the tests that need it skip with the install command, unless
// CAPIRELAY_REQUIRE_TOOLS is set (make test sets it): then they fail.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/kafkatest"
	"github.com/capirelay/capirelay/mapping"
)

// Paths, relative to this package's directory (deploy/).
const (
	repoRoot       = ".."
	chartDir       = "helm/capirelay"
	alertsFile     = "prometheus/alerts.yaml"
	alertTestsFile = "prometheus/alerts_test.yaml"
	dashboardFile  = "grafana/capirelay.json"
	composeFile    = "compose/compose.yaml"
	dockerfile     = "Dockerfile"
	webShopRules   = "examples/web-shop/config.yaml"
	signupsRules   = "examples/signups/config.yaml"
	requiredValues = "testdata/helm/required.yaml"

	// kubeVersion is passed to helm: a helm built by `go install` (no
	// release ldflags) assumes Kubernetes v1.20, below the chart's minimum.
	kubeVersion = "1.33.0"
	namespace   = "capirelay"
)

// Sentinel secret values fed to the chart: none may appear in a ConfigMap.
const (
	sentinelAPIKey        = "SENTINEL-api-key-4c1d9e"
	sentinelSASL          = "SENTINEL-sasl-password-77ab02"
	sentinelRegistryPass  = "SENTINEL-registry-password-5e0f31"
	sentinelRegistryToken = "SENTINEL-registry-token-a9c4d8"
)

var sentinels = []string{sentinelAPIKey, sentinelSASL, sentinelRegistryPass, sentinelRegistryToken}

// toolInstall is how each external tool is installed (pinned; the Go module
// proxy serves both).
var toolInstall = map[string]string{
	"helm":     "GOBIN=$PWD/.cache/bin go install helm.sh/helm/v3/cmd/helm@v3.22.0",
	"promtool": "GOBIN=$PWD/.cache/bin go install github.com/prometheus/prometheus/cmd/promtool@v0.316.0",
}

// tool returns the path of an external tool, or skips the test (fails it when
// CAPIRELAY_REQUIRE_TOOLS is set) when the tool is absent.
func tool(t *testing.T, name string) string {
	t.Helper()
	var looked []string
	if p := os.Getenv(strings.ToUpper(name)); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		looked = append(looked, "$"+strings.ToUpper(name)+"="+p)
	}
	local, _ := filepath.Abs(filepath.Join(repoRoot, ".cache", "bin", name))
	looked = append(looked, local)
	if _, err := os.Stat(local); err == nil {
		return local
	}
	looked = append(looked, "$PATH")
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	if gopath != "" {
		p := filepath.Join(filepath.SplitList(gopath)[0], "bin", name)
		looked = append(looked, p)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found (looked at %s); install it from the repository root with:\n\t%s",
		name, strings.Join(looked, ", "), toolInstall[name])
	if os.Getenv("CAPIRELAY_REQUIRE_TOOLS") != "" {
		t.Fatal(msg + "\n(CAPIRELAY_REQUIRE_TOOLS is set: a missing tool is a failure)")
	}
	t.Skip(msg + "\n(set CAPIRELAY_REQUIRE_TOOLS=1 to make this a failure)")
	return ""
}

// run runs a command and returns its stdout, stderr and error.
func run(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestMain(m *testing.M) { kafkatest.Main(m) }

// ---------------------------------------------------------------------------
// Exported metrics

// metricType is the Prometheus type of an exported metric.
type metricType string

const (
	counter   metricType = "counter"
	gauge     metricType = "gauge"
	histogram metricType = "histogram"
)

// exportedMetrics returns the metrics the relay exports, by name and type,
// read from the # TYPE lines of a live /metrics of the real binary (see
// liveMetrics). It is the single source of "what the relay exports" for the
// dashboard and alert checks.
func exportedMetrics(t *testing.T) map[string]metricType {
	t.Helper()
	liveOnce.Do(func() { live, liveErr = liveMetrics(t) })
	if liveErr != nil {
		t.Fatalf("live /metrics: %v", liveErr)
	}
	return live
}

var (
	liveOnce sync.Once
	live     map[string]metricType
	liveErr  error
)

// liveMetrics builds capirelay, runs it against the test broker and the
// simulator with one record to relay, waits until the record is accepted and
// committed, and parses its /metrics.
func liveMetrics(t *testing.T) (map[string]metricType, error) {
	brokers := kafkatest.Brokers(t)
	topic, dlq, group := kafkatest.Topic(t, 1), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	const key, pixel = "sk-deploy-test-0123", "px_deploy"
	sim, err := capisim.New(capisim.Options{APIKey: key, Pixels: []string{pixel}})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "capirelay")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/capirelay").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	cfg := fmt.Sprintf(`kafka: {brokers: [%s], group: %s, dead_letter_topic: %s}
api: {base_url: %q, key_env: DEPLOY_TEST_KEY, pixel: %s}
relay: {listen: "127.0.0.1:0", log_format: text, commit_interval: 100ms, linger: 10ms}
topics:
  - topic: %s
    format: json
    rules:
      - name: lead
        event: {type: lead_created, action_source: offline, id: value.id, timestamp: time.epoch_millis(value.ts)}
`, strings.Join(brokers, ","), group, dlq, srv.URL, pixel, topic)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cl := kafkatest.Client(t)
	v := fmt.Sprintf(`{"id":"deploy-1","ts":%d}`, time.Now().UnixMilli())
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "DEPLOY_TEST_KEY="+key)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addrRE := regexp.MustCompile(`operational endpoints" addr=(\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	var body string
	for {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("relay did not relay and commit the record in 60s; log:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
		m := addrRE.FindStringSubmatch(logs.String())
		if m == nil {
			continue
		}
		resp, err := http.Get("http://" + m[1] + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, `capirelay_commits_total{result="ok"} 1`) || strings.Contains(body, `capirelay_commits_total{result="ok"} 2`) {
			break
		}
	}
	out := map[string]metricType{}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "capirelay_") {
			out[f[2]] = metricType(f[3])
		}
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pendingMetrics are metrics the dashboard or alerts may name ahead of the
// relay change that adds them. Empty: every metric they name must be live.
var pendingMetrics = []string{}

var metricNameRE = regexp.MustCompile(`\bcapirelay_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// rateFuncRE finds range functions meant for counters applied to a capirelay
// metric: rate(capirelay_x...), increase(...), irate(...).
var rateFuncRE = regexp.MustCompile(`\b(rate|irate|increase)\(\s*(capirelay_[a-zA-Z0-9_]+)`)

// resolveMetric maps a series name used in a query to the exported metric
// (histograms expose NAME_bucket, NAME_sum and NAME_count).
func resolveMetric(exported map[string]metricType, name string) (string, bool) {
	if _, ok := exported[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if ok && exported[base] == histogram {
			return base, true
		}
	}
	return "", false
}

// checkExprMetrics reports every capirelay_ metric of expr that the relay does
// not export, and rate/increase applied to a gauge. It returns the metrics
// used.
func checkExprMetrics(t *testing.T, where, expr string, exported map[string]metricType) []string {
	t.Helper()
	var used []string
	for _, name := range metricNameRE.FindAllString(expr, -1) {
		base, ok := resolveMetric(exported, name)
		if !ok {
			t.Errorf("%s: metric %s is not exported by the relay (query: %s)", where, name, expr)
			continue
		}
		used = append(used, base)
	}
	for _, m := range rateFuncRE.FindAllStringSubmatch(expr, -1) {
		base, ok := resolveMetric(exported, m[2])
		if ok && exported[base] == gauge {
			t.Errorf("%s: %s() applied to the gauge %s (query: %s)", where, m[1], m[2], expr)
		}
	}
	return used
}

// dashboardExprs returns every PromQL expression of the dashboard (panel
// targets, nested panels, template variable queries), keyed by a location.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string            `json:"uid"`
		Title  string            `json:"title"`
		Panels []json.RawMessage `json:"panels"`
		Templ  struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("%s: the dashboard needs a uid and a title (provisioning keys on them)", dashboardFile)
	}
	exprs := map[string]string{}
	type panel struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	ids := map[int]string{}
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: panel: %v", dashboardFile, err)
			}
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("%s: panels %q and %q share id %d", dashboardFile, prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q target %s has an empty expression", dashboardFile, p.Title, tg.RefID)
				}
				exprs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templ.List {
		switch q := v.Query.(type) {
		case string:
			exprs["variable "+v.Name] = q
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs["variable "+v.Name] = s
			}
		}
	}
	return exprs
}

// alertRules are the parsed groups of alerts.yaml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t *testing.T) alertRules {
	t.Helper()
	var r alertRules
	readYAML(t, alertsFile, &r)
	return r
}

// TestMetricsNamedAreExported checks that every metric the dashboard and the
// alert rules query is one the relay exports, and that every exported metric
// is shown or alerted on somewhere.
func TestMetricsNamedAreExported(t *testing.T) {
	exported := exportedMetrics(t)
	if len(pendingMetrics) > 0 {
		t.Logf("metrics assumed exported ahead of the relay change that adds them: %s", strings.Join(pendingMetrics, ", "))
	}
	seen := map[string]bool{}
	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("%s: only %d queries found; the dashboard parser is broken or the dashboard is empty", dashboardFile, len(exprs))
	}
	for where, expr := range exprs {
		for _, m := range checkExprMetrics(t, dashboardFile+": "+where, expr, exported) {
			seen[m] = true
		}
	}
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			for _, m := range checkExprMetrics(t, alertsFile+": "+r.Alert+r.Record, r.Expr, exported) {
				seen[m] = true
			}
		}
	}
	var unused []string
	for m := range exported {
		if !seen[m] {
			unused = append(unused, m)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("exported metrics neither on the dashboard nor in an alert: %s", strings.Join(unused, ", "))
	}
}

// TestDashboardShowsWhatOperatorsNeed checks the panels the runbooks refer to.
func TestDashboardShowsWhatOperatorsNeed(t *testing.T) {
	exprs := dashboardExprs(t)
	var all strings.Builder
	for _, e := range exprs {
		all.WriteString(e)
		all.WriteByte('\n')
	}
	text := all.String()
	for what, needle := range map[string]string{
		"throughput by outcome":          "capirelay_events_accepted_total",
		"dead-letter rate by class":      "sum by (class) (rate(capirelay_dead_lettered_total",
		"request latency p50":            "histogram_quantile(0.50, sum by (le) (rate(capirelay_api_request_duration_seconds_bucket",
		"request latency p95":            "histogram_quantile(0.95, sum by (le) (rate(capirelay_api_request_duration_seconds_bucket",
		"request latency p99":            "histogram_quantile(0.99, sum by (le) (rate(capirelay_api_request_duration_seconds_bucket",
		"retries":                        "capirelay_api_retries_total",
		"lag per partition":              "max by (topic, partition) (capirelay_consumer_lag",
		"oldest unsettled age":           "capirelay_oldest_unsettled_age_seconds",
		"the 7-day limit (604800s)":      "vector(604800)",
		"readiness":                      "capirelay_ready",
		"config faults":                  "capirelay_api_config_faults_total",
		"time to expiry":                 "capirelay_oldest_unsettled_expires_in_seconds",
		"rule reload status":             "capirelay_rules_last_reload_success",
		"dead-letter write failures":     "capirelay_dead_letter_write_failures_total",
		"per-job/instance filter in use": `job=~"$job", instance=~"$instance"`,
	} {
		if !strings.Contains(text, needle) {
			t.Errorf("dashboard lacks %s (no query contains %q)", what, needle)
		}
	}
}

// ---------------------------------------------------------------------------
// Prometheus rules

// TestAlertRulesPromtool runs promtool check rules and the alert unit tests.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	if out, stderr, err := run(t, promtool, "check", "rules", alertsFile); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s%s", alertsFile, err, out, stderr)
	} else {
		t.Logf("promtool check rules: %s", strings.TrimSpace(out))
	}
	if out, stderr, err := run(t, promtool, "test", "rules", alertTestsFile); err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s%s", alertTestsFile, err, out, stderr)
	}
}

// TestAlertRulesContent checks what promtool does not: the alerts the
// runbooks name exist, each has a severity, a summary and a runbook link, and
// the chart's copy is identical.
func TestAlertRulesContent(t *testing.T) {
	rules := loadAlerts(t)
	byName := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			byName[r.Alert] = r.Expr
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
			if want := "#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("%s: runbook_url %q should end with %s (the README section)", r.Alert, r.Annotations["runbook_url"], want)
			}
		}
	}
	for alert, needle := range map[string]string{
		"CapirelayNotReady":               "capirelay_ready",
		"CapirelayDeadLetterRateHigh":     "capirelay_dead_lettered_total",
		"CapirelayEventsNearExpiry":       "capirelay_oldest_unsettled_expires_in_seconds) < 86400",
		"CapirelayNoProgress":             "capirelay_committed_offset",
		"CapirelayAPICredentialsRejected": "capirelay_api_config_faults_total",
		"CapirelayDeadLetterWriteFailing": "capirelay_dead_letter_write_failures_total",
		"CapirelayRulesReloadFailed":      "capirelay_rules_last_reload_success",
	} {
		expr, ok := byName[alert]
		if !ok {
			t.Errorf("alert %s is missing from %s", alert, alertsFile)
			continue
		}
		if !strings.Contains(expr, needle) {
			t.Errorf("alert %s: expression does not contain %q:\n%s", alert, needle, expr)
		}
	}
	a, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s/files/alerts.yaml differs from %s; copy it: cp deploy/%s deploy/%s/files/alerts.yaml",
			chartDir, alertsFile, alertsFile, chartDir)
	}
}

// ---------------------------------------------------------------------------
// Helm chart

// manifest is one rendered Kubernetes object: its raw text, a generic map and
// the node for typed decoding.
type manifest struct {
	Kind, Name string
	Raw        map[string]any
	Text       string
	node       yaml.Node
}

func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.node.Decode(v); err != nil {
		t.Fatalf("%s/%s: %v", m.Kind, m.Name, err)
	}
}

type keyPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name  string    `yaml:"name"`
		Items []keyPath `yaml:"items"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string    `yaml:"secretName"`
		Items      []keyPath `yaml:"items"`
	} `yaml:"secret"`
	EmptyDir any `yaml:"emptyDir"`
}

type workload struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas    *int   `yaml:"replicas"`
		ServiceName string `yaml:"serviceName"`
		Template    struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				AutomountServiceAccountToken *bool       `yaml:"automountServiceAccountToken"`
				Containers                   []container `yaml:"containers"`
				Volumes                      []volume    `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// rendered is the output of one helm template run.
type rendered struct {
	objs []manifest
}

func (r rendered) find(kind string) []manifest {
	var out []manifest
	for _, m := range r.objs {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

func (r rendered) get(kind, name string) (manifest, bool) {
	for _, m := range r.objs {
		if m.Kind == kind && m.Name == name {
			return m, true
		}
	}
	return manifest{}, false
}

// helmArgs are the arguments common to every lint and template run.
func helmArgs(extra ...string) []string {
	return append([]string{"--kube-version", kubeVersion, "--namespace", namespace}, extra...)
}

// helmTemplate renders the chart with args (values options). It returns the
// objects, or the error with helm's stderr.
func helmTemplate(t *testing.T, helm string, args ...string) (rendered, error) {
	t.Helper()
	stdout, stderr, err := run(t, helm, append([]string{"template", "rel", chartDir}, helmArgs(args...)...)...)
	if err != nil {
		return rendered{}, fmt.Errorf("%v: %s", err, stderr)
	}
	var r rendered
	dec := yaml.NewDecoder(strings.NewReader(stdout))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("helm template output is not YAML: %v\n%s", err, stdout)
		}
		if n.Kind == 0 || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			continue // empty document (a template that rendered nothing)
		}
		var raw map[string]any
		if err := n.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		text, _ := yaml.Marshal(&n)
		m := manifest{Raw: raw, Text: string(text), node: n}
		m.Kind, _ = raw["kind"].(string)
		if md, ok := raw["metadata"].(map[string]any); ok {
			m.Name, _ = md["name"].(string)
		}
		if m.Kind == "" || m.Name == "" {
			t.Fatalf("rendered object without kind or name:\n%s", text)
		}
		r.objs = append(r.objs, m)
	}
	return r, nil
}

// helmCase is one set of values the chart must render.
type helmCase struct {
	name string
	// args are helm values options (-f, --set, --set-file), relative to deploy/.
	args []string
	// partitions is the kafka.partitions the values set.
	partitions int
	// static: static membership on (StatefulSet + POD_NAME).
	static bool
	// chartSecret: the chart creates the credentials Secret from values
	// holding these sentinels (false: an existing Secret, no Secret rendered).
	chartSecret []string
	// autoscaler: "", "HorizontalPodAutoscaler" or "ScaledObject".
	autoscaler string
	// tlsSecret: name of the Kafka TLS Secret that must be mounted ("" none).
	tlsSecret string
}

var helmCases = []helmCase{
	{
		name:        "defaults",
		args:        []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules},
		partitions:  3,
		chartSecret: []string{sentinelAPIKey},
	},
	{
		// The documented example; the sentinel API key must be ignored (and
		// so appear nowhere) because an existing Secret is named.
		name: "sasl-tls-example",
		args: []string{"-f", chartDir + "/values-sasl-tls.yaml", "--set-file", "rules=" + webShopRules,
			"--set", "credentials.apiKey=" + sentinelAPIKey},
		partitions: 6,
		static:     true,
		tlsSecret:  "kafka-ca",
	},
	{
		// Every credential chart-managed, SASL + TLS + registry auth.
		name: "sasl-inline-secrets",
		args: []string{"-f", requiredValues, "--set-file", "rules=" + signupsRules,
			"--set", "kafka.sasl.mechanism=SCRAM-SHA-256,kafka.sasl.username=relay",
			"--set", "kafka.tls.enabled=true,kafka.tls.existingSecret=kafka-mtls,kafka.tls.certKey=tls.crt,kafka.tls.keyKey=tls.key",
			"--set", "schemaRegistry.enabled=true,schemaRegistry.urls={https://sr.example:8081},schemaRegistry.username=relay,schemaRegistry.usePassword=true,schemaRegistry.useToken=true",
			"--set", "credentials.saslPassword=" + sentinelSASL,
			"--set", "credentials.registryPassword=" + sentinelRegistryPass,
			"--set", "credentials.registryToken=" + sentinelRegistryToken,
			"--set", "relay.port=9464,relay.drainTimeout=1m30s,relay.maxBatchBytes=4194304,relay.concurrency=4",
		},
		partitions:  3,
		chartSecret: []string{sentinelAPIKey, sentinelSASL, sentinelRegistryPass, sentinelRegistryToken},
		tlsSecret:   "kafka-mtls",
	},
	{
		name:        "static-membership",
		args:        []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules, "--set", "staticMembership.enabled=true,replicaCount=3"},
		partitions:  3,
		static:      true,
		chartSecret: []string{sentinelAPIKey},
	},
	{
		name: "hpa",
		args: []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules,
			"--set", "autoscaling.hpa.enabled=true,autoscaling.hpa.minReplicas=2,autoscaling.hpa.maxReplicas=3"},
		partitions:  3,
		chartSecret: []string{sentinelAPIKey},
		autoscaler:  "HorizontalPodAutoscaler",
	},
	{
		name: "keda-prometheus-static",
		args: []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules,
			"--set", "staticMembership.enabled=true,kafka.partitions=12",
			"--set", "autoscaling.keda.enabled=true,autoscaling.keda.maxReplicas=12,autoscaling.keda.prometheus.serverAddress=http://prometheus:9090"},
		partitions:  12,
		static:      true,
		chartSecret: []string{sentinelAPIKey},
		autoscaler:  "ScaledObject",
	},
	{
		name: "keda-kafka",
		args: []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules,
			"--set", "autoscaling.keda.enabled=true,autoscaling.keda.trigger=kafka,autoscaling.keda.maxReplicas=2,autoscaling.keda.kafka.topic=shop.orders"},
		partitions:  3,
		chartSecret: []string{sentinelAPIKey},
		autoscaler:  "ScaledObject",
	},
	{
		name: "monitoring-and-reload",
		args: []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules,
			"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,rulesUpdate=reload,terminationGracePeriodSeconds=31"},
		partitions:  3,
		chartSecret: []string{sentinelAPIKey},
	},
}

// TestHelmLint runs helm lint --strict on the chart with each values case.
func TestHelmLint(t *testing.T) {
	helm := tool(t, "helm")
	if out, _, err := run(t, helm, "version", "--short"); err == nil {
		t.Logf("helm %s", strings.TrimSpace(out))
	}
	for _, c := range helmCases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, err := run(t, helm, append([]string{"lint", "--strict", chartDir}, helmArgs(c.args...)...)...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, stderr)
			}
		})
	}
}

// TestHelmTemplate renders every values case and checks the manifests.
func TestHelmTemplate(t *testing.T) {
	helm := tool(t, "helm")
	for _, c := range helmCases {
		t.Run(c.name, func(t *testing.T) {
			r, err := helmTemplate(t, helm, c.args...)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			checkRendered(t, c, r)
		})
	}
}

// checkRendered holds the assertions every successful render must pass.
func checkRendered(t *testing.T, c helmCase, r rendered) {
	wantKind := "Deployment"
	if c.static {
		wantKind = "StatefulSet"
	}
	var ws []manifest
	for _, k := range []string{"Deployment", "StatefulSet"} {
		ws = append(ws, r.find(k)...)
	}
	if len(ws) != 1 || ws[0].Kind != wantKind {
		t.Fatalf("want exactly one %s, got %d workloads (%v)", wantKind, len(ws), kinds(ws))
	}
	var w workload
	ws[0].decode(t, &w)
	pod := w.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	ctr := pod.Containers[0]

	// --config FILE, and FILE is the ConfigMap's key mounted there.
	cfgPath := flagValue(append(append([]string{}, ctr.Command...), ctr.Args...), "--config")
	if cfgPath == "" || !slices.Contains(ctr.Args, "run") {
		t.Fatalf("container is not started as `capirelay run --config FILE`: command %q args %q", ctr.Command, ctr.Args)
	}
	cmName, cmKey := configMapAt(t, ctr, pod.Volumes, cfgPath)
	cm, ok := r.get("ConfigMap", cmName)
	if !ok {
		t.Fatalf("--config %s is mounted from ConfigMap %q, which the chart does not render", cfgPath, cmName)
	}
	var cmObj struct {
		Data map[string]string `yaml:"data"`
	}
	cm.decode(t, &cmObj)
	cfgText, ok := cmObj.Data[cmKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q (mounted as %s)", cmName, cmKey, cfgPath)
	}
	sections := checkRelayConfig(t, cfgPath, cfgText)

	// Probes on relay.listen's port, on the relay's endpoints.
	_, portStr, err := net.SplitHostPort(sections.relay.Listen)
	if err != nil {
		t.Fatalf("relay.listen %q: %v", sections.relay.Listen, err)
	}
	listenPort, _ := strconv.Atoi(portStr)
	for _, p := range []struct {
		name string
		pr   *probe
		path string
	}{{"liveness", ctr.LivenessProbe, "/healthz"}, {"readiness", ctr.ReadinessProbe, "/readyz"}} {
		if p.pr == nil || p.pr.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		if p.pr.HTTPGet.Path != p.path {
			t.Errorf("%s probe path %q, want %q", p.name, p.pr.HTTPGet.Path, p.path)
		}
		if got := containerPort(t, ctr, p.pr.HTTPGet.Port); got != listenPort {
			t.Errorf("%s probe port %v = %d, but relay.listen is %q", p.name, p.pr.HTTPGet.Port, got, sections.relay.Listen)
		}
	}
	for _, svc := range r.find("Service") {
		var s struct {
			Spec struct {
				Ports []struct {
					Name       string `yaml:"name"`
					TargetPort any    `yaml:"targetPort"`
				} `yaml:"ports"`
			} `yaml:"spec"`
		}
		svc.decode(t, &s)
		for _, p := range s.Spec.Ports {
			if got := containerPort(t, ctr, p.TargetPort); got != listenPort {
				t.Errorf("Service %s port %s targets %d, but relay.listen is %q", svc.Name, p.Name, got, sections.relay.Listen)
			}
		}
	}

	// Grace period longer than the drain deadline.
	drain := sections.relay.DrainTimeout
	if drain == 0 {
		drain = 30 * time.Second
	}
	if pod.TerminationGracePeriodSeconds == nil {
		t.Errorf("terminationGracePeriodSeconds not set (Kubernetes' 30s default vs drain_timeout %s)", drain)
	} else if g := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; g <= drain {
		t.Errorf("terminationGracePeriodSeconds %s is not longer than relay.drain_timeout %s", g, drain)
	}

	// Static membership: StatefulSet, POD_NAME from the pod name, named by
	// kafka.instance_id_env.
	podName := ""
	for _, e := range ctr.Env {
		if e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			podName = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if c.static {
		if sections.kafka.InstanceIDEnv != "POD_NAME" || podName != "metadata.name" {
			t.Errorf("static membership: kafka.instance_id_env=%q, POD_NAME from %q; want POD_NAME from metadata.name",
				sections.kafka.InstanceIDEnv, podName)
		}
		if w.Spec.ServiceName == "" {
			t.Errorf("StatefulSet without serviceName")
		} else if _, ok := r.get("Service", w.Spec.ServiceName); !ok {
			t.Errorf("StatefulSet serviceName %q is not rendered", w.Spec.ServiceName)
		}
	} else if sections.kafka.InstanceIDEnv != "" {
		t.Errorf("kafka.instance_id_env=%q on a Deployment: pod names change on every rollout", sections.kafka.InstanceIDEnv)
	}

	// Security context.
	sc := ctr.SecurityContext
	if sc == nil || !isTrue(sc.RunAsNonRoot) && !isTrue(pod.SecurityContext.RunAsNonRoot) {
		t.Errorf("runAsNonRoot not set")
	}
	if sc == nil || !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("readOnlyRootFilesystem not set")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation not false")
	}
	if sc == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("capabilities do not drop ALL")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken not false (the relay calls no Kubernetes API)")
	}

	// Rollouts follow config changes.
	if w.Spec.Template.Metadata.Annotations["checksum/config"] == "" {
		t.Errorf("pod template has no checksum/config annotation")
	}

	// Every file the config names is in a mounted Secret with that key.
	checkSecretFiles(t, ctr, pod.Volumes, sections)

	// Secrets: never in a ConfigMap or a literal env value; present in the
	// chart's Secret only when chart-managed.
	checkNoSecretLeak(t, r, ctr, c)

	// Replicas never exceed partitions.
	checkReplicas(t, r, w, c)

	if c.tlsSecret != "" {
		found := false
		for _, v := range pod.Volumes {
			if v.Secret != nil && v.Secret.SecretName == c.tlsSecret {
				found = true
			}
		}
		if !found {
			t.Errorf("Kafka TLS Secret %s is not mounted", c.tlsSecret)
		}
	}
	if len(r.find("PodDisruptionBudget")) != 1 {
		t.Errorf("want one PodDisruptionBudget, got %d", len(r.find("PodDisruptionBudget")))
	}
}

// relaySections are the decoded sections of a rendered relay config.
type relaySections struct {
	kafka config.Kafka
	api   config.API
	relay config.Relay
	sr    map[string]any
}

// checkRelayConfig parses the rendered config file as the relay does:
// top-level keys, strict kafka/api/relay sections, and the rules compiled.
func checkRelayConfig(t *testing.T, path, text string) relaySections {
	t.Helper()
	f, err := config.Parse(path, []byte(text))
	if err != nil {
		t.Fatalf("rendered config does not load:\n%v\n---\n%s", err, text)
	}
	var s relaySections
	var ds config.Diagnostics
	ds = append(ds, config.DecodeSection(path, "kafka", &f.Kafka, &s.kafka)...)
	ds = append(ds, config.DecodeSection(path, "api", &f.API, &s.api)...)
	ds = append(ds, config.DecodeSection(path, "relay", &f.Relay, &s.relay)...)
	if len(ds) > 0 {
		t.Fatalf("rendered config sections rejected:\n%v\n---\n%s", ds, text)
	}
	if f.SchemaRegistry.Kind != 0 {
		if err := f.SchemaRegistry.Decode(&s.sr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mapping.Compile(f, mapping.Options{}); err != nil {
		t.Fatalf("rendered rules do not compile:\n%v", err)
	}
	if len(s.kafka.Brokers) == 0 || s.kafka.DeadLetterTopic == "" {
		t.Errorf("rendered config lacks kafka.brokers or kafka.dead_letter_topic")
	}
	if s.api.KeyFile == "" && s.api.KeyEnv == "" {
		t.Errorf("rendered config names no API key source")
	}
	return s
}

// configMapAt finds the ConfigMap volume and key that the container sees at
// file path p (a directory mount, or a subPath mount of the file).
func configMapAt(t *testing.T, ctr container, vols []volume, p string) (name, key string) {
	t.Helper()
	for _, vm := range ctr.VolumeMounts {
		var rel string
		switch {
		case vm.SubPath != "" && vm.MountPath == p:
			rel = vm.SubPath
		case vm.SubPath == "" && path.Dir(p) == path.Clean(vm.MountPath):
			rel = path.Base(p)
		default:
			continue
		}
		for _, v := range vols {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			if len(v.ConfigMap.Items) == 0 {
				return v.ConfigMap.Name, rel
			}
			for _, it := range v.ConfigMap.Items {
				if it.Path == rel {
					return v.ConfigMap.Name, it.Key
				}
			}
		}
	}
	t.Fatalf("no ConfigMap is mounted at %s (the path --config names)", p)
	return "", ""
}

// containerPort resolves a probe or Service port (number or name).
func containerPort(t *testing.T, ctr container, port any) int {
	t.Helper()
	switch p := port.(type) {
	case int:
		return p
	case string:
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
		for _, cp := range ctr.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
		t.Errorf("port %q is not a container port name", p)
	default:
		t.Errorf("unexpected port %v (%T)", port, port)
	}
	return -1
}

// checkSecretFiles checks that each credential file the config names lies in a
// mounted Secret volume that projects that key.
func checkSecretFiles(t *testing.T, ctr container, vols []volume, s relaySections) {
	files := map[string]string{"api.key_file": s.api.KeyFile}
	if s.kafka.SASL.Mechanism != "" {
		files["kafka.sasl.password_file"] = s.kafka.SASL.PasswordFile
	}
	for _, k := range []string{"ca_file", "cert_file", "key_file"} {
		if v := reflect.ValueOf(s.kafka.TLS).FieldByNameFunc(func(n string) bool {
			return strings.EqualFold(n, strings.ReplaceAll(k, "_", ""))
		}); v.IsValid() && v.String() != "" {
			files["kafka.tls."+k] = v.String()
		}
	}
	for _, k := range []string{"password_file", "token_file"} {
		if v, ok := s.sr[k].(string); ok {
			files["schema_registry."+k] = v
		}
	}
	if s.api.KeyEnv != "" || s.kafka.SASL.PasswordEnv != "" {
		t.Errorf("the chart should name credential files, not env vars (api.key_env=%q, kafka.sasl.password_env=%q)",
			s.api.KeyEnv, s.kafka.SASL.PasswordEnv)
	}
	for field, f := range files {
		if f == "" {
			t.Errorf("%s is empty", field)
			continue
		}
		if !secretFileMounted(ctr, vols, f) {
			t.Errorf("%s = %s is not a key of a mounted Secret", field, f)
		}
	}
}

func secretFileMounted(ctr container, vols []volume, f string) bool {
	for _, vm := range ctr.VolumeMounts {
		if vm.SubPath != "" || path.Dir(f) != path.Clean(vm.MountPath) {
			continue
		}
		for _, v := range vols {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return true // every key of the Secret
			}
			for _, it := range v.Secret.Items {
				if it.Path == path.Base(f) {
					return true
				}
			}
		}
	}
	return false
}

// checkNoSecretLeak asserts that no sentinel secret value, plain or base64,
// appears in a ConfigMap, in a literal env value or in any object but the
// chart's credentials Secret.
func checkNoSecretLeak(t *testing.T, r rendered, ctr container, c helmCase) {
	forms := func(s string) []string {
		return []string{s, base64.StdEncoding.EncodeToString([]byte(s))}
	}
	for _, m := range r.objs {
		for _, s := range sentinels {
			for _, f := range forms(s) {
				if !strings.Contains(m.Text, f) {
					continue
				}
				if m.Kind == "Secret" && slices.Contains(c.chartSecret, s) {
					continue
				}
				t.Errorf("secret value %s appears in %s/%s", s, m.Kind, m.Name)
			}
		}
	}
	for _, e := range ctr.Env {
		for _, s := range sentinels {
			if strings.Contains(e.Value, s) {
				t.Errorf("secret value in env %s", e.Name)
			}
		}
	}
	secrets := r.find("Secret")
	if len(c.chartSecret) == 0 {
		if len(secrets) != 0 {
			t.Errorf("an existing Secret is named, yet the chart renders %d Secret(s)", len(secrets))
		}
		return
	}
	if len(secrets) != 1 {
		t.Fatalf("want the chart's credentials Secret, got %d Secrets", len(secrets))
	}
	var sec struct {
		Data map[string]string `yaml:"data"`
	}
	secrets[0].decode(t, &sec)
	var values []string
	for _, v := range sec.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Errorf("Secret data is not base64: %v", err)
		}
		values = append(values, string(b))
	}
	for _, s := range c.chartSecret {
		if !slices.Contains(values, s) {
			t.Errorf("chart-managed Secret lacks the value given for it (%s): the leak check would prove nothing", s)
		}
	}
}

// checkReplicas asserts that no replica count exceeds kafka.partitions.
func checkReplicas(t *testing.T, r rendered, w workload, c helmCase) {
	hpas, sos := r.find("HorizontalPodAutoscaler"), r.find("ScaledObject")
	switch c.autoscaler {
	case "":
		if len(hpas)+len(sos) != 0 {
			t.Errorf("autoscaling off, yet %d HPA and %d ScaledObject rendered", len(hpas), len(sos))
		}
		if w.Spec.Replicas == nil || *w.Spec.Replicas > c.partitions {
			t.Errorf("replicas %v with %d partitions", w.Spec.Replicas, c.partitions)
		}
		return
	case "HorizontalPodAutoscaler":
		if len(hpas) != 1 || len(sos) != 0 {
			t.Fatalf("want one HPA, got %d HPA and %d ScaledObject", len(hpas), len(sos))
		}
		var h struct {
			Spec struct {
				MaxReplicas    int `yaml:"maxReplicas"`
				ScaleTargetRef struct {
					Kind string `yaml:"kind"`
					Name string `yaml:"name"`
				} `yaml:"scaleTargetRef"`
			} `yaml:"spec"`
		}
		hpas[0].decode(t, &h)
		if h.Spec.MaxReplicas > c.partitions || h.Spec.MaxReplicas < 1 {
			t.Errorf("HPA maxReplicas %d with %d partitions", h.Spec.MaxReplicas, c.partitions)
		}
		if h.Spec.ScaleTargetRef.Kind != w.Kind || h.Spec.ScaleTargetRef.Name != w.Metadata.Name {
			t.Errorf("HPA targets %s/%s, not the workload %s/%s", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, w.Kind, w.Metadata.Name)
		}
	case "ScaledObject":
		if len(sos) != 1 || len(hpas) != 0 {
			t.Fatalf("want one ScaledObject, got %d HPA and %d ScaledObject", len(hpas), len(sos))
		}
		var so struct {
			Spec struct {
				MaxReplicaCount int `yaml:"maxReplicaCount"`
				ScaleTargetRef  struct {
					Kind string `yaml:"kind"`
					Name string `yaml:"name"`
				} `yaml:"scaleTargetRef"`
				Triggers []struct {
					Type     string            `yaml:"type"`
					Metadata map[string]string `yaml:"metadata"`
				} `yaml:"triggers"`
			} `yaml:"spec"`
		}
		sos[0].decode(t, &so)
		if so.Spec.MaxReplicaCount > c.partitions || so.Spec.MaxReplicaCount < 1 {
			t.Errorf("ScaledObject maxReplicaCount %d with %d partitions", so.Spec.MaxReplicaCount, c.partitions)
		}
		if so.Spec.ScaleTargetRef.Kind != w.Kind || so.Spec.ScaleTargetRef.Name != w.Metadata.Name {
			t.Errorf("ScaledObject targets %s/%s, not the workload %s/%s", so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name, w.Kind, w.Metadata.Name)
		}
		if len(so.Spec.Triggers) != 1 {
			t.Fatalf("want one trigger, got %d", len(so.Spec.Triggers))
		}
		tr := so.Spec.Triggers[0]
		switch tr.Type {
		case "prometheus":
			if !strings.Contains(tr.Metadata["query"], "capirelay_consumer_lag") {
				t.Errorf("prometheus trigger does not query capirelay_consumer_lag: %q", tr.Metadata["query"])
			}
		case "kafka":
			if tr.Metadata["allowIdleConsumers"] != "false" {
				t.Errorf("kafka trigger allowIdleConsumers=%q, want \"false\"", tr.Metadata["allowIdleConsumers"])
			}
		default:
			t.Errorf("unexpected trigger type %q", tr.Type)
		}
	}
	if w.Spec.Replicas != nil {
		t.Errorf("autoscaled workload sets spec.replicas=%d (it would fight the autoscaler on every upgrade)", *w.Spec.Replicas)
	}
}

// TestHelmRenderFails checks that the chart refuses unsafe or incomplete
// values with a message naming the problem.
func TestHelmRenderFails(t *testing.T) {
	helm := tool(t, "helm")
	base := []string{"-f", requiredValues, "--set-file", "rules=" + webShopRules}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"hpa-max-over-partitions", []string{"--set", "autoscaling.hpa.enabled=true,autoscaling.hpa.maxReplicas=4"},
			"autoscaling.hpa.maxReplicas (4) exceeds kafka.partitions (3)"},
		{"keda-max-over-partitions", []string{"--set", "autoscaling.keda.enabled=true,autoscaling.keda.maxReplicas=5,autoscaling.keda.prometheus.serverAddress=http://p:9090"},
			"autoscaling.keda.maxReplicas (5) exceeds kafka.partitions (3)"},
		{"replicas-over-partitions", []string{"--set", "replicaCount=4"},
			"replicaCount (4) exceeds kafka.partitions (3)"},
		{"hpa-and-keda", []string{"--set", "autoscaling.hpa.enabled=true,autoscaling.keda.enabled=true,autoscaling.keda.prometheus.serverAddress=http://p:9090"},
			"exclusive"},
		{"grace-equal-to-drain", []string{"--set", "terminationGracePeriodSeconds=30"},
			"terminationGracePeriodSeconds (30) must be longer than relay.drainTimeout"},
		{"grace-below-drain", []string{"--set", "relay.drainTimeout=2m,terminationGracePeriodSeconds=90"},
			"terminationGracePeriodSeconds (90) must be longer than relay.drainTimeout (2m = 120s)"},
		{"bad-drain-duration", []string{"--set", "relay.drainTimeout=soon"},
			"is not a Go duration"},
		{"no-partitions", []string{"--set", "kafka.partitions=null"},
			"kafka.partitions is required"},
		{"no-api-key", []string{"--set", "credentials.apiKey="},
			"set credentials.existingSecret"},
		{"sasl-without-password", []string{"--set", "kafka.sasl.mechanism=PLAIN,kafka.sasl.username=u"},
			"credentials.saslPassword"},
		{"rules-with-other-sections", []string{"--set-file", "rules=compose/relay/config.yaml"},
			"rules may only hold the topics key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := helmTemplate(t, helm, append(append([]string{}, base...), c.args...)...)
			if err == nil {
				t.Fatalf("render succeeded; want a failure containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("render failed with\n%v\nwant a message containing %q", err, c.want)
			}
		})
	}
	// Nothing set at all: the failure names the first required value.
	if _, err := helmTemplate(t, helm); err == nil || !strings.Contains(err.Error(), "is required") {
		t.Errorf("chart defaults alone rendered (or failed unclearly): %v", err)
	}
}

// TestHelmChecksumFollowsRules checks the rollout annotation: with
// rulesUpdate=rollout a rules change rolls the pods; with reload it does not,
// while any other config change still does.
func TestHelmChecksumFollowsRules(t *testing.T) {
	helm := tool(t, "helm")
	checksum := func(args ...string) string {
		t.Helper()
		r, err := helmTemplate(t, helm, append([]string{"-f", requiredValues}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var w workload
		r.find("Deployment")[0].decode(t, &w)
		return w.Spec.Template.Metadata.Annotations["checksum/config"]
	}
	shop, signups := "rules="+webShopRules, "rules="+signupsRules
	if checksum("--set-file", shop) == checksum("--set-file", signups) {
		t.Errorf("rulesUpdate=rollout: changing the rules does not change checksum/config")
	}
	reload := []string{"--set", "rulesUpdate=reload"}
	a := checksum(append(reload, "--set-file", shop)...)
	if b := checksum(append(reload, "--set-file", signups)...); a != b {
		t.Errorf("rulesUpdate=reload: changing the rules changes checksum/config (the pods would restart instead of reloading)")
	}
	if b := checksum(append(reload, "--set-file", shop, "--set", "relay.logLevel=debug")...); a == b {
		t.Errorf("rulesUpdate=reload: changing relay.logLevel does not change checksum/config")
	}
}

// ---------------------------------------------------------------------------
// Compose

// TestCompose parses the compose stack and checks its services and the files
// it mounts (the stack itself needs Docker, which these machines lack).
func TestCompose(t *testing.T) {
	type service struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Entrypoint       []string          `yaml:"entrypoint"`
		Command          any               `yaml:"command"`
		Environment      map[string]string `yaml:"environment"`
		Volumes          []string          `yaml:"volumes"`
		ReadOnly         bool              `yaml:"read_only"`
		User             string            `yaml:"user"`
		StopGracePeriod  string            `yaml:"stop_grace_period"`
		Profiles         []string          `yaml:"profiles"`
		SecurityOpt      []string          `yaml:"security_opt"`
		CapDrop          []string          `yaml:"cap_drop"`
		DependsOnSkipped any               `yaml:"depends_on"`
	}
	var doc struct {
		Services map[string]service `yaml:"services"`
	}
	readYAML(t, composeFile, &doc)
	s := doc.Services
	for _, name := range []string{"kafka", "schema-registry", "capisim", "relay", "prometheus", "grafana"} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s: no service %q", composeFile, name)
		}
	}
	if !strings.HasPrefix(s["kafka"].Image, "apache/kafka:") || !strings.Contains(s["kafka"].Environment["KAFKA_PROCESS_ROLES"], "controller") {
		t.Errorf("kafka: want apache/kafka in KRaft mode (KAFKA_PROCESS_ROLES with controller), got image %q roles %q",
			s["kafka"].Image, s["kafka"].Environment["KAFKA_PROCESS_ROLES"])
	}
	composeDir := filepath.Dir(composeFile)
	for _, name := range []string{"relay", "capisim"} {
		svc := s[name]
		if svc.Build == nil || path.Clean(svc.Build.Dockerfile) != "deploy/Dockerfile" {
			t.Errorf("%s: not built from deploy/Dockerfile", name)
		} else if abs, _ := filepath.Abs(filepath.Join(composeDir, svc.Build.Context)); abs != mustAbs(t, repoRoot) {
			t.Errorf("%s: build context %s is not the repository root", name, svc.Build.Context)
		}
		if !svc.ReadOnly || svc.User == "" || strings.HasPrefix(svc.User, "0") || !slices.Contains(svc.CapDrop, "ALL") {
			t.Errorf("%s: want read_only, a non-root user and cap_drop ALL (read_only=%v user=%q cap_drop=%v)", name, svc.ReadOnly, svc.User, svc.CapDrop)
		}
	}
	if len(s["capisim"].Entrypoint) == 0 || path.Base(s["capisim"].Entrypoint[0]) != "capisim" {
		t.Errorf("capisim: entrypoint %q does not run capisim", s["capisim"].Entrypoint)
	}

	// Every bind-mounted host path exists; remember where each lands.
	mounts := map[string]map[string]string{} // service -> container path -> host path
	for name, svc := range s {
		mounts[name] = map[string]string{}
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue // named volume
			}
			host := filepath.Join(composeDir, parts[0])
			if _, err := os.Stat(host); err != nil {
				t.Errorf("%s: mounts %s, which does not exist (%v)", name, parts[0], err)
			}
			mounts[name][parts[1]] = host
		}
	}

	// The relay's config: mounted where --config says, loads and compiles,
	// its rules are the web-shop example's, its key comes from the env.
	relay := s["relay"]
	cmd, _ := relay.Command.([]any)
	var args []string
	for _, a := range cmd {
		args = append(args, fmt.Sprint(a))
	}
	cfgPath := flagValue(args, "--config")
	host, ok := mounts["relay"][cfgPath]
	if !ok {
		t.Fatalf("relay: --config %q is not a mounted file (mounts %v)", cfgPath, mounts["relay"])
	}
	text, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	sec := checkRelayConfig(t, host, string(text))
	if sec.api.KeyEnv == "" || relay.Environment[sec.api.KeyEnv] == "" {
		t.Errorf("relay: api.key_env %q is not set in the service's environment", sec.api.KeyEnv)
	}
	if !strings.Contains(sec.api.BaseURL, "capisim:") {
		t.Errorf("relay: api.base_url %q does not point at the capisim service", sec.api.BaseURL)
	}
	if got, want := topicsOf(t, host), topicsOf(t, webShopRules); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: topics differ from %s; copy them over", host, webShopRules)
	}
	grace, err := time.ParseDuration(relay.StopGracePeriod)
	if err != nil || grace <= sec.relay.DrainTimeout {
		t.Errorf("relay: stop_grace_period %q must be longer than relay.drain_timeout %s", relay.StopGracePeriod, sec.relay.DrainTimeout)
	}

	// Prometheus loads the alert rules and scrapes the relay; Grafana gets the
	// dashboard.
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	promCfg, ok := mounts["prometheus"]["/etc/prometheus/prometheus.yml"]
	if !ok {
		t.Fatalf("prometheus: no prometheus.yml mounted")
	}
	readYAML(t, promCfg, &prom)
	alertsAbs := mustAbs(t, alertsFile)
	for _, rf := range prom.RuleFiles {
		if h, ok := mounts["prometheus"][rf]; !ok || mustAbs(t, h) != alertsAbs {
			t.Errorf("prometheus: rule file %s is not %s", rf, alertsFile)
		}
	}
	if len(prom.RuleFiles) == 0 {
		t.Errorf("prometheus: no rule_files")
	}
	scrapesRelay := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				if strings.HasPrefix(tg, "relay:") && strings.Contains(sc.JobName, "capirelay") {
					scrapesRelay = true
				}
			}
		}
	}
	if !scrapesRelay {
		t.Errorf("prometheus: no job named *capirelay* scrapes relay:PORT (CapirelayTargetDown matches the job name)")
	}
	dashboardMounted := false
	for _, h := range mounts["grafana"] {
		if mustAbs(t, h) == mustAbs(t, dashboardFile) {
			dashboardMounted = true
		}
	}
	if !dashboardMounted {
		t.Errorf("grafana: %s is not mounted", dashboardFile)
	}
}

// topicsOf returns the parsed topics section of a config file.
func topicsOf(t *testing.T, file string) any {
	t.Helper()
	var doc struct {
		Topics any `yaml:"topics"`
	}
	readYAML(t, file, &doc)
	return doc.Topics
}

// ---------------------------------------------------------------------------
// Dockerfile

// TestDockerfile checks that the image builds its binaries like `make build`
// and runs them as a non-root user on a minimal base.
func TestDockerfile(t *testing.T) {
	lines := dockerInstructions(t, dockerfile)
	var froms, users, buildLines, labels, copies []string
	args := map[string]bool{}
	entrypoint := ""
	lastFrom := -1
	for i, l := range lines {
		op, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			froms = append(froms, rest)
			lastFrom = i
		case "USER":
			if lastFrom >= 0 && len(froms) > 1 {
				users = append(users, rest)
			}
		case "RUN":
			if strings.Contains(rest, "go build") {
				buildLines = append(buildLines, rest)
			}
		case "ARG":
			name, _, _ := strings.Cut(rest, "=")
			args[name] = true
		case "LABEL":
			labels = append(labels, rest)
		case "ENTRYPOINT":
			entrypoint = rest
		case "COPY":
			copies = append(copies, rest)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %q", froms)
	}
	if !strings.Contains(froms[0], "golang:") {
		t.Errorf("build stage is not golang: %q", froms[0])
	}
	final := froms[len(froms)-1]
	if !strings.Contains(final, "distroless/static") && !strings.HasPrefix(final, "scratch") {
		t.Errorf("runtime stage %q is neither distroless/static nor scratch", final)
	}
	if len(users) == 0 {
		t.Errorf("runtime stage sets no USER")
	}
	for _, u := range users {
		name, _, _ := strings.Cut(u, ":")
		if name == "root" || name == "0" {
			t.Errorf("runtime USER %q is root", u)
		}
	}
	if !args["VERSION"] {
		t.Errorf("no ARG VERSION")
	}
	allLabels := strings.Join(labels, " ")
	for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.title"} {
		if !strings.Contains(allLabels, l) {
			t.Errorf("no OCI label %s", l)
		}
	}
	if !strings.Contains(entrypoint, "capirelay") {
		t.Errorf("ENTRYPOINT %q does not run capirelay", entrypoint)
	}
	if len(buildLines) != 1 {
		t.Fatalf("want one RUN with go build, got %d", len(buildLines))
	}
	build := buildLines[0]

	// The Makefile's build recipe and LDFLAGS, $(VERSION) as ${VERSION}.
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	ldflags := regexp.MustCompile(`(?m)^LDFLAGS\s*[:?]?=\s*(.+)$`).FindSubmatch(mk)
	recipe := regexp.MustCompile(`(?m)^build:.*\n\t(.+)$`).FindSubmatch(mk)
	if ldflags == nil || recipe == nil {
		t.Fatalf("Makefile: cannot find LDFLAGS or the build recipe")
	}
	wantLD := strings.ReplaceAll(strings.TrimSpace(string(ldflags[1])), "$(VERSION)", "${VERSION}")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/..."} {
		if !strings.Contains(string(recipe[1]), want) {
			t.Errorf("Makefile build recipe lacks %s (the test's model of `make build` is stale): %s", want, recipe[1])
		}
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile go build lacks %s: %s", want, build)
		}
	}
	m := regexp.MustCompile(`-ldflags\s+(?:"([^"]*)"|'([^']*)')`).FindStringSubmatch(build)
	if m == nil {
		t.Fatalf("Dockerfile go build has no quoted -ldflags: %s", build)
	}
	if got := m[1] + m[2]; got != wantLD {
		t.Errorf("Dockerfile -ldflags %q, Makefile LDFLAGS %q", got, wantLD)
	}
	if !strings.Contains(wantLD, "-X main.version=${VERSION}") {
		t.Errorf("LDFLAGS do not stamp main.version: %q", wantLD)
	}
	// Both binaries reach the runtime image: the whole output directory of
	// `go build -o DIR/ ./cmd/...` is copied.
	out := regexp.MustCompile(`-o\s+(\S+/)\s`).FindStringSubmatch(build)
	if out == nil {
		t.Fatalf("go build -o is not a directory: %s", build)
	}
	copied := false
	for _, c := range copies {
		if strings.Contains(c, "--from=") && strings.Contains(c, " "+out[1]+" ") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("no COPY --from of the build output directory %s (capirelay and capisim)", out[1])
	}
	entries, err := os.ReadDir(filepath.Join(repoRoot, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, e := range entries {
		if e.IsDir() {
			cmds = append(cmds, e.Name())
		}
	}
	for _, want := range []string{"capirelay", "capisim"} {
		if !slices.Contains(cmds, want) {
			t.Errorf("cmd/%s is missing: the image would lack it", want)
		}
	}
}

// dockerInstructions returns the Dockerfile's instructions, comments dropped
// and continuation lines joined.
func dockerInstructions(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "#") || (trim == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trim, "\\"); ok {
			cur.WriteString(s)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(trim)
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// ---------------------------------------------------------------------------
// helpers

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(a)
}

// flagValue returns the value of --name in args ("--name V" or "--name=V").
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func isTrue(b *bool) bool { return b != nil && *b }

func kinds(ms []manifest) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Kind+"/"+m.Name)
	}
	return out
}
