package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out, &out)
	return code, out.String()
}

// TestExamples runs `check` and `mapping test` on every example, so that
// `go test ./...` proves the shipped examples and their fixtures.
func TestExamples(t *testing.T) {
	dirs, err := filepath.Glob("../../deploy/examples/*/config.yaml")
	if err != nil || len(dirs) < 4 {
		t.Fatalf("want at least 4 examples, found %v (%v)", dirs, err)
	}
	for _, cfg := range dirs {
		t.Run(filepath.Base(filepath.Dir(cfg)), func(t *testing.T) {
			code, out := runCmd(t, "check", "--config", cfg)
			if code != 0 || !strings.Contains(out, "OK "+cfg) || strings.Contains(out, "warning:") {
				t.Errorf("check exit %d:\n%s", code, out)
			}
			code, out = runCmd(t, "mapping", "test", "--config", cfg)
			if code != 0 || !strings.Contains(out, " 0 failed") || strings.Contains(out, "FAIL") {
				t.Errorf("mapping test exit %d:\n%s", code, out)
			}
			var passed int
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "ok ") {
					passed++
				}
			}
			if passed < 3 {
				t.Errorf("want at least 3 fixture cases, got %d", passed)
			}
			if !strings.Contains(out, "error") && !strings.Contains(out, "mapping error") {
				t.Errorf("every example needs a case that expects an error:\n%s", out)
			}
		})
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testConfig = `topics:
  - topic: orders
    rules:
      - name: order
        event:
          type: order_created
          id: value.id
          timestamp: time.rfc3339(value.at)
          action_source: web
          source_url: value.url
          data:
            amount: money.minor(value.total, value.cur)
            currency: value.cur
`

