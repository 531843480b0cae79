package config

import "time"

// SchemaRegistry is the schema_registry section: how the relay reaches the
// Confluent-compatible Schema Registry that holds the Avro schemas of
// `format: avro` topics. Credentials come from an environment variable or a
// file, never from the config file itself; package schemas turns this section
// into a registry client (schemas.RegistryConfigFrom).
type SchemaRegistry struct {
	// URLs are the registry's base URLs (e.g. https://sr.example.com:8081);
	// a request goes to the first and fails over to the next on a
	// connection error. Required when any topic is `format: avro` and names
	// no local schema file.
	URLs []string `yaml:"urls"`
	// Username enables HTTP basic auth, with the password from PasswordEnv or
	// PasswordFile (exactly one). Basic auth and a bearer token exclude each
	// other.
	Username string `yaml:"username"`
	// PasswordEnv names an environment variable holding the basic-auth
	// password.
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile is a file holding the basic-auth password (surrounding
	// whitespace is trimmed).
	PasswordFile string `yaml:"password_file"`
	// TokenEnv names an environment variable holding a bearer token, sent as
	// "Authorization: Bearer <token>".
	TokenEnv string `yaml:"token_env"`
	// TokenFile is a file holding the bearer token (surrounding whitespace is
	// trimmed).
	TokenFile string `yaml:"token_file"`
	// TLS configures TLS to the registry (https URLs use the system CAs by
	// default).
	TLS TLS `yaml:"tls"`
	// Timeout bounds one HTTP request to the registry (default 10s). A
	// request that times out is a transient failure: the record is retried,
	// never dead-lettered.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes is the largest string or bytes value accepted in a decoded
	// Avro record (default 8 MiB). A record with a larger value is a bad
	// record (dead-lettered). hamba/avro's own default of 1 MiB is too small
	// for some event buses.
	MaxBytes int `yaml:"max_bytes"`
}
