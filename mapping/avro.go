package mapping

import (
	"errors"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
	"go.yaml.in/yaml/v3"
)

// AvroTopic is the Avro configuration of a `format: avro` topic.
type AvroTopic struct {
	// Topic is the topic name.
	Topic string
	// Subject is the Schema Registry subject of the topic's values: the
	// `subject:` key, by default "<topic>-value". `capirelay check` reads
	// its versions when the topic names no local schema file. The relay does
	// not need it: a record names its writer schema by id.
	Subject string
	// SchemaFiles are the local .avsc files of the `schema:` key (one file,
	// or a list: the versions of the schema, oldest first), resolved against
	// the config file's directory; nil when the key is absent. `capirelay
	// check` type-checks the rules against them, and `capirelay mapping test`
	// encodes fixture values with them (by default with the last one).
	SchemaFiles []string
	// SchemaNames are the `schema:` entries as written in the config file,
	// parallel to SchemaFiles (for messages).
	SchemaNames []string
}

// Avro returns the Avro configuration of topic; ok is false when the topic
// is not configured or not `format: avro`.
//
// The relay decodes the value of such a topic with a schemas.Decoder (the
// schema id in the record's header selects the writer schema) and maps it
// with MapValue; Map returns an error for it.
func (m *Mapper) Avro(topic string) (AvroTopic, bool) {
	t := m.topics[topic]
	if t == nil || t.avro == nil {
		return AvroTopic{}, false
	}
	a := *t.avro
	a.SchemaFiles = append([]string(nil), a.SchemaFiles...)
	a.SchemaNames = append([]string(nil), a.SchemaNames...)
	return a, true
}

// Paths returns the value paths the rules of topic read, in the syntax of
// schemas.NewFieldSet ("order_id", "customer.email", "items.sku": dots
// between field names, arrays crossed transparently), sorted. A nil result
// means the rules read the whole value (an expression uses `value` as a
// whole, or iterates over a computed list) or the topic is not configured:
// decode everything. Building only these fields (schemas.Decoder.DecodeFields
// with schemas.NewFieldSet(m.Paths(topic)...)) gives MapValue exactly what it
// reads.
func (m *Mapper) Paths(topic string) []string {
	t := m.topics[topic]
	if t == nil || t.need == nil {
		return nil
	}
	var out []string
	all := false
	var walk func(n *need, prefix string)
	walk = func(n *need, prefix string) {
		if n.all || len(n.keys) == 0 {
			if prefix != "" {
				out = append(out, prefix)
			}
			return
		}
		for k, c := range n.keys {
			if strings.Contains(k, ".") {
				// A key with a dot cannot be named in a FieldSet path:
				// keep its parent whole.
				if prefix != "" {
					out = append(out, prefix)
				} else {
					out = nil
					all = true
				}
				continue
			}
			walk(c, join(prefix, k))
		}
	}
	walk(t.need, "")
	if all {
		return nil
	}
	sort.Strings(out)
	return compactPaths(out)
}

// compactPaths drops duplicates and paths below another path of the sorted
// list (a prefix keeps its whole subtree).
func compactPaths(p []string) []string {
	out := p[:0]
	for _, s := range p {
		if n := len(out); n > 0 && (out[n-1] == s || strings.HasPrefix(s, out[n-1]+".")) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// errAvroMap is returned by Map for an Avro topic.
func errAvroMap(topic string) error {
	return errors.New("mapping: topic " + strconv.Quote(topic) + " is format avro: decode the value with schemas.Decoder (or schemas.DecodeWireWith) and call MapValue; Map decodes JSON only")
}

// SchemaVersion is one schema an Avro topic's records may be written with,
// for the type check of Options.Schemas: a local .avsc file (File set) or a
// version of a registry subject (Subject and Version set).
type SchemaVersion struct {
	// Schema is the parsed schema (schemas.Schema.Avro), references
	// resolved.
	Schema avro.Schema
	// File is the local file as written in the config (`schema:` entry).
	File string
	// Subject and Version name a registry schema.
	Subject string
	Version int
}

// versionLabel names a set of schema versions in a message:
// "subject shop.orders-value version 2", "subject s versions 1, 2",
// "schema order.v2.avsc", "schemas order.v1.avsc, order.v2.avsc".
func versionLabel(vs []SchemaVersion) string {
	if len(vs) == 0 {
		return ""
	}
	if vs[0].File != "" {
		names := make([]string, len(vs))
		for i, v := range vs {
			names[i] = v.File
		}
		if len(vs) == 1 {
			return "schema " + names[0]
		}
		return "schemas " + strings.Join(names, ", ")
	}
	nums := make([]string, len(vs))
	for i, v := range vs {
		nums[i] = strconv.Itoa(v.Version)
	}
	if len(vs) == 1 {
		return "subject " + vs[0].Subject + " version " + nums[0]
	}
	return "subject " + vs[0].Subject + " versions " + strings.Join(nums, ", ")
}

// avroKeys reads the schema and subject keys of a topic.
func (c *compiler) avroKeys(f map[string]entry, t *topic) {
	for _, k := range []string{"schema", "subject"} {
		if e, ok := f[k]; ok && t.avro == nil {
			c.errf(e.k, k, k+" is allowed only for `format: avro` topics")
		}
	}
	if t.avro == nil {
		return
	}
	if e, ok := f["subject"]; ok {
		if v, ok := c.scalar(e.v, "subject"); ok {
			if strings.TrimSpace(v) == "" {
				c.errf(e.v, "subject", "must not be empty")
			} else {
				t.avro.Subject = v
			}
		}
	}
	e, ok := f["schema"]
	if !ok {
		return
	}
	var names []*yaml.Node
	switch e.v.Kind {
	case yaml.ScalarNode:
		names = []*yaml.Node{e.v}
	case yaml.SequenceNode:
		names = e.v.Content
		if len(names) == 0 {
			c.errf(e.v, "schema", "empty list: name one .avsc file or several (the versions, oldest first)")
		}
	default:
		c.errf(e.v, "schema", "must be a .avsc file name, or a list of them (the versions, oldest first)")
	}
	dir := filepath.Dir(c.file)
	for _, n := range names {
		v, ok := c.scalar(n, "schema")
		if !ok {
			continue
		}
		p := v
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		t.avro.SchemaFiles = append(t.avro.SchemaFiles, p)
		t.avro.SchemaNames = append(t.avro.SchemaNames, v)
	}
}
