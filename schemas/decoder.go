package schemas

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Decoder decodes Avro records in the Confluent wire format, fetching writer
// schemas from a Schema Registry by id. It is safe for concurrent use; make
// one per registry and share it.
//
// Guarantees:
//
//   - a schema id is fetched at most once while it succeeds: schemas are
//     cached for the life of the Decoder (a registry never changes the schema
//     of an id), and concurrent misses for one id are coalesced into one
//     registry request whose result every waiter shares;
//   - each schema id is parsed into its own avro.SchemaCache, together with
//     its references, so two versions of a subject that define the same
//     named type (com.example.shop.Order v1 and v2) never see each other's
//     definition;
//   - transient failures (ErrTransient) are never cached; a definite
//     "unknown schema id" answer is cached for NegativeTTL so that a stream
//     of bad records does not become a stream of registry requests;
//   - Decode never panics on any input and never allocates more than a
//     small multiple of the payload size plus the decoded tree.
type Decoder struct {
	cl    *sr.Client
	scrub func(string) string
	o     options
	gen   *generic // the hamba engine (HambaGeneric)

	ready    sync.Map // int → *Schema
	neg      sync.Map // int → negEntry
	mu       sync.Mutex
	inflight map[int]*call
}

type negEntry struct {
	err   error
	until time.Time
}

type call struct {
	done chan struct{}
	s    *Schema
	err  error
}

// Option configures a Decoder.
type Option func(*options)

type options struct {
	maxBytes    int
	maxBytesSet bool
	generic     bool
	negativeTTL time.Duration
}

// MaxByteSliceSize sets the largest string or bytes value (including a
// decimal's bytes) accepted in a record: a longer length prefix makes the
// record a *DecodeError with Reason ReasonTooLarge. The default is
// DefaultMaxByteSliceSize (8 MiB); n < 0 removes the limit (the payload
// length still bounds every value). It overrides RegistryConfig's
// MaxByteSliceSize.
func MaxByteSliceSize(n int) Option {
	return func(o *options) { o.maxBytes, o.maxBytesSet = n, true }
}

// HambaGeneric makes Decode use hamba/avro's generic decoding into
// map[string]any followed by a normalizing pass to this package's tree shape,
// instead of the compiled decoder. The output is identical (the tests and
// FuzzDecode check it); it is several times slower and allocates about 7x as
// often (see BenchmarkDecodeOrderMap). It exists as the reference
// implementation and for benchmarks. DecodeFields always uses the compiled
// decoder.
func HambaGeneric() Option { return func(o *options) { o.generic = true } }

// NegativeTTL sets how long an "unknown schema id" answer is remembered
// (default 1 minute; 0 disables the negative cache).
func NegativeTTL(d time.Duration) Option { return func(o *options) { o.negativeTTL = d } }

// NewDecoder returns a Decoder that fetches schemas from the registry of cfg.
// It does not contact the registry: a registry that is down surfaces as
// ErrTransient from Decode, not as an error here. Errors are configuration
// errors (no URL, unreadable CA file, ...).
func NewDecoder(cfg RegistryConfig, opts ...Option) (*Decoder, error) {
	o := options{negativeTTL: time.Minute}
	for _, f := range opts {
		f(&o)
	}
	if !o.maxBytesSet {
		o.maxBytes = cfg.MaxByteSliceSize
	}
	if o.maxBytes == 0 {
		o.maxBytes = DefaultMaxByteSliceSize
	}
	if o.maxBytes < 0 {
		o.maxBytes = 0 // reader: 0 means no limit
	}
	cl, err := cfg.NewClient()
	if err != nil {
		return nil, err
	}
	return &Decoder{
		cl:       cl,
		scrub:    cfg.scrub,
		o:        o,
		gen:      newGeneric(o.maxBytes),
		inflight: map[int]*call{},
	}, nil
}

