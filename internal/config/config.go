// Package config loads capirelay's YAML configuration file: one file per relay,
// with the top-level sections kafka, api, relay, schema_registry and topics.
//
// Load checks only the top level: it rejects any other top-level key and
// keeps each section as a yaml.Node (with line and column) for the package that
// owns it. The topics section is compiled by package mapping; kafka, api, relay
// and schema_registry are reserved for the issues that build the consumer, the
// API client wiring and the Schema Registry decoder (see later issues): they are
// accepted here but not interpreted yet.
//
// Every problem is reported as a Diagnostic with the file, line and column,
// and all the problems of a file are reported together, sorted by position.
package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is a loaded configuration file.
type File struct {
	// Path is the file's path as given to Load (used in every diagnostic).
	Path string
	// Kafka is the kafka section (reserved, see later issues); zero if absent.
	Kafka yaml.Node
	// API is the api section (reserved, see later issues); zero if absent.
	API yaml.Node
	// Relay is the relay section (reserved, see later issues); zero if absent.
	Relay yaml.Node
	// SchemaRegistry is the schema_registry section (reserved, see later
	// issues); zero if absent.
	SchemaRegistry yaml.Node
	// Topics is the topics section, compiled by mapping.Compile; zero if absent.
	Topics yaml.Node
}

// Sections lists the accepted top-level keys, in documentation order.
var Sections = []string{"kafka", "api", "relay", "schema_registry", "topics"}

// Load reads and parses the file at path. It returns Diagnostics (an error)
// naming every problem of the top level, or an error from reading the file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses data as the configuration file named path (path is used only
// in diagnostics).
//
// When the only problems are unknown or duplicate top-level keys, Parse
// returns the File (with the known sections) together with the Diagnostics,
// so that a caller such as `capirelay check` can go on and report the errors
// of the sections too. A YAML syntax error or a top level that is not a
// mapping returns a nil File.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Diagnostics{SyntaxError(path, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, Diagnostics{{File: path, Line: 1, Col: 1, Message: "empty configuration file (expected the keys " + strings.Join(Sections, ", ") + ")"}}
	}
	root := doc.Content[0]
	var ds Diagnostics
	if root.Kind != yaml.MappingNode {
		ds.Add(path, root, "", "", "the top level must be a mapping with the keys "+strings.Join(Sections, ", "))
		return nil, ds
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			ds.Add(path, k, "", "", "duplicate key "+strconv.Quote(k.Value))
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "kafka":
			f.Kafka = *v
		case "api":
			f.API = *v
		case "relay":
			f.Relay = *v
		case "schema_registry":
			f.SchemaRegistry = *v
		case "topics":
			f.Topics = *v
		default:
			ds.Add(path, k, "", "", "unknown top-level key "+strconv.Quote(k.Value)+" (allowed: "+strings.Join(Sections, ", ")+")")
		}
	}
	if len(ds) > 0 {
		return f, ds.Sorted()
	}
	return f, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// SyntaxError turns an error of the YAML parser into a Diagnostic with the line
// the parser names (column 1 when it names none).
func SyntaxError(path string, err error) Diagnostic {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	d := Diagnostic{File: path, Line: 1, Col: 1, Message: "YAML syntax: " + msg}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		d.Line, _ = strconv.Atoi(m[1])
		d.Message = "YAML syntax: " + m[2]
	}
	return d
}

// Diagnostic is one error or warning about a configuration or fixture file,
// at a position. Rule and Field are set when the problem is inside a mapping
// rule ("order-created", "data.amount").
type Diagnostic struct {
	File    string
	Line    int
	Col     int
	Rule    string
	Field   string
	Message string
	// Warning marks a diagnostic that does not make the file invalid.
	Warning bool
}

// String formats the diagnostic as
//
//	FILE:LINE:COL: rule "NAME" field "data.amount": message
//	FILE:LINE:COL: warning: rule "NAME" field "id": message
//
// leaving out the rule and field parts when they are empty.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(d.Line))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(d.Col))
	b.WriteString(": ")
	if d.Warning {
		b.WriteString("warning: ")
	}
	if d.Rule != "" {
		b.WriteString("rule ")
		b.WriteString(strconv.Quote(d.Rule))
		b.WriteByte(' ')
	}
	if d.Field != "" {
		b.WriteString("field ")
		b.WriteString(strconv.Quote(d.Field))
		b.WriteByte(' ')
	}
	s := b.String()
	if d.Rule != "" || d.Field != "" {
		s = s[:len(s)-1] + ": "
	}
	return s + d.Message
}

// Diagnostics is a list of diagnostics; as an error it prints one per line.
type Diagnostics []Diagnostic

// Error joins the diagnostics with newlines.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Add appends an error diagnostic at node n's position (line 1, column 1 when
// n is nil).
func (ds *Diagnostics) Add(file string, n *yaml.Node, rule, field, msg string) {
	d := Diagnostic{File: file, Line: 1, Col: 1, Rule: rule, Field: field, Message: msg}
	if n != nil && n.Line > 0 {
		d.Line, d.Col = n.Line, n.Column
	}
	*ds = append(*ds, d)
}

// Sorted returns the diagnostics sorted by file, line and column (stable, so
// diagnostics at one position keep their order).
func (ds Diagnostics) Sorted() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return ds
}

// HasErrors reports whether any diagnostic is not a warning.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if !d.Warning {
			return true
		}
	}
	return false
}
