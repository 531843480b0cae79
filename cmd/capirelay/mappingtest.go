package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/mapping"
)

func runMapping(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: capirelay mapping test --config FILE [--update] [FIXTURE...]")
		return 2
	}
	return runMappingTest(args[1:], stdout, stderr)
}

// runMappingTest implements `capirelay mapping test`: every case of every
// fixture file maps its record with the config's rules and compares the
// events (as the API JSON, identities hashed) or the error with the expected
// ones. Events are also validated with capi.Validator, its clock set to the
// case's `now` (default: the latest event timestamp).
func runMappingTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mapping test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the config `FILE` (YAML)")
	update := fs.Bool("update", false, "rewrite each case's `expect` from the actual output (review the diff before committing)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: capirelay mapping test --config FILE [--update] [FIXTURE...]\n\nRuns mapping fixtures; without FIXTURE arguments, every fixtures/*.yaml, *.yml and *.json next to the config.")
		fs.PrintDefaults()
	}
	// Accept flags after fixture paths too.
	var files []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *path == "" {
		fs.Usage()
		return 2
	}
	m, ok := loadMapper(*path, stderr, testSchemas, false)
	if !ok {
		return 1
	}
	if len(files) == 0 {
		dir := filepath.Join(filepath.Dir(*path), "fixtures")
		for _, pat := range []string{"*.yaml", "*.yml", "*.json"} {
			match, _ := filepath.Glob(filepath.Join(dir, pat))
			files = append(files, match...)
		}
		sort.Strings(files)
		if len(files) == 0 {
			fmt.Fprintf(stderr, "no fixtures in %s (add fixtures/*.yaml, see MAPPING.md)\n", dir)
			return 1
		}
	}
	var total result
	for _, f := range files {
		r := testFixtureFile(m, f, *update, stdout)
		total.passed += r.passed
		total.failed += r.failed
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", total.passed, total.failed)
	if total.failed > 0 {
		return 1
	}
	return 0
}

type result struct{ passed, failed int }

// fixtureCase is one parsed case.
type fixtureCase struct {
	name   string
	line   int
	rec    mapping.Record
	schema string // record.schema: the schema file of an Avro topic's value ("": the topic's last)
	now    time.Time
	expect *yaml.Node // the value of `expect` (nil when missing)
	caseN  *yaml.Node
}

func testFixtureFile(m *mapping.Mapper, path string, update bool, out io.Writer) result {
	var res result
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(out, "FAIL %s: %v\n", path, err)
		res.failed++
		return res
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		fmt.Fprintln(out, "FAIL "+config.SyntaxError(path, err).String())
		res.failed++
		return res
	}
	cases, ds := parseFixture(path, &doc, update)
	for _, d := range ds {
		fmt.Fprintln(out, "FAIL "+d.String())
		res.failed++
	}
	changed := false
	for _, c := range cases {
		where := fmt.Sprintf("%s:%d: %s", path, c.line, c.name)
		got, gotErr := mapCase(m, c)
		if c.expect == nil && !update {
			continue // reported by parseFixture
		}
		if update {
			setExpect(c, got, gotErr)
			changed = true
			fmt.Fprintf(out, "updated %s\n", where)
			res.passed++
			continue
		}
		if msg := checkCase(c, got, gotErr); msg != "" {
			fmt.Fprintf(out, "--- FAIL %s\n%s\n", where, indent(msg))
			res.failed++
			continue
		}
		fmt.Fprintf(out, "ok   %s\n", where)
		res.passed++
	}
	if changed && len(ds) == 0 {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err == nil {
			err = os.WriteFile(path, buf.Bytes(), 0o644)
		}
		if err != nil {
			fmt.Fprintf(out, "FAIL %s: writing: %v\n", path, err)
			res.failed++
		}
	}
	return res
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// mapCase maps the case's record: a JSON topic's value with Map, an Avro
// topic's value through the Avro encoder and decoder (mapAvroCase).
func mapCase(m *mapping.Mapper, c *fixtureCase) ([]mapping.Output, error) {
	if a, ok := m.Avro(c.rec.Topic); ok {
		return mapAvroCase(m, a, c.schema, &c.rec)
	}
	return m.Map(&c.rec, nil)
}

