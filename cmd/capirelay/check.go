package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/mapping"
)

// runCheck implements `capirelay check --config FILE`: load the file, check
// the kafka, api, relay and schema_registry sections as `run` does, compile
// every rule (which checks keys, expressions, output types, data shapes and
// required fields), print every error and warning as FILE:LINE:COL: ..., and
// exit 1 on any error.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the config `FILE` (YAML)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: capirelay check --config FILE\n\nValidates the config file and compiles its mapping rules; exits 1 on any error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	m, ok := loadMapper(*path, stderr, checkSchemas, true)
	if !ok {
		return 1
	}
	for _, w := range m.Warnings() {
		fmt.Fprintln(stderr, w.String())
	}
	rules := 0
	for _, t := range m.Topics() {
		rules += m.Rules(t)
	}
	fmt.Fprintf(stdout, "OK %s: %d topics, %d rules, %d warnings\n", *path, len(m.Topics()), rules, len(m.Warnings()))
	return 0
}

// loadMapper loads and compiles a config file, printing every diagnostic to
// w on failure. schemas (may be nil) builds the resolver of the Avro topics'
// schemas (mapping.Options.Schemas) from the loaded file. With sections, the
// kafka, api, relay and schema_registry sections are checked too, as `run`
// checks them (`check`); `mapping test` needs only the rules.
func loadMapper(path string, w io.Writer, schemas func(*config.File) func(mapping.AvroTopic) ([]mapping.SchemaVersion, error), sections bool) (*mapping.Mapper, bool) {
	f, err := config.Load(path)
	var ds config.Diagnostics
	if f != nil {
		// Report the sections' and the rules' errors too when the top
		// level has unknown keys.
		errors.As(err, &ds)
		if sections {
			ds = append(ds, (&setup{file: f}).sectionDiagnostics(false)...)
		}
		var opts mapping.Options
		if schemas != nil {
			opts.Schemas = schemas(f)
		}
		m, cerr := mapping.Compile(f, opts)
		if len(ds) == 0 && cerr == nil {
			return m, true
		}
		var cds config.Diagnostics
		switch {
		case errors.As(cerr, &cds):
			ds = append(ds, cds...)
		case cerr != nil:
			ds = nil
			err = cerr
		default:
			ds = append(ds, m.Warnings()...)
		}
		if ds != nil {
			err = ds.Sorted()
		}
	}
	if errors.As(err, &ds) {
		errs := 0
		for _, d := range ds {
			fmt.Fprintln(w, d.String())
			if !d.Warning {
				errs++
			}
		}
		fmt.Fprintf(w, "FAIL %s: %d errors\n", path, errs)
	} else {
		fmt.Fprintln(w, err)
	}
	return nil, false
}