func TestCheck(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"good.yaml": testConfig,
		"bad.yaml": `topics:
  - topic: orders
    rules:
      - name: order
        event:
          type: lead_created
          id: '"same"'
          timestamp: value.at
          action_source: web
          data:
            amount: value.total
            contents: [{id: value.sku}]
extra: 1
`,
	})
	code, out := runCmd(t, "check", "--config", filepath.Join(dir, "good.yaml"))
	if code != 0 || !strings.Contains(out, "1 topics, 1 rules, 0 warnings") {
		t.Errorf("good config: exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	// Every error is reported, the top level's and the rules', sorted.
	code, out = runCmd(t, "check", "--config", bad)
	want := []string{
		bad + `:7:15: warning: rule "order" field "id": the id does not depend on the record`,
		bad + `:9:26: rule "order" field "source_url": required when action_source is web`,
		bad + `:11:13: rule "order" field "data.amount": amount needs currency`,
		bad + `:12:13: rule "order" field "data.contents": contents is not allowed for lead_created`,
		bad + `:13:1: unknown top-level key "extra"`,
		"FAIL " + bad + ": 4 errors",
	}
	pos := 0
	for _, w := range want {
		i := strings.Index(out[pos:], w)
		if i < 0 {
			t.Fatalf("check output lacks %q (in order):\n%s", w, out)
		}
		pos += i
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if code, _ := runCmd(t, "check"); code != 2 {
		t.Errorf("check without --config: exit %d, want 2", code)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const testFixture = `cases:
  - name: good order
    record:
      topic: orders
      value: {id: o1, at: "2026-03-19T04:00:00Z", url: "https://s.example/c", total: "12.50", cur: EUR}
    expect:
      events:
        - rule: order
          event:
            id: o1
            type: order_created
            timestamp_ms: 1773892800000
            action_source: web
            source_url: https://s.example/c
            data: {type: contents, amount: 1250, currency: EUR}
  - name: bad currency
    record:
      topic: orders
      value: {id: o2, at: "2026-03-19T04:00:00Z", url: "https://s.example/c", total: "1", cur: ZZZ}
    expect:
      error: {field: data.amount, contains: unknown currency}
`

func TestMappingTest(t *testing.T) {
	dir := writeFiles(t, map[string]string{"config.yaml": testConfig, "fixtures/orders.yaml": testFixture})
	cfg := filepath.Join(dir, "config.yaml")
	code, out := runCmd(t, "mapping", "test", "--config", cfg)
	if code != 0 || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// A wrong expectation fails with a diff naming the case and its line.
	fx := filepath.Join(dir, "fixtures/orders.yaml")
	broken := strings.Replace(testFixture, "amount: 1250", "amount: 1249", 1)
	broken = strings.Replace(broken, "contains: unknown currency", "contains: something else", 1)
	if err := os.WriteFile(fx, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runCmd(t, "mapping", "test", "--config", cfg, fx)
	for _, w := range []string{
		"--- FAIL " + fx + ":2: good order",
		"events differ (- expected, + actual):",
		`-        "amount": 1249,`,
		`+        "amount": 1250,`,
		"--- FAIL " + fx + ":16: bad currency",
		`does not contain "something else"`,
		"0 passed, 2 failed",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	// --update rewrites the expectations from the actual output.
	if code, out := runCmd(t, "mapping", "test", "--config", cfg, "--update"); code != 0 {
		t.Fatalf("--update exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "mapping", "test", "--config", cfg)
	if code != 0 || !strings.Contains(out, "2 passed, 0 failed") {
		t.Errorf("after --update: exit %d\n%s", code, out)
	}
	if s := mustRead(t, fx); !strings.Contains(s, "amount: 1250") || !strings.Contains(s, `unknown currency "ZZZ"`) {
		t.Errorf("updated fixture:\n%s", s)
	}
}

func TestMappingTestInvalidEvent(t *testing.T) {
	// The mapping succeeds, but the event is invalid for the API (source_url
	// not absolute): the case fails with the validator's reason.
	fixture := strings.Replace(testFixture, `url: "https://s.example/c"`, `url: "/c"`, 1)
	fixture = strings.Replace(fixture, "source_url: https://s.example/c", "source_url: /c", 1)
	dir := writeFiles(t, map[string]string{"config.yaml": testConfig, "fixtures/a.yaml": fixture})
	code, out := runCmd(t, "mapping", "test", "--config", filepath.Join(dir, "config.yaml"))
	if code != 1 || !strings.Contains(out, "is not valid for the API: source_url: must be an absolute URL") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

func TestMappingTestBadFixture(t *testing.T) {
	dir := writeFiles(t, map[string]string{"config.yaml": testConfig, "fixtures/a.yaml": "cases:\n  - name: x\n    recrd: {}\n"})
	code, out := runCmd(t, "mapping", "test", "--config", filepath.Join(dir, "config.yaml"))
	if code != 1 || !strings.Contains(out, `a.yaml:3:5: unknown key "recrd"`) {
		t.Errorf("exit %d\n%s", code, out)
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10"
	b := "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n11"
	got := unifiedDiff(a, b)
	want := "@@ -2 +2 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n 9\n 10\n+11\n"
	if got != want {
		t.Errorf("unifiedDiff =\n%s\nwant\n%s", got, want)
	}
	// Changes more than 6 lines apart go into separate hunks.
	got = unifiedDiff("a\n1\n2\n3\n4\n5\n6\n7\nb", "A\n1\n2\n3\n4\n5\n6\n7\nB")
	want = "@@ -1 +1 @@\n-a\n+A\n 1\n 2\n 3\n@@ -6 +6 @@\n 5\n 6\n 7\n-b\n+B\n"
	if got != want {
		t.Errorf("unifiedDiff =\n%s\nwant\n%s", got, want)
	}
	if unifiedDiff("same", "same") != "" {
		t.Error("equal texts must give an empty diff")
	}
}

func TestRunDispatch(t *testing.T) {
	if code, out := runCmd(t, "nope"); code != 2 || !strings.Contains(out, `unknown command "nope"`) {
		t.Errorf("unknown command: %d %s", code, out)
	}
	if code, out := runCmd(t); code != 2 || !strings.Contains(out, "check") {
		t.Errorf("no command: %d %s", code, out)
	}
	if code, out := runCmd(t, "version"); code != 0 || !strings.HasPrefix(out, "capirelay ") {
		t.Errorf("version: %d %s", code, out)
	}
	if code, _ := runCmd(t, "mapping", "nope"); code != 2 {
		t.Errorf("mapping nope: %d", code)
	}
}
