package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/mapping"
	"github.com/capirelay/capirelay/schemas"
)

// registryCheckTimeout bounds the registry requests of one `check` run.
const registryCheckTimeout = 30 * time.Second

// localSchemas parses the local `schema:` files of an Avro topic (nil, nil
// when it names none). Errors name the file.
func localSchemas(a mapping.AvroTopic) ([]mapping.SchemaVersion, error) {
	var vs []mapping.SchemaVersion
	for i, p := range a.SchemaFiles {
		s, err := schemas.ParseSchemaFile(p)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %s", a.SchemaNames[i], strings.TrimPrefix(err.Error(), "schemas: "))
		}
		vs = append(vs, mapping.SchemaVersion{Schema: s.Avro, File: a.SchemaNames[i]})
	}
	return vs, nil
}

// checkSchemas is the resolver of `capirelay check`: an Avro topic's local
// `schema:` files when it names some, else every version of its subject in
// the registry of the schema_registry section (the client is built on first
// use; the registry is asked only for topics without local files).
func checkSchemas(f *config.File) func(mapping.AvroTopic) ([]mapping.SchemaVersion, error) {
	var (
		dec    *schemas.Decoder
		urls   string
		decErr error
		built  bool
	)
	registry := func() (*schemas.Decoder, error) {
		if built {
			return dec, decErr
		}
		built = true
		if f.SchemaRegistry.Kind == 0 {
			decErr = errors.New("no schema_registry section")
			return nil, decErr
		}
		var sc config.SchemaRegistry
		if ds := config.DecodeSection(f.Path, "schema_registry", &f.SchemaRegistry, &sc); len(ds) > 0 {
			decErr = fmt.Errorf("the schema_registry section is invalid: %s", ds[0].String())
			return nil, decErr
		}
		urls = strings.Join(sc.URLs, ", ")
		rc, err := schemas.RegistryConfigFrom(sc)
		if err == nil {
			dec, err = schemas.NewDecoder(rc)
		}
		decErr = err
		return dec, err
	}
	return func(a mapping.AvroTopic) ([]mapping.SchemaVersion, error) {
		if len(a.SchemaFiles) > 0 {
			return localSchemas(a)
		}
		d, err := registry()
		if err != nil {
			return nil, fmt.Errorf("cannot check the rules against the schema of subject %s: the topic names no local `schema:` file, and %v (name the .avsc file(s) with schema:, or set schema_registry.urls)", a.Subject, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), registryCheckTimeout)
		defer cancel()
		// The decoder's lookups scrub credentials from registry errors.
		versions, err := d.SubjectVersions(ctx, a.Subject)
		if err != nil {
			return nil, fmt.Errorf("cannot check the rules against the schema: schema registry %s: versions of subject %s: %v", urls, a.Subject, err)
		}
		var vs []mapping.SchemaVersion
		for _, v := range versions {
			s, err := d.SchemaBySubjectVersion(ctx, a.Subject, v)
			if err != nil {
				return nil, fmt.Errorf("cannot check the rules against the schema: schema registry %s: subject %s version %d: %v", urls, a.Subject, v, err)
			}
			vs = append(vs, mapping.SchemaVersion{Schema: s.Avro, Subject: a.Subject, Version: v})
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("schema registry %s: subject %s has no versions", urls, a.Subject)
		}
		return vs, nil
	}
}

// testSchemas is the resolver of `capirelay mapping test`: the local files
// only (a topic without them is not type-checked; its cases fail, see
// avroValue).
func testSchemas(*config.File) func(mapping.AvroTopic) ([]mapping.SchemaVersion, error) {
	return localSchemas
}
