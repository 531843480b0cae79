package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const key = "sk-live-0123456789abcdef"

func TestValueNeverPrints(t *testing.T) {
	v := New(key)
	type cfg struct {
		Name string
		Key  Value
		Ptr  *Value
	}
	c := cfg{Name: "x", Key: v, Ptr: &v}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("cfg", "cfg", c, "key", v)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":     fmt.Sprintf("%v", c),
		"%+v":    fmt.Sprintf("%+v", c),
		"%#v":    fmt.Sprintf("%#v", c),
		"%s":     fmt.Sprintf("%s", v),
		"%q":     fmt.Sprintf("%q", v),
		"%x":     fmt.Sprintf("%x", v),
		"String": v.String(),
		"json":   string(js),
		"slog":   logBuf.String(),
		"error":  fmt.Errorf("wrap: %v", v).Error(),
	}
	for name, out := range outputs {
		if strings.Contains(out, key) || strings.Contains(out, fmt.Sprintf("%x", key)) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s does not show %q: %s", name, Redacted, out)
		}
	}
	if v.Reveal() != key {
		t.Fatalf("Reveal = %q", v.Reveal())
	}
}

func TestScrub(t *testing.T) {
	v := New(key)
	got := v.Scrub(`{"error":"bad key ` + key + `"}`)
	if strings.Contains(got, key) || !strings.Contains(got, Redacted) {
		t.Fatalf("Scrub = %q", got)
	}
	if New("ab").Scrub("abc") != "abc" {
		t.Fatal("short secrets must not be scrubbed")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPIRELAY_TEST_KEY", " "+key+" ")
	t.Setenv("CAPIRELAY_TEST_EMPTY", "")

	tests := []struct {
		name, env, path string
		want            string
		wantErr         string
	}{
		{name: "env", env: "CAPIRELAY_TEST_KEY", want: key},
		{name: "file", path: file, want: key},
		{name: "both", env: "CAPIRELAY_TEST_KEY", path: file, wantErr: "choose one"},
		{name: "empty env", env: "CAPIRELAY_TEST_EMPTY", wantErr: "CAPIRELAY_TEST_EMPTY is empty"},
		{name: "unset env", env: "CAPIRELAY_TEST_UNSET_XYZ", wantErr: "CAPIRELAY_TEST_UNSET_XYZ"},
		{name: "missing file", path: filepath.Join(dir, "nope"), wantErr: "nope"},
		{name: "neither", wantErr: "not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Load(tt.env, tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Reveal() != tt.want {
				t.Fatalf("got %q", v.Reveal())
			}
		})
	}
	if _, err := Load("", ""); !errors.Is(err, ErrNotSet) {
		t.Fatalf("Load(\"\",\"\") = %v, want ErrNotSet", err)
	}
}
