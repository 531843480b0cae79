package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/capirelay/capirelay/schemas"
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

// avroCheckConfig has an unknown field (value.totl, line 17) and a type
// mismatch (a string for quantity, line 23); KEY is the schema or subject
// line, URL the registry.
const avroCheckConfig = `schema_registry:
  urls: [URL]
topics:
  - topic: shop.orders
    format: avro
    KEY
    rules:
      - name: order-created
        when: value.status == "paid"
        event:
          type: order_created
          action_source: web
          id: value.order_id
          timestamp: value.created_at
          source_url: url.origin_path(value.checkout_url)
          data:
            amount: value.totl
            currency: value.currency
            contents:
              each: value.items
              fields:
                id: item.sku
                quantity: item.title
`

func avroCheckFiles(t *testing.T, key, url string) string {
	t.Helper()
	v1, err := schemas.Embedded(schemas.OrderV1)
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := schemas.Embedded(schemas.OrderV2)
	cfg := strings.NewReplacer("KEY", key, "URL", url).Replace(avroCheckConfig)
	dir := writeFiles(t, map[string]string{"config.yaml": cfg, "avro/order.v1.avsc": v1, "avro/order.v2.avsc": v2})
	return filepath.Join(dir, "config.yaml")
}

func TestCheckAvro(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	for _, f := range []string{schemas.OrderV1, schemas.OrderV2} {
		text, _ := schemas.Embedded(f)
		if _, _, err := reg.RegisterSchema("shop.orders-value", sr.Schema{Schema: text, Type: sr.TypeAvro}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, key, url string
		want           []string // in order, after the config path
		wantOK         bool
	}{
		{"local schema", "schema: avro/order.v2.avsc", "http://127.0.0.1:1", []string{
			`:17:26: rule "order-created" field "data.amount": value.totl: no field "totl" in record com.example.shop.Order (schema avro/order.v2.avsc)`,
			`:23:27: rule "order-created" field "data.contents.quantity": must give an int, this expression gives string (schema avro/order.v2.avsc)`,
		}, false},
		{"local schemas, both versions", "schema: [avro/order.v1.avsc, avro/order.v2.avsc]", "http://127.0.0.1:1", []string{
			`:17:26: rule "order-created" field "data.amount": value.totl: no field "totl" in record com.example.shop.Order`,
			`(schemas avro/order.v1.avsc, avro/order.v2.avsc)`,
			`:23:27: rule "order-created" field "data.contents.quantity": must give an int, this expression gives string (schemas avro/order.v1.avsc, avro/order.v2.avsc)`,
		}, false},
		{"registry, every version of the subject", "subject: shop.orders-value", reg.URL(), []string{
			`:17:26: rule "order-created" field "data.amount": value.totl: no field "totl" in record com.example.shop.Order (did you mean "total"?) (subject shop.orders-value versions 1, 2)`,
			`:23:27: rule "order-created" field "data.contents.quantity": must give an int, this expression gives string (subject shop.orders-value versions 1, 2)`,
		}, false},
		{"registry, default subject", "identity: {invalid: error}", reg.URL(), []string{
			`(subject shop.orders-value versions 1, 2)`,
		}, false},
		{"registry unreachable", "subject: shop.orders-value", "http://127.0.0.1:1", []string{
			`:6:14: field "subject": cannot check the rules against the schema: schema registry http://127.0.0.1:1: versions of subject shop.orders-value:`,
		}, false},
		{"unknown subject", "subject: nope-value", reg.URL(), []string{
			`:6:14: field "subject": cannot check the rules against the schema: schema registry ` + reg.URL() + `: versions of subject nope-value:`,
		}, false},
		{"missing local file", "schema: avro/order.v3.avsc", reg.URL(), []string{
			`:6:13: field "schema": schema avro/order.v3.avsc: open `,
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := avroCheckFiles(t, tt.key, tt.url)
			code, out := runCmd(t, "check", "--config", cfg)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
	// Fixed, the rules pass against both registered versions.
	cfg := avroCheckFiles(t, "subject: shop.orders-value", reg.URL())
	fixed := strings.NewReplacer("value.totl", "'has(value.total) ? money.minor(value.total, value.currency) : value.total_cents'",
		"item.title", "item.qty").Replace(mustRead(t, cfg))
	if err := os.WriteFile(cfg, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := runCmd(t, "check", "--config", cfg); code != 0 || !strings.Contains(out, "OK ") || strings.Contains(out, "warning:") {
		t.Errorf("fixed rules: exit %d\n%s", code, out)
	}
}

func TestMappingTestAvro(t *testing.T) {
	v2, _ := schemas.Embedded(schemas.OrderV2)
	cfg := `topics:
  - topic: o
    format: avro
    schema: order.v2.avsc
    rules:
      - name: r
        event:
          type: lead_created
          action_source: other
          id: value.order_id
          timestamp: value.created_at
          data: {amount: value.total_cents, currency: value.currency}
`
	fixture := `cases:
  - name: good
    record:
      topic: o
      value: {order_id: a, status: paid, created_at: "2026-03-19T04:00:00.123Z", currency: EUR, total_cents: 5,
              checkout_url: u, customer: {id: c, email: e}, items: [{sku: s, title: t, qty: 1, unit_price_cents: 5}]}
    expect:
      events:
        - rule: r
          event: {id: a, type: lead_created, timestamp_ms: 1773892800123, action_source: other, data: {type: customer_action, amount: 5, currency: EUR}}
  - name: value that does not fit the schema
    record:
      topic: o
      value: {order_id: a, status: paid, created_at: "2026-03-19T04:00:00Z", currency: EUR, total_cents: "5",
              checkout_url: u, customer: {id: c, email: e}, items: []}
    expect:
      error: {contains: 'does not fit order.v2.avsc: value.total_cents: want an int, got the string "5"'}
  - name: unknown enum symbol
    record:
      topic: o
      value: {order_id: a, status: lost, created_at: 0, currency: EUR, total_cents: 5, checkout_url: u, customer: {id: c, email: e}, items: []}
    expect:
      error: {contains: 'value.status: want one of the symbols pending, paid'}
  - name: schema not of the topic
    record: {topic: o, schema: order.v9.avsc, value: {}}
    expect:
      error: {contains: 'record.schema "order.v9.avsc" is not one of the topic'}
`
	dir := writeFiles(t, map[string]string{"config.yaml": cfg, "order.v2.avsc": v2, "fixtures/a.yaml": fixture})
	code, out := runCmd(t, "mapping", "test", "--config", filepath.Join(dir, "config.yaml"))
	if code != 0 || !strings.Contains(out, "4 passed, 0 failed") {
		t.Errorf("exit %d\n%s", code, out)
	}
	// Without a local schema, the cases of the topic fail clearly.
	noSchema := strings.Replace(cfg, "    schema: order.v2.avsc\n", "", 1)
	dir = writeFiles(t, map[string]string{"config.yaml": noSchema, "fixtures/a.yaml": fixture})
	code, out = runCmd(t, "mapping", "test", "--config", filepath.Join(dir, "config.yaml"))
	if code != 1 || !strings.Contains(out, "names no local `schema:` file") {
		t.Errorf("no schema: exit %d\n%s", code, out)
	}
}