// Decode decodes one record value: the Confluent wire-format header (magic
// byte 0, 4-byte big-endian schema id) and the Avro payload written with that
// schema. It returns the value as a tree (see the package documentation for
// its shape) and the schema id from the header (0 if the header is bad).
//
// Errors: errors.Is(err, ErrTransient) when the registry could not be asked
// (retry later; never dead-letter); a *DecodeError for a bad record
// (dead-letter). Nothing else.
func (d *Decoder) Decode(ctx context.Context, b []byte) (value any, schemaID int, err error) {
	return d.decode(ctx, b, nil, d.o.generic, false)
}

// DecodeRecord is Decode building every Avro record as a *Record (fields by
// position, absent fields nil) instead of a map[string]any: the same values
// in the same places, for about half the decoding cost, as the records of
// one value take two allocations in all. Plain converts its result into
// Decode's. mapping.Mapper.MapValue takes either. It always uses the
// compiled decoder (HambaGeneric is ignored); errors are Decode's.
func (d *Decoder) DecodeRecord(ctx context.Context, b []byte) (value any, schemaID int, err error) {
	return d.decode(ctx, b, nil, false, true)
}

// DecodeRecordFields is DecodeRecord building only the fields of fs (see
// DecodeFields): the fields not asked for are absent (nil) in their record.
func (d *Decoder) DecodeRecordFields(ctx context.Context, b []byte, fs *FieldSet) (value any, schemaID int, err error) {
	return d.decode(ctx, b, fs, false, true)
}

// DecodeFields is Decode building only the fields of fs (see FieldSet); the
// rest of the payload is validated as it is skipped over, so a corrupt or
// truncated payload fails exactly as with Decode. The one exception: an
// array or map block that carries its byte size (hamba writes arrays so) is
// jumped over unread when its field is skipped, so corruption inside it
// goes unnoticed. The result is Decode's with the unrequested keys removed.
// A nil fs is Decode with the compiled decoder.
func (d *Decoder) DecodeFields(ctx context.Context, b []byte, fs *FieldSet) (value any, schemaID int, err error) {
	return d.decode(ctx, b, fs, false, false)
}

// DecodeRecordIn is DecodeRecord building the value in a's memory, which it
// reuses from one call to the next: after the first few values of a
// schema, a value takes no allocation at all but for the text of its
// decimals. It is the relay's path (one Arena per mapping worker), about a
// fifth faster per event than DecodeRecord (BENCHMARKS.md).
//
// The value lives in a and in b, and the caller owns both:
//
//   - the value, and every *Record, []any and interface value inside it, is
//     valid only until a is used again (the next DecodeRecordIn or Reset
//     with a); a plain value taken out of it (a string, an int64, a
//     time.Time: anything copied out by a type assertion) stays valid;
//   - strings point into b's payload instead of a copy of it, so b must not
//     be modified while such a string is in use (the decimal strings are
//     the exception: their text is a fresh allocation, never reused).
//
// mapping.Mapper.MapValue keeps to this: its outputs share nothing with the
// value but string bytes, so a may be reused as soon as it returns. An
// Arena is not safe for concurrent use; the zero Arena is ready to use.
// Errors are DecodeRecord's; a is reusable after one.
func (d *Decoder) DecodeRecordIn(ctx context.Context, b []byte, a *Arena) (value any, schemaID int, err error) {
	return d.decodeWith(ctx, b, nil, false, true, a)
}

func (d *Decoder) decode(ctx context.Context, b []byte, fs *FieldSet, generic, records bool) (any, int, error) {
	return d.decodeWith(ctx, b, fs, generic, records, nil)
}