func outputsJSON(outs []mapping.Output) []byte {
	b := []byte{'['}
	for i, o := range outs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rule":`...)
		b = strconv.AppendQuote(b, o.Rule)
		if o.Pixel != "" {
			b = append(b, `,"pixel":`...)
			b = strconv.AppendQuote(b, o.Pixel)
		}
		b = append(b, `,"event":`...)
		b = capi.AppendEvent(b, &o.Event)
		b = append(b, '}')
	}
	return append(b, ']')
}

// canonical re-encodes JSON with sorted keys and indentation, so that equal
// documents compare equal as text and differences diff line by line.
func canonical(b []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	return string(out), err
}

func checkCase(c *fixtureCase, got []mapping.Output, gotErr error) string {
	ef := fieldsOf(c.expect)
	if e, ok := ef["error"]; ok {
		var me *mapping.MapError
		if gotErr == nil {
			js, _ := canonical(outputsJSON(got))
			return "expected an error, got events:\n" + js
		}
		errors.As(gotErr, &me)
		want := fieldsOf(e)
		var msgs []string
		if s, ok := want["contains"]; ok && !strings.Contains(gotErr.Error(), s.Value) {
			msgs = append(msgs, fmt.Sprintf("error %q does not contain %q", gotErr.Error(), s.Value))
		}
		for _, k := range []string{"field", "rule", "class"} {
			s, ok := want[k]
			if !ok {
				continue
			}
			var have string
			if me != nil {
				have = map[string]string{"field": me.Field, "rule": me.Rule, "class": me.Class}[k]
			}
			if have != s.Value {
				msgs = append(msgs, fmt.Sprintf("error %s is %q, want %q (error: %v)", k, have, s.Value, gotErr))
			}
		}
		return strings.Join(msgs, "\n")
	}
	if gotErr != nil {
		return "unexpected error: " + gotErr.Error()
	}
	now := c.now
	if now.IsZero() {
		for _, o := range got {
			if t := time.UnixMilli(o.Event.TimestampMS); t.After(now) {
				now = t
			}
		}
	}
	v := capi.Validator{Now: func() time.Time { return now }}
	var msgs []string
	for i, o := range got {
		if err := v.Validate(&o.Event); err != nil {
			msgs = append(msgs, fmt.Sprintf("event %d (rule %q) is not valid for the API: %v", i, o.Rule, err))
		}
	}
	want, err := canonical(yamlJSON(ef["events"]))
	if err != nil {
		return "expect.events: " + err.Error()
	}
	have, _ := canonical(outputsJSON(got))
	if want != have {
		msgs = append(msgs, "events differ (- expected, + actual):\n"+unifiedDiff(want, have))
	}
	return strings.Join(msgs, "\n")
}

// setExpect replaces the case's expect with the actual output.
func setExpect(c *fixtureCase, got []mapping.Output, gotErr error) {
	var js []byte
	if gotErr != nil {
		me := &mapping.MapError{Err: gotErr}
		errors.As(gotErr, &me)
		e := map[string]string{"contains": me.Err.Error()}
		if me.Field != "" {
			e["field"] = me.Field
		}
		if me.Rule != "" {
			e["rule"] = me.Rule
		}
		js, _ = json.Marshal(map[string]any{"error": e})
	} else {
		js = append(append([]byte(`{"events":`), outputsJSON(got)...), '}')
	}
	var n yaml.Node
	if err := yaml.Unmarshal(js, &n); err != nil {
		return
	}
	node := n.Content[0]
	blockStyle(node)
	if c.expect != nil {
		*c.expect = *node
		return
	}
	c.caseN.Content = append(c.caseN.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "expect"}, node)
}

func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func fieldsOf(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1]
	}
	return out
}

