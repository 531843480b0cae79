package schemas

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/secret"
)

// DefaultMaxByteSliceSize is the default largest string or bytes value a
// Decoder accepts: 8 MiB, eight times hamba/avro's default of 1 MiB (which
// rejects legitimate large fields on some event buses). The bound protects
// the relay from a corrupt length prefix, not from large records: Kafka's own
// message size limit bounds those.
const DefaultMaxByteSliceSize = 8 << 20

// DefaultRegistryTimeout bounds one registry request when RegistryConfig.Timeout
// is zero.
const DefaultRegistryTimeout = 10 * time.Second

// RegistryConfig says how to reach a Confluent-compatible Schema Registry.
// Secrets are secret.Values: printing or marshalling a RegistryConfig never
// shows them.
type RegistryConfig struct {
	// URLs are the registry's base URLs; a request fails over to the next
	// URL on a connection error. At least one is required.
	URLs []string
	// Username and Password enable HTTP basic auth.
	Username string
	Password secret.Value
	// BearerToken, if set, is sent as "Authorization: Bearer <token>". It
	// excludes basic auth.
	BearerToken secret.Value
	// TLS configures the HTTPS client: CA bundle, client certificate and
	// key (mTLS), server name, skip-verify.
	TLS config.TLS
	// Timeout bounds one HTTP request (default DefaultRegistryTimeout).
	Timeout time.Duration
	// MaxByteSliceSize is the largest string or bytes value accepted in a
	// record (default DefaultMaxByteSliceSize; negative: no limit).
	MaxByteSliceSize int
}

// RegistryConfigFrom turns the schema_registry section of the relay's config
// into a RegistryConfig, reading the password and token from their
// environment variables or files (secret.Load). Errors name the variable or
// file, never the secret.
func RegistryConfigFrom(c config.SchemaRegistry) (RegistryConfig, error) {
	rc := RegistryConfig{
		URLs:             append([]string(nil), c.URLs...),
		Username:         c.Username,
		TLS:              c.TLS,
		Timeout:          c.Timeout,
		MaxByteSliceSize: c.MaxBytes,
	}
	if c.PasswordEnv != "" || c.PasswordFile != "" {
		if c.Username == "" {
			return RegistryConfig{}, errors.New("schema_registry: password_env/password_file need a username")
		}
		v, err := secret.Load(c.PasswordEnv, c.PasswordFile)
		if err != nil {
			return RegistryConfig{}, fmt.Errorf("schema_registry password: %w", err)
		}
		rc.Password = v
	}
	if c.TokenEnv != "" || c.TokenFile != "" {
		v, err := secret.Load(c.TokenEnv, c.TokenFile)
		if err != nil {
			return RegistryConfig{}, fmt.Errorf("schema_registry token: %w", err)
		}
		rc.BearerToken = v
	}
	if err := rc.validate(); err != nil {
		return RegistryConfig{}, err
	}
	return rc, nil
}

func (c RegistryConfig) validate() error {
	if len(c.URLs) == 0 {
		return errors.New("schema_registry: no urls")
	}
	if !c.BearerToken.IsZero() && (c.Username != "" || !c.Password.IsZero()) {
		return errors.New("schema_registry: set either username/password or a token, not both")
	}
	if c.Username != "" && c.Password.IsZero() {
		return errors.New("schema_registry: username without a password (password_env or password_file)")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("schema_registry: tls cert_file and key_file go together")
	}
	if c.Timeout < 0 {
		return errors.New("schema_registry: negative timeout")
	}
	return nil
}

// scrub removes the configured secrets from text that came from elsewhere
// (error messages of the HTTP client, response bodies).
func (c RegistryConfig) scrub(s string) string {
	return c.BearerToken.Scrub(c.Password.Scrub(s))
}

// NewClient builds the franz-go registry client of c. The HTTP client has
// c.Timeout per request and, when c.TLS is on, the TLS configuration built
// from it (files are read now: a missing CA file is an error here, not at the
// first record).
func (c RegistryConfig) NewClient() (*sr.Client, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultRegistryTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.TLS.On() {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	opts := []sr.ClientOpt{
		sr.URLs(c.URLs...),
		sr.HTTPClient(&http.Client{Timeout: timeout, Transport: tr}),
		sr.UserAgent("capirelay"),
	}
	switch {
	case !c.BearerToken.IsZero():
		opts = append(opts, sr.BearerToken(c.BearerToken.Reveal()))
	case c.Username != "":
		opts = append(opts, sr.BasicAuth(c.Username, c.Password.Reveal()))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema_registry: %s", c.scrub(err.Error()))
	}
	return cl, nil
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, warned about at start
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("schema_registry tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("schema_registry tls: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("schema_registry tls: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