// decodeWith decodes b with the compiled decoder (generic: hamba's), into a
// when a is not nil (records only).
func (d *Decoder) decodeWith(ctx context.Context, b []byte, fs *FieldSet, generic, records bool, a *Arena) (any, int, error) {
	id, payload, err := splitHeader(b)
	if err != nil {
		return nil, 0, err
	}
	s, err := d.SchemaByID(ctx, id)
	if err != nil {
		return nil, id, err
	}
	var v any
	switch {
	case a != nil:
		v, err = s.decodeIn(payload, fs, d.o.maxBytes, a)
	case generic:
		v, err = s.decodeGeneric(d.gen, payload)
	default:
		v, err = s.decode(payload, fs, d.o.maxBytes, records)
	}
	return v, id, err
}

// splitHeader checks and strips the Confluent wire-format header.
func splitHeader(b []byte) (int, []byte, error) {
	switch {
	case len(b) == 0:
		return 0, nil, &DecodeError{Reason: ReasonHeader, Err: errors.New("empty value")}
	case b[0] != 0:
		return 0, nil, &DecodeError{Reason: ReasonMagic, Err: fmt.Errorf("first byte is 0x%02x, want 0x00 (Confluent wire format)", b[0])}
	case len(b) < 5:
		return 0, nil, &DecodeError{Reason: ReasonHeader, Err: fmt.Errorf("%d bytes, want at least 5", len(b))}
	}
	var h sr.ConfluentHeader
	id, payload, err := h.DecodeID(b)
	if err != nil { // unreachable after the checks above
		return 0, nil, &DecodeError{Reason: ReasonHeader, Err: err}
	}
	return id, payload, nil
}

// SchemaByID returns the parsed schema of id, from the cache or the registry
// (coalescing concurrent misses). Errors are classified like Decode's.
func (d *Decoder) SchemaByID(ctx context.Context, id int) (*Schema, error) {
	if s, ok := d.ready.Load(id); ok {
		return s.(*Schema), nil
	}
	return d.fetch(ctx, id)
}

// SubjectVersions returns the versions of subject in the registry. Errors
// are scrubbed of credentials: errors.Is(err, ErrTransient) when the registry
// could not be asked, else the registry's answer (no such subject).
func (d *Decoder) SubjectVersions(ctx context.Context, subject string) ([]int, error) {
	vs, err := d.cl.SubjectVersions(ctx, subject)
	if err != nil {
		return nil, subjectError(subject, err, d.scrub)
	}
	return vs, nil
}

// SchemaBySubjectVersion returns the parsed schema of version of subject.
// The registry is asked which schema that is; when its id is cached (by
// Decode or SchemaByID) the cached Schema is returned, else the answer is
// parsed (its references resolved) and cached for them. Errors are
// SubjectVersions', or a *DecodeError (ReasonBadSchema) for a schema that
// cannot be used.
func (d *Decoder) SchemaBySubjectVersion(ctx context.Context, subject string, version int) (*Schema, error) {
	ss, err := d.cl.SchemaByVersion(ctx, subject, version)
	if err != nil {
		return nil, subjectError(subject+" version "+strconv.Itoa(version), err, d.scrub)
	}
	if s, ok := d.ready.Load(ss.ID); ok {
		return s.(*Schema), nil
	}
	s, err := d.parseRegistered(ctx, ss.ID, ss.Schema)
	if err != nil {
		return nil, err
	}
	cached, _ := d.ready.LoadOrStore(ss.ID, s)
	return cached.(*Schema), nil
}

func (d *Decoder) fetch(ctx context.Context, id int) (*Schema, error) {
	if e, ok := d.neg.Load(id); ok {
		if ne := e.(negEntry); time.Now().Before(ne.until) {
			return nil, ne.err
		}
		d.neg.Delete(id)
	}
	d.mu.Lock()
	if s, ok := d.ready.Load(id); ok {
		d.mu.Unlock()
		return s.(*Schema), nil
	}
	c, ok := d.inflight[id]
	if !ok {
		c = &call{done: make(chan struct{})}
		d.inflight[id] = c
		// The fetch runs detached from this caller's cancellation: other
		// callers may be waiting for it, and a schema fetched is never
		// wasted. The HTTP client's timeout bounds it.
		go d.run(context.WithoutCancel(ctx), id, c)
	}
	d.mu.Unlock()
	select {
	case <-c.done:
		return c.s, c.err
	case <-ctx.Done():
		return nil, &transientError{schemaID: id, msg: "waiting for the schema: " + ctx.Err().Error(), cause: ctx.Err()}
	}
}

