package mapping

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/config"
)

// compileYAML compiles a config given as text, failing the test on error.
func compileYAML(t testing.TB, src string) *Mapper {
	t.Helper()
	m, err := compileText(src)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return m
}

func compileText(src string) (*Mapper, error) {
	f, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	return Compile(f, Options{})
}

// compileErrors returns the diagnostics of a config that must not compile.
func compileErrors(t *testing.T, src string) config.Diagnostics {
	t.Helper()
	_, err := compileText(src)
	var ds config.Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("want diagnostics, got %v", err)
	}
	return ds
}

// oneRule wraps an event body (indented 10 spaces in the final text) into a
// config with one topic "t" and one rule "r".
func oneRule(event string) string {
	return "topics:\n  - topic: t\n    rules:\n      - name: r\n        event:\n" + indentLines(event, "          ")
}

func indentLines(s, p string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = p + l
	}
	return strings.Join(lines, "\n") + "\n"
}

var testTime = time.Date(2026, 3, 19, 4, 0, 0, 0, time.UTC)

func mustValid(t *testing.T, e *capi.Event) {
	t.Helper()
	v := capi.Validator{Now: func() time.Time { return time.UnixMilli(e.TimestampMS) }}
	if err := v.Validate(e); err != nil {
		t.Errorf("event not valid for the API: %v", err)
	}
}
