package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binPath is the capisim binary built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "capisim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "capisim")
	// go test puts $GOROOT/bin first on the PATH of test binaries.
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "go tool not found:", err)
		os.Exit(1)
	}
	build := exec.Command(goTool, "build", "-o", binPath, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestHelpMentionsEveryFlag runs `capisim --help`: exit 0, the endpoints
// explained, and every flag (the brief's list and whatever is registered)
// documented.
func TestHelpMentionsEveryFlag(t *testing.T) {
	out, err := exec.Command(binPath, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	help := string(out)
	want := []string{"addr", "api-key", "pixel", "fail-rate", "status-5xx", "throttle-rate", "retry-after",
		"latency", "hang-rate", "auth-fail-rate", "name-failing-event", "null-sink", "reject-unknown-fields",
		"seed", "max-body-bytes", "lenient-user-lists", "max-stored-events"}
	fs, _ := newFlagSet(io.Discard)
	fs.VisitAll(func(f *flag.Flag) { want = append(want, f.Name) })
	for _, name := range want {
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + `\b`).MatchString(help) {
			t.Errorf("--help does not document -%s", name)
		}
	}
	for _, s := range []string{"POST    /v1/events?pid=", "/_sim/events", "/_sim/stats", "/_sim/reset", "/_sim/faults", "CAPISIM_API_KEY"} {
		if !strings.Contains(help, s) {
			t.Errorf("--help does not mention %s", s)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no key", []string{"--pixel", "p"}, "", "API key is required"},
		{"no pixel", []string{"--api-key", "k"}, "", "--pixel is required"},
		{"bad rate", []string{"--pixel", "p", "--fail-rate", "2"}, "k", "FailRate"},
		{"bad status", []string{"--pixel", "p", "--status-5xx", "404"}, "k", "Status5xx"},
		{"unknown flag", []string{"--pixel", "p", "--nope"}, "k", "nope"},
		{"stray argument", []string{"--pixel", "p", "serve"}, "k", "unexpected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = append(os.Environ(), "CAPISIM_API_KEY="+tc.env)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("err %v, want exit 2\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestParse checks flag-to-option mapping in process.
func TestParse(t *testing.T) {
	env := func(k string) string {
		if k == envAPIKey {
			return "from-env"
		}
		return ""
	}
	c, err := parse([]string{"--pixel", "a,b", "--pixel", "c", "--reject-unknown-fields=false", "--retry-after", "2s",
		"--latency", "5ms", "--seed", "9", "--null-sink", "--name-failing-event", "--max-body-bytes", "100"}, io.Discard, env)
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.APIKey != "from-env" || strings.Join(o.Pixels, " ") != "a b c" || !o.IgnoreUnknownFields || o.RetryAfter != 2*time.Second ||
		o.Latency != 5*time.Millisecond || o.Seed != 9 || !o.NullSink || !o.NameFailingEvent || o.MaxBodyBytes != 100 || o.Status5xx != 503 {
		t.Fatalf("options %+v", o)
	}
	c, err = parse([]string{"--pixel", "a", "--api-key", "from-flag"}, io.Discard, env)
	if err != nil || c.opts.APIKey != "from-flag" || c.opts.IgnoreUnknownFields {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestServesOneEvent starts the binary on a free port, posts one valid
// event, reads it back, and stops it with SIGTERM.
func TestServesOneEvent(t *testing.T) {
	const key = "sk-cmd-test-secret-value"
	cmd := exec.Command(binPath, "--addr", "127.0.0.1:0", "--pixel", "px_cmd", "--name-failing-event")
	cmd.Env = append(os.Environ(), "CAPISIM_API_KEY="+key)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var logs bytes.Buffer
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrRE := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	timeout := time.After(20 * time.Second)
	for base == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("capisim exited:\n%s", logs.String())
			}
			logs.WriteString(l + "\n")
			if m := addrRE.FindStringSubmatch(l); m != nil {
				base = m[1]
				if !strings.Contains(l, "px_cmd") {
					t.Errorf("startup line does not name the pixel: %s", l)
				}
			}
		case <-timeout:
			t.Fatalf("no startup line:\n%s", logs.String())
		}
	}

	event := map[string]any{
		"id": "order_1", "type": "order_created", "timestamp_ms": time.Now().UnixMilli(),
		"action_source": "web", "source_url": "https://shop.example.com/thanks",
		"data": map[string]any{"type": "contents", "amount": 2599, "currency": "USD",
			"contents": []any{map[string]any{"id": "sku_1", "content_type": "product", "quantity": 1}}},
	}
	body, _ := json.Marshal(map[string]any{"events": []any{event}})
	r, _ := http.NewRequest(http.MethodPost, base+"/v1/events?pid=px_cmd", bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+key)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %d %s", resp.StatusCode, rb)
	}

	resp, err = http.Get(base + "/_sim/events")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Pixel, ID, Type string
	}
	if err := json.Unmarshal(bytes.TrimSpace(rb), &got); err != nil || got.Pixel != "px_cmd" || got.ID != "order_1" {
		t.Fatalf("/_sim/events: %s (%v)", rb, err)
	}

	// Graceful stop on SIGTERM.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			logs.WriteString(l + "\n")
		case <-ctx.Done():
			t.Fatalf("capisim did not stop:\n%s", logs.String())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "stopped: 1 events accepted") {
		t.Errorf("no shutdown summary:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("the API key was logged:\n%s", logs.String())
	}
}