func (d *Decoder) run(ctx context.Context, id int, c *call) {
	s, err := d.load(ctx, id)
	c.s, c.err = s, err
	d.mu.Lock()
	if err == nil {
		d.ready.Store(id, s)
	} else if de := (*DecodeError)(nil); errors.As(err, &de) && d.o.negativeTTL > 0 {
		d.neg.Store(id, negEntry{err: err, until: time.Now().Add(d.o.negativeTTL)})
	}
	delete(d.inflight, id)
	d.mu.Unlock()
	close(c.done)
}

// load fetches id and its references and parses them into a fresh cache.
func (d *Decoder) load(ctx context.Context, id int) (*Schema, error) {
	ss, err := d.cl.SchemaByID(ctx, id)
	if err != nil {
		return nil, classify(id, err, d.scrub)
	}
	return d.parseRegistered(ctx, id, ss)
}

// maxRefDepth bounds chains of schema references.
const maxRefDepth = 32

// parseRegistered parses a registered schema, resolving its references
// recursively into the id's own cache first.
func (d *Decoder) parseRegistered(ctx context.Context, id int, ss sr.Schema) (*Schema, error) {
	if ss.Type != sr.TypeAvro {
		return nil, &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: fmt.Errorf("schema type is %s, not AVRO", ss.Type)}
	}
	cache := &avro.SchemaCache{}
	seen := map[string]bool{}
	if err := d.resolveRefs(ctx, id, ss.References, cache, seen, 0); err != nil {
		return nil, err
	}
	as, err := avro.ParseWithCache(ss.Schema, "", cache)
	if err != nil {
		return nil, &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: err}
	}
	return newSchema(id, as, cache)
}

func (d *Decoder) resolveRefs(ctx context.Context, id int, refs []sr.SchemaReference, cache *avro.SchemaCache, seen map[string]bool, depth int) error {
	if depth > maxRefDepth {
		return &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: errors.New("schema references nested too deeply")}
	}
	for _, ref := range refs {
		key := fmt.Sprintf("%s@%d", ref.Subject, ref.Version)
		if seen[key] {
			continue
		}
		seen[key] = true
		rs, err := d.cl.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			err = classify(id, err, d.scrub)
			var de *DecodeError
			if errors.As(err, &de) {
				// The id exists but names a reference the registry does
				// not have: the schema can never be used.
				return &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: fmt.Errorf("reference %q (%s): %w", ref.Name, key, de.Err)}
			}
			return err
		}
		if rs.Type != sr.TypeAvro {
			return &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: fmt.Errorf("reference %q (%s) is %s, not AVRO", ref.Name, key, rs.Type)}
		}
		if err := d.resolveRefs(ctx, id, rs.References, cache, seen, depth+1); err != nil {
			return err
		}
		if _, err := avro.ParseWithCache(rs.Schema.Schema, "", cache); err != nil {
			return &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: fmt.Errorf("reference %q (%s): %w", ref.Name, key, err)}
		}
	}
	return nil
}

// Schema is a parsed writer schema with its compiled decoders. It is
// immutable and safe for concurrent use.
type Schema struct {
	// ID is the registry id (0 for a local schema file).
	ID int
	// Avro is the parsed schema, with its references resolved.
	Avro avro.Schema
	// Cache holds the named types of this schema and its references (and
	// nothing else).
	Cache *avro.SchemaCache

	full  *node
	progs sync.Map // FieldSet key → *node
}

