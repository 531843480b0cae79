package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/internal/kafkatest"
)

// Rule reload against the real broker: a broken reload keeps the old rules
// (and says so in a metric); a reload that swaps topic A for topic B makes
// consumption follow, with nothing lost and nothing sent twice.
func TestBinaryRuleReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary against a broker")
	}
	brokers := kafkatest.Brokers(t)
	topicA, topicB, dlq, group := kafkatest.Topic(t, 2), kafkatest.Topic(t, 2), kafkatest.Topic(t, 1), kafkatest.GroupID(t)
	sim, simURL := newTestSim(t, capisim.Options{})
	rule := func(topic, prefix, id string) string {
		return fmt.Sprintf(`  - topic: %s
    format: json
    rules:
      - name: %s
        event:
          type: lead_created
          action_source: offline
          id: %s
          timestamp: time.epoch_millis(value.ts)
`, topic, prefix, id)
	}
	head := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  dead_letter_topic: %s
api:
  base_url: %s
  key_env: CAPIRELAY_TEST_API_KEY
  pixel: %s
relay:
  listen: 127.0.0.1:0
  log_format: text
  commit_interval: 100ms
  linger: 20ms
  reload_check_interval: 200ms
topics:
`, strings.Join(brokers, ","), group, dlq, simURL, binPixel)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	write := func(body string) {
		t.Helper()
		// Write and rename, as a ConfigMap update does.
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	write(head + rule(topicA, "a", `'"a-" + value.id'`))

	cl := kafkatest.Client(t)
	produce := func(topic string, from, n int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			v, _ := json.Marshal(map[string]any{"id": strconv.Itoa(i), "ts": time.Now().UnixMilli()})
			recs = append(recs, &kgo.Record{Topic: topic, Value: v})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(topicA, 0, 100)
	produce(topicB, 0, 100)

	cmd := startCmd(t, relayBinary(t), "run", "--config", cfg)
	logf := cmd.log
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := waitLogMatch(t, logf, regexp.MustCompile(`operational endpoints" addr=(\S+)`))
	count := func(prefix string) int {
		n := 0
		for _, e := range sim.Events() {
			if strings.HasPrefix(e.ID, prefix) {
				n++
			}
		}
		return n
	}
	eventually(t, "topic A relayed", func() bool { return count("a-") == 100 })

	// 1. A broken reload keeps the old rules.
	write(head + rule(topicA, "a", `value.id +`))
	eventually(t, "the failed reload in the metrics", func() bool {
		m := scrape(t, addr)
		return strings.Contains(m, `capirelay_rules_reload_total{result="error"} 1`) && strings.Contains(m, "capirelay_rules_last_reload_success 0")
	})
	produce(topicA, 100, 50)
	eventually(t, "topic A still relayed with the old rules", func() bool { return count("a-") == 150 })

	// 2. Swap A for B (SIGHUP, as well as the file watch).
	write(head + rule(topicB, "b", `'"b-" + value.id'`))
	_ = cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "topic B relayed after the reload", func() bool { return count("b-") == 100 })
	m := scrape(t, addr)
	if !strings.Contains(m, "capirelay_rules_last_reload_success 1") {
		t.Fatalf("reload success not in metrics:\n%s", grepLines(m, "capirelay_rules"))
	}
	produce(topicA, 150, 20)
	time.Sleep(1500 * time.Millisecond)
	if n := count("a-"); n != 150 {
		t.Fatalf("topic A is still consumed after its rules were removed: %d events", n)
	}
	if committedA := sumOffsets(committedOffsets(t, kadm.NewClient(cl), group, topicA)); committedA != 150 {
		t.Fatalf("topic A committed %d, want 150 (everything relayed before the removal, nothing after)", committedA)
	}
	if st := sim.Stats(); st.DuplicatesIgnored != 0 {
		t.Fatalf("%d events were sent twice across the reloads", st.DuplicatesIgnored)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logTail(logf))
	}
}

type runningCmd struct {
	*exec.Cmd
	log *os.File
}

func startCmd(t *testing.T, bin string, args ...string) *runningCmd {
	t.Helper()
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), "CAPIRELAY_TEST_API_KEY="+binKey)
	logf, err := os.Create(filepath.Join(t.TempDir(), "relay.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return &runningCmd{Cmd: c, log: logf}
}

func waitLogMatch(t *testing.T, f *os.File, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(f.Name())
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1])
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log never matched %v:\n%s", re, logTail(f))
	return ""
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