// parseFixture reads the cases of a fixture document strictly.
func parseFixture(path string, doc *yaml.Node, update bool) ([]*fixtureCase, config.Diagnostics) {
	var ds config.Diagnostics
	if len(doc.Content) == 0 {
		ds.Add(path, nil, "", "", "empty fixture file (want `cases:`)")
		return nil, ds
	}
	root := doc.Content[0]
	top := strictFields(path, root, &ds, "cases")
	cn := top["cases"]
	if cn == nil || cn.Kind != yaml.SequenceNode {
		ds.Add(path, root, "", "", "a fixture file holds `cases:`, a list of {name, record, expect}")
		return nil, ds
	}
	var cases []*fixtureCase
	names := map[string]bool{}
	for _, n := range cn.Content {
		f := strictFields(path, n, &ds, "name", "now", "record", "expect")
		c := &fixtureCase{line: n.Line, caseN: n, expect: f["expect"]}
		if f["name"] == nil {
			ds.Add(path, n, "", "", "case without a name")
			continue
		}
		c.name = f["name"].Value
		if names[c.name] {
			ds.Add(path, f["name"], "", "", "duplicate case name "+strconv.Quote(c.name))
		}
		names[c.name] = true
		if nw := f["now"]; nw != nil {
			t, err := time.Parse(time.RFC3339Nano, nw.Value)
			if err != nil {
				ds.Add(path, nw, "", "", "now: not an RFC 3339 time")
			}
			c.now = t
		}
		if f["record"] == nil {
			ds.Add(path, n, "", "", "case "+strconv.Quote(c.name)+" has no record")
			continue
		}
		if !parseRecord(path, f["record"], &c.rec, &c.schema, &ds) {
			continue
		}
		if c.expect != nil {
			ef := strictFields(path, c.expect, &ds, "events", "error")
			if len(ef) != 1 {
				ds.Add(path, c.expect, "", "", "expect needs exactly one of events (a list) or error ({contains, field, rule, class})")
				continue
			}
			if e := ef["error"]; e != nil {
				strictFields(path, e, &ds, "contains", "field", "rule", "class")
			}
			if e := ef["events"]; e != nil {
				if e.Kind != yaml.SequenceNode {
					ds.Add(path, e, "", "", "expect.events must be a list of {rule, pixel, event} (use [] for no events)")
					continue
				}
				for _, ev := range e.Content {
					strictFields(path, ev, &ds, "rule", "pixel", "event")
				}
			}
		} else if !update {
			ds.Add(path, n, "", "", "case "+strconv.Quote(c.name)+" has no expect (run with --update to generate it)")
			cases = append(cases, c) // --update fills it in
			continue
		}
		cases = append(cases, c)
	}
	return cases, ds
}

func strictFields(path string, n *yaml.Node, ds *config.Diagnostics, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		ds.Add(path, n, "", "", "must be a mapping with the keys "+strings.Join(allowed, ", "))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ok := false
		for _, a := range allowed {
			ok = ok || a == k.Value
		}
		if !ok {
			ds.Add(path, k, "", "", "unknown key "+strconv.Quote(k.Value)+" (allowed: "+strings.Join(allowed, ", ")+")")
			continue
		}
		out[k.Value] = n.Content[i+1]
	}
	return out
}