func newSchema(id int, as avro.Schema, cache *avro.SchemaCache) (*Schema, error) {
	full, err := compile(as, nil)
	if err != nil {
		return nil, &DecodeError{SchemaID: id, Reason: ReasonBadSchema, Err: err}
	}
	return &Schema{ID: id, Avro: as, Cache: cache, full: full}, nil
}

func (s *Schema) program(fs *FieldSet) (*node, error) {
	t := fs.tree()
	if t == nil || t.all {
		return s.full, nil
	}
	if p, ok := s.progs.Load(fs.key); ok {
		return p.(*node), nil
	}
	p, err := compile(s.Avro, t)
	if err != nil {
		return nil, &DecodeError{SchemaID: s.ID, Reason: ReasonBadSchema, Err: err}
	}
	p2, _ := s.progs.LoadOrStore(fs.key, p)
	return p2.(*node), nil
}

// decode runs the compiled program of fs over payload.
func (s *Schema) decode(payload []byte, fs *FieldSet, maxBytes int, records bool) (any, error) {
	p, err := s.program(fs)
	if err != nil {
		return nil, err
	}
	// One copy of the payload, which decoded strings then alias: one
	// allocation for all of the record's strings, and the caller's buffer is
	// not retained.
	h := p.hint
	extra := 0
	if records {
		// Room for the decimal strings after the payload: one allocation.
		extra = int(h.nText.Load())
	}
	buf := make([]byte, len(payload), len(payload)+extra)
	copy(buf, payload)
	r := state{reader: reader{b: buf, max: maxBytes}, records: records}
	r.text = buf[len(buf):]
	if n := h.nStr.Load(); n > 0 {
		r.strs = make([]string, 0, n)
	}
	if n := h.nInt.Load(); n > 0 {
		r.ints = make([]int64, 0, n)
	}
	if n := h.nTime.Load(); n > 0 {
		r.times = make([]time.Time, 0, n)
	}
	if records {
		if n := h.nRec.Load(); n > 0 {
			r.recs = make([]Record, 0, n)
		}
		if n := h.nVal.Load(); n > 0 {
			r.vals = make([]any, 0, n)
		}
	}
	v := decodeNode(&r, p, 0)
	if r.err == nil {
		h.observe(&r.slabs, records)
	}
	return s.finish(&r, v)
}

// finish returns v, or the error of a decode that failed or left bytes.
func (s *Schema) finish(r *state, v any) (any, error) {
	if r.err != nil {
		return nil, s.payloadError(r.err)
	}
	if r.pos != len(r.b) {
		return nil, &DecodeError{SchemaID: s.ID, Reason: ReasonTrailing,
			Err: fmt.Errorf("%d of %d payload bytes left after the value", len(r.b)-r.pos, len(r.b))}
	}
	return v, nil
}

// decodeIn is decode with records, in a's memory (see DecodeRecordIn): the
// reader reads payload itself (strings alias it) and the slabs are a's,
// emptied.
func (s *Schema) decodeIn(payload []byte, fs *FieldSet, maxBytes int, a *Arena) (any, error) {
	p, err := s.program(fs)
	if err != nil {
		return nil, err
	}
	r := state{reader: reader{b: payload, max: maxBytes}, records: true}
	r.slabs = a.take()
	if n := p.hint.nText.Load(); n > 0 {
		// Decimal text escapes into events (a custom property, say): a fresh
		// allocation, never reused.
		r.text = make([]byte, 0, n)
	}
	v := decodeNode(&r, p, 0)
	a.keep(&r.slabs)
	if r.err == nil {
		p.hint.observe(&r.slabs, true)
	}
	return s.finish(&r, v)
}

func (s *Schema) payloadError(err error) error {
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return &DecodeError{SchemaID: s.ID, Reason: ReasonTooLarge, Err: err}
	}
	return &DecodeError{SchemaID: s.ID, Reason: ReasonCorrupt, Err: err}
}
