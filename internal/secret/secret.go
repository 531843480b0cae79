// Package secret holds credentials (the Conversions API key, SASL passwords,
// Schema Registry tokens) so that they cannot leak by accident.
//
// A Value prints as "[redacted]" through every fmt verb, String, GoString,
// encoding/json and encoding.TextMarshaler, so a config struct that holds one can
// be logged, dumped with %+v or marshalled without revealing it. The only way to
// read the secret is Reveal, which call sites use right where the credential is
// put on the wire.
package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Redacted is what a Value prints as.
const Redacted = "[redacted]"

// Value is a secret string. The zero Value is empty.
type Value struct {
	s string
}

// New wraps s. Use it for values that come from somewhere other than Load (tests,
// flags already read from the environment).
func New(s string) Value { return Value{s: s} }

// Reveal returns the secret itself. Never pass the result to a logger, an error
// or a metric label.
func (v Value) Reveal() string { return v.s }

// IsZero reports whether the secret is empty.
func (v Value) IsZero() bool { return v.s == "" }

// String returns "[redacted]" (or "" for an empty secret, so that "is it set?"
// stays visible in dumps).
func (v Value) String() string {
	if v.s == "" {
		return ""
	}
	return Redacted
}

// GoString is like String, for %#v.
func (v Value) GoString() string { return `secret.Value("` + v.String() + `")` }

// Format makes every fmt verb (%v %s %q %x %+v %#v ...) print the redacted form.
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(v.GoString()))
		return
	}
	_, _ = f.Write([]byte(v.String()))
}

// MarshalText returns the redacted form; a Value never marshals its content.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// MarshalJSON returns the redacted form as a JSON string.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + v.String() + `"`), nil }

// Scrub replaces every occurrence of the secret in s with "[redacted]". Use it on
// text that came from elsewhere (an HTTP response body, a wrapped error) before
// that text reaches a log, an error or a dead-letter header. Secrets shorter than
// 4 bytes are not scrubbed (they would match ordinary text; such a secret is a
// configuration error anyway).
func (v Value) Scrub(s string) string {
	if len(v.s) < 4 || !strings.Contains(s, v.s) {
		return s
	}
	return strings.ReplaceAll(s, v.s, Redacted)
}

// ErrNotSet is returned by Load when neither source is configured.
var ErrNotSet = errors.New("secret not set")

// Load reads a secret from the environment variable env if env is not empty,
// else from the file at path if path is not empty. A file's content is trimmed
// of surrounding whitespace (a trailing newline is the common case). Setting both
// is an error, so that it is never ambiguous which one is in effect. Errors name
// the variable or file, never the value.
func Load(env, path string) (Value, error) {
	switch {
	case env != "" && path != "":
		return Value{}, fmt.Errorf("secret: both environment variable %s and file %s are set; choose one", env, path)
	case env != "":
		s, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(s) == "" {
			return Value{}, fmt.Errorf("secret: environment variable %s is empty or unset: %w", env, ErrNotSet)
		}
		return Value{s: strings.TrimSpace(s)}, nil
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			// The error of os.ReadFile names the path and the cause, never content.
			return Value{}, fmt.Errorf("secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return Value{}, fmt.Errorf("secret: file %s is empty: %w", path, ErrNotSet)
		}
		return Value{s: s}, nil
	}
	return Value{}, ErrNotSet
}