func parseRecord(path string, n *yaml.Node, rec *mapping.Record, schema *string, ds *config.Diagnostics) bool {
	before := len(*ds)
	f := strictFields(path, n, ds, "topic", "partition", "offset", "key", "headers", "timestamp", "value", "value_json", "schema")
	if s := f["schema"]; s != nil {
		*schema = s.Value
	}
	if t := f["topic"]; t != nil {
		rec.Topic = t.Value
	} else {
		ds.Add(path, n, "", "", "record needs a topic")
	}
	if p := f["partition"]; p != nil {
		v, err := strconv.ParseInt(p.Value, 10, 32)
		if err != nil {
			ds.Add(path, p, "", "", "partition: not an integer")
		}
		rec.Partition = int32(v)
	}
	if p := f["offset"]; p != nil {
		v, err := strconv.ParseInt(p.Value, 10, 64)
		if err != nil {
			ds.Add(path, p, "", "", "offset: not an integer")
		}
		rec.Offset = v
	}
	if k := f["key"]; k != nil {
		rec.Key = []byte(k.Value)
	}
	if h := f["headers"]; h != nil {
		switch h.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(h.Content); i += 2 {
				rec.Headers = append(rec.Headers, mapping.Header{Key: h.Content[i].Value, Value: []byte(h.Content[i+1].Value)})
			}
		case yaml.SequenceNode: // [{key, value}] for repeated keys
			for _, e := range h.Content {
				hf := strictFields(path, e, ds, "key", "value")
				if hf["key"] != nil && hf["value"] != nil {
					rec.Headers = append(rec.Headers, mapping.Header{Key: hf["key"].Value, Value: []byte(hf["value"].Value)})
				}
			}
		default:
			ds.Add(path, h, "", "", "headers: a mapping, or a list of {key, value}")
		}
	}
	if t := f["timestamp"]; t != nil {
		ts, err := time.Parse(time.RFC3339Nano, t.Value)
		if err != nil {
			ds.Add(path, t, "", "", "timestamp: not an RFC 3339 time")
		}
		rec.Timestamp = ts
	}
	switch v, vj := f["value"], f["value_json"]; {
	case v != nil && vj != nil:
		ds.Add(path, vj, "", "", "give value (a YAML tree) or value_json (JSON text), not both")
	case v != nil:
		rec.Value = yamlJSON(v)
	case vj != nil:
		rec.Value = []byte(vj.Value)
	}
	return len(*ds) == before
}

// yamlJSON converts a YAML tree to JSON text; numbers keep their written form
// when it is valid JSON.
func yamlJSON(n *yaml.Node) []byte {
	if n == nil {
		return []byte("null")
	}
	return appendYAMLJSON(nil, n)
}

func appendYAMLJSON(b []byte, n *yaml.Node) []byte {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return append(b, "null"...)
		}
		return appendYAMLJSON(b, n.Content[0])
	case yaml.AliasNode:
		return appendYAMLJSON(b, n.Alias)
	case yaml.MappingNode:
		b = append(b, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			kb, _ := json.Marshal(n.Content[i].Value)
			b = append(append(b, kb...), ':')
			b = appendYAMLJSON(b, n.Content[i+1])
		}
		return append(b, '}')
	case yaml.SequenceNode:
		b = append(b, '[')
		for i, c := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendYAMLJSON(b, c)
		}
		return append(b, ']')
	}
	switch n.ShortTag() {
	case "!!null":
		return append(b, "null"...)
	case "!!bool":
		var v bool
		_ = n.Decode(&v)
		return strconv.AppendBool(b, v)
	case "!!int", "!!float":
		if json.Valid([]byte(n.Value)) {
			return append(b, n.Value...)
		}
		var f float64
		if err := n.Decode(&f); err == nil {
			if out, err := json.Marshal(f); err == nil {
				return append(b, out...)
			}
		}
	}
	sb, _ := json.Marshal(n.Value)
	return append(b, sb...)
}

// unifiedDiff returns a unified diff of two texts, line by line, with three
// lines of context.
func unifiedDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// LCS table (fixtures are small).
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
		ai   int
		bi   int
	}
	var ops []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, line{' ', x[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, line{'-', x[i], i, j})
			i++
		default:
			ops = append(ops, line{'+', y[j], i, j})
			j++
		}
	}
	const ctx = 3
	var out strings.Builder
	for k := 0; k < len(ops); {
		if ops[k].op == ' ' {
			k++
			continue
		}
		start := max(k-ctx, 0)
		end := k
		for end < len(ops) {
			if ops[end].op != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].op == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(ops) {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		fmt.Fprintf(&out, "@@ -%d +%d @@\n", ops[start].ai+1, ops[start].bi+1)
		for _, l := range ops[start:end] {
			out.WriteByte(l.op)
			out.WriteString(l.text)
			out.WriteByte('\n')
		}
		k = end
	}
	return out.String()
}
