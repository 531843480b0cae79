package config

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSections(t *testing.T) {
	f, err := Parse("c.yaml", []byte("kafka: {brokers: [a]}\napi: {}\nrelay: {}\nschema_registry: {}\ntopics:\n  - topic: t\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != "c.yaml" || f.Topics.Line != 6 || f.Kafka.Kind == 0 || f.API.Kind == 0 || f.Relay.Kind == 0 || f.SchemaRegistry.Kind == 0 {
		t.Errorf("sections not kept: %+v", f)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown keys", "kafka: {}\nmappings: []\ntopic: []\n", []string{
			`c.yaml:2:1: unknown top-level key "mappings" (allowed: kafka, api, relay, schema_registry, topics)`,
			`c.yaml:3:1: unknown top-level key "topic"`}},
		{"duplicate", "topics: []\ntopics: []\n", []string{`c.yaml:2:1: duplicate key "topics"`}},
		{"syntax", "topics:\n  - a\n b: c\n", []string{`c.yaml:2:1: YAML syntax: did not find expected key`}},
		{"not a mapping", "- a\n", []string{`c.yaml:1:1: the top level must be a mapping`}},
		{"empty", "", []string{`c.yaml:1:1: empty configuration file`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("c.yaml", []byte(tt.src))
			if tt.name == "unknown keys" && (f == nil || f.Kafka.Kind == 0) {
				t.Error("with only key errors, Parse returns the known sections")
			}
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("want Diagnostics, got %v", err)
			}
			if len(ds) != len(tt.want) {
				t.Fatalf("want %d diagnostics, got:\n%v", len(tt.want), ds)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ds[i].String(), w) {
					t.Errorf("diagnostic %d = %q, want prefix %q", i, ds[i], w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("topics: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Errorf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestDiagnosticString(t *testing.T) {
	tests := []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{File: "f", Line: 3, Col: 7, Rule: "r", Field: "data.amount", Message: "m"}, `f:3:7: rule "r" field "data.amount": m`},
		{Diagnostic{File: "f", Line: 3, Col: 7, Rule: "r", Message: "m"}, `f:3:7: rule "r": m`},
		{Diagnostic{File: "f", Line: 3, Col: 7, Field: "format", Message: "m"}, `f:3:7: field "format": m`},
		{Diagnostic{File: "f", Line: 1, Col: 1, Message: "m"}, `f:1:1: m`},
		{Diagnostic{File: "f", Line: 1, Col: 1, Rule: "r", Field: "id", Message: "m", Warning: true}, `f:1:1: warning: rule "r" field "id": m`},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	ds := Diagnostics{{File: "f", Line: 9, Col: 1, Message: "b"}, {File: "f", Line: 2, Col: 5, Message: "a", Warning: true}}.Sorted()
	if ds[0].Line != 2 || ds.Error() != "f:2:5: warning: a\nf:9:1: b" || !ds.HasErrors() {
		t.Errorf("Sorted/Error/HasErrors: %q", ds.Error())
	}
}

func TestTLSClientConfig(t *testing.T) {
	tc, err := TLS{ServerName: "kafka.internal", InsecureSkipVerify: true}.ClientConfig()
	if err != nil || tc.ServerName != "kafka.internal" || !tc.InsecureSkipVerify || tc.MinVersion != tls.VersionTLS12 || tc.RootCAs != nil {
		t.Fatalf("got %+v, %v", tc, err)
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		tls  TLS
		want string
	}{
		{TLS{CAFile: filepath.Join(dir, "missing.pem")}, "tls.ca_file: open "},
		{TLS{CAFile: notPEM}, "tls.ca_file " + notPEM + ": no PEM certificate found"},
		{TLS{CertFile: notPEM}, "tls.cert_file/key_file: "},
	} {
		if _, err := tt.tls.ClientConfig(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.tls, err, tt.want)
		}
	}
}
