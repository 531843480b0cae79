package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's first command: the demo runs the real pipeline end to end and
// its reconciliation finds nothing lost, every bad-record class dead-lettered,
// and the report carries the keys it documents.
func TestDemo(t *testing.T) {
	report := filepath.Join(t.TempDir(), "demo.json")
	var out, errb bytes.Buffer
	code := runDemo([]string{"--orders", "3000", "--signups", "600", "--avro-orders", "600", "--report", report}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "lost               0") {
		t.Fatalf("summary does not say lost 0:\n%s", out.String())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"records", "events_accepted", "dead_lettered", "lost", "duplicates"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report lacks %q: %s", k, b)
		}
	}
	if rep["records"].(float64) != 4200 || rep["lost"].(float64) != 0 {
		t.Fatalf("report: %s", b)
	}
	if rep["events_accepted"].(float64) != rep["events_expected"].(float64) {
		t.Fatalf("accepted %v of %v expected events", rep["events_accepted"], rep["events_expected"])
	}
	byClass, _ := rep["dead_lettered_by_class"].(map[string]any)
	for _, c := range []string{"decode", "mapping", "expired", "rejected"} {
		if byClass[c] == nil || byClass[c].(float64) < 1 {
			t.Errorf("no %s dead letter in the demo: %v", c, byClass)
		}
	}
}
