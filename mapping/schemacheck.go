package mapping

import (
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"github.com/hamba/avro/v2"
	"go.yaml.in/yaml/v3"
)

// This file type-checks the expressions of a `format: avro` topic against
// the topic's schemas (Options.Schemas), for `capirelay check`.
//
// Each schema version becomes a CEL type provider: a record is an object
// type with typed fields, an array list(T), a map map(string, T), a
// ["null", T] union T, a timestamp or date google.protobuf.Timestamp, a
// decimal, enum or uuid string, bytes and fixed bytes, other unions dyn. Each
// expression is compiled again with `value` declared as the top-level
// record's type (and the contents item as the element type of its list), so
// that cel-go's checker reports type mismatches with positions, and the
// field's static type check (typeCheck) sees the real output type.
//
// Field existence is checked by walking the selection chains of each
// expression (value.a.b, value.?a.b, has(value.a), item.sku, constant
// indexes) through every version at once: a field in no version is an
// error; a field in some versions only must be read with `?.` or inside a
// has() test (or in a branch chosen by a presence test: `has(value.x) ? ... :
// ...`, `has(value.x) && ...`, or the rule's `when` testing it), else it is a
// warning naming the versions where it is missing.

// site is one compiled expression, kept for the schema check.
type site struct {
	n     *yaml.Node
	rule  string
	field string
	src   string
	want  outKind
	ast   *cel.Ast // compiled in the run-time (dyn) environment
	each  int      // index of the contents.each site whose items this reads (-1: none)
	item  string   // the item variable (when each >= 0)
}

// diagKey identifies one diagnostic found in several schema versions.
type diagKey struct {
	line, col   int
	rule, field string
	msg         string
	warning     bool
}

type diagAcc struct {
	order []diagKey
	vers  map[diagKey][]SchemaVersion
}

func (d *diagAcc) add(k diagKey, v ...SchemaVersion) {
	if d.vers == nil {
		d.vers = map[diagKey][]SchemaVersion{}
	}
	if _, ok := d.vers[k]; !ok {
		d.order = append(d.order, k)
	}
	d.vers[k] = append(d.vers[k], v...)
}

// checkSchemas resolves the schemas of an Avro topic and checks every
// recorded expression against them.
func (c *compiler) checkSchemas(t *topic, f map[string]entry, sites []site) {
	vs, err := c.opts.Schemas(*t.avro)
	if err != nil {
		at := f["format"].v
		field := "format"
		if e, ok := f["subject"]; ok {
			at, field = e.v, "subject"
		}
		if e, ok := f["schema"]; ok {
			at, field = e.v, "schema"
		}
		c.errf(at, field, err.Error())
		return
	}
	if len(vs) == 0 {
		return
	}
	var acc diagAcc
	// Field existence, across the versions.
	guards := map[string]map[string]bool{} // rule → paths its `when` tests
	for _, s := range sites {
		if s.field == "when" {
			g := map[string]bool{}
			visitSel(s.ast.NativeRep().Expr(), false, func(root string, steps []selStep, _ bool) {
				for i, st := range steps {
					if st.opt {
						g[pathText(root, steps[:i+1])] = true
					}
				}
			})
			guards[s.rule] = g
		}
	}
	covered := make([]map[int64]bool, len(sites)) // per site: step ids resolved in some version
	for i, s := range sites {
		covered[i] = c.checkFields(&acc, sites, s, vs, guards[s.rule])
	}
	// Types, per version.
	for _, v := range vs {
		c.checkTypes(&acc, sites, covered, vs, v)
	}
	for _, k := range acc.order {
		msg := k.msg + " (" + versionLabel(acc.vers[k]) + ")"
		c.ds = append(c.ds, Diagnostic{File: c.file, Line: k.line, Col: k.col, Rule: k.rule, Field: k.field, Message: msg, Warning: k.warning})
	}
}

// pos maps a location inside the expression of node n to a YAML position:
// exact for an expression on one line written plain or quoted, the node's
// own position otherwise.
func pos(n *yaml.Node, loc common.Location) (line, col int) {
	line, col = n.Line, n.Column
	if loc == nil || loc.Line() != 1 || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return line, col
	}
	col += loc.Column()
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		col++
	}
	return line, col
}

// selStep is one step of a selection chain.
type selStep struct {
	id    int64
	key   string // field or map key; "" for an index
	index string // the index literal, for an index step
	opt   bool   // ?. or [?...], or the operand of has(): a missing key is expected
}

// chainSteps returns the root and the steps of a plain selection chain.
func chainSteps(e ast.Expr) (string, []selStep, bool) {
	switch e.Kind() {
	case ast.IdentKind:
		return e.AsIdent(), nil, true
	case ast.SelectKind:
		sel := e.AsSelect()
		r, st, ok := chainSteps(sel.Operand())
		if !ok {
			return "", nil, false
		}
		return r, append(st, selStep{id: e.ID(), key: sel.FieldName(), opt: sel.IsTestOnly()}), true
	case ast.CallKind:
		call := e.AsCall()
		switch fn := call.FunctionName(); fn {
		case "_?._", "_[_]", "_[?_]":
			args := call.Args()
			if len(args) != 2 || args[1].Kind() != ast.LiteralKind {
				return "", nil, false
			}
			r, st, ok := chainSteps(args[0])
			if !ok {
				return "", nil, false
			}
			opt := fn != "_[_]"
			switch lit := args[1].AsLiteral().(type) {
			case types.String:
				return r, append(st, selStep{id: e.ID(), key: string(lit), opt: opt}), true
			case types.Int:
				return r, append(st, selStep{id: e.ID(), index: strconv.FormatInt(int64(lit), 10), opt: opt}), true
			case types.Uint:
				return r, append(st, selStep{id: e.ID(), index: strconv.FormatUint(uint64(lit), 10), opt: opt}), true
			}
		}
	}
	return "", nil, false
}

// pathText writes a chain as CEL: value.a.?b[0].
func pathText(root string, steps []selStep) string {
	var b strings.Builder
	b.WriteString(root)
	for _, s := range steps {
		if s.index != "" {
			b.WriteString("[" + s.index + "]")
			continue
		}
		b.WriteByte('.')
		b.WriteString(s.key)
	}
	return b.String()
}

// testsPresence reports whether e tests whether a key is there: has(), ?.,
// [?k], orValue, hasValue.
func testsPresence(e ast.Expr) bool {
	found := false
	var walk func(e ast.Expr)
	walk = func(e ast.Expr) {
		if found {
			return
		}
		switch e.Kind() {
		case ast.SelectKind:
			if e.AsSelect().IsTestOnly() {
				found = true
				return
			}
			walk(e.AsSelect().Operand())
		case ast.CallKind:
			call := e.AsCall()
			switch call.FunctionName() {
			case "_?._", "_[?_]", "orValue", "hasValue":
				found = true
				return
			}
			if call.IsMemberFunction() {
				walk(call.Target())
			}
			for _, a := range call.Args() {
				walk(a)
			}
		}
	}
	walk(e)
	return found
}

// visitSel calls f for every maximal selection chain of e, with guarded true
// when the chain is read in a place chosen by a presence test.
func visitSel(e ast.Expr, guarded bool, f func(root string, steps []selStep, guarded bool)) {
	if r, st, ok := chainSteps(e); ok {
		if len(st) > 0 && st[len(st)-1].opt && e.Kind() == ast.SelectKind {
			guarded = true // has(value.a.b): every step may be missing
		}
		f(r, st, guarded)
		return
	}
	switch e.Kind() {
	case ast.SelectKind:
		sel := e.AsSelect()
		visitSel(sel.Operand(), guarded || sel.IsTestOnly(), f)
	case ast.CallKind:
		call := e.AsCall()
		args := call.Args()
		switch call.FunctionName() {
		case "_?_:_":
			g := guarded || testsPresence(args[0])
			visitSel(args[0], guarded, f)
			visitSel(args[1], g, f)
			visitSel(args[2], g, f)
			return
		case "_&&_", "_||_":
			visitSel(args[0], guarded, f)
			visitSel(args[1], guarded || testsPresence(args[0]), f)
			return
		}
		if call.IsMemberFunction() {
			visitSel(call.Target(), guarded, f)
		}
		for _, a := range args {
			visitSel(a, guarded, f)
		}
	case ast.ListKind:
		for _, a := range e.AsList().Elements() {
			visitSel(a, guarded, f)
		}
	case ast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			visitSel(me.Key(), guarded, f)
			visitSel(me.Value(), guarded, f)
		}
	case ast.StructKind:
		for _, fl := range e.AsStruct().Fields() {
			visitSel(fl.AsStructField().Value(), guarded, f)
		}
	case ast.ComprehensionKind:
		cx := e.AsComprehension()
		visitSel(cx.IterRange(), guarded, f)
		visitSel(cx.AccuInit(), guarded, f)
		visitSel(cx.LoopCondition(), guarded, f)
		visitSel(cx.LoopStep(), guarded, f)
		visitSel(cx.Result(), guarded, f)
	}
}

// deref follows a named reference.
func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// nonNull returns T of a ["null", T] union (or s itself); ok is false for a
// union of several non-null types.
func nonNull(s avro.Schema) (avro.Schema, bool) {
	s = deref(s)
	u, ok := s.(*avro.UnionSchema)
	if !ok {
		return s, true
	}
	var t avro.Schema
	for _, b := range u.Types() {
		if b.Type() == avro.Null {
			continue
		}
		if t != nil {
			return nil, false
		}
		t = deref(b)
	}
	if t == nil {
		return deref(u.Types()[0]), true
	}
	return t, true
}

// stepResult is what one step of a chain found in one schema version.
type stepResult uint8

const (
	stepUnknown stepResult = iota // the schema cannot tell (a union, a non-container: the CEL checker decides)
	stepFound
	stepMissing // the record has no such field
)

// resolveStep applies a step to schema s.
func resolveStep(s avro.Schema, st selStep) (avro.Schema, stepResult, *avro.RecordSchema) {
	s, ok := nonNull(s)
	if !ok {
		return nil, stepUnknown, nil
	}
	switch x := s.(type) {
	case *avro.RecordSchema:
		if st.key == "" {
			return nil, stepUnknown, nil
		}
		for _, f := range x.Fields() {
			if f.Name() == st.key {
				return f.Type(), stepFound, nil
			}
		}
		return nil, stepMissing, x
	case *avro.MapSchema:
		if st.key == "" {
			return nil, stepUnknown, nil
		}
		return x.Values(), stepFound, nil
	case *avro.ArraySchema:
		if st.index == "" {
			return nil, stepUnknown, nil
		}
		return x.Items(), stepFound, nil
	}
	return nil, stepUnknown, nil
}

// itemSchema returns the element schema of a contents.each site in one
// version, or nil when the list is not a plain chain of the value.
func itemSchema(each site, v SchemaVersion) avro.Schema {
	r, steps, ok := chainSteps(each.ast.NativeRep().Expr())
	if !ok || r != varValue {
		return nil
	}
	s := v.Schema
	for _, st := range steps {
		var res stepResult
		if s, res, _ = resolveStep(s, st); res != stepFound {
			return nil
		}
	}
	s, ok = nonNull(s)
	if !ok {
		return nil
	}
	if a, ok := s.(*avro.ArraySchema); ok {
		return a.Items()
	}
	return nil
}

// checkFields checks that the fields an expression selects exist. It
// returns the ids of the steps it resolved in some version.
func (c *compiler) checkFields(acc *diagAcc, sites []site, s site, vs []SchemaVersion, whenGuards map[string]bool) map[int64]bool {
	covered := map[int64]bool{}
	src := s.ast.NativeRep().SourceInfo()
	visitSel(s.ast.NativeRep().Expr(), false, func(root string, steps []selStep, guarded bool) {
		if len(steps) == 0 {
			return
		}
		cur := make([]avro.Schema, len(vs))
		for i, v := range vs {
			switch {
			case root == varValue:
				cur[i] = v.Schema
			case s.each >= 0 && root == s.item:
				cur[i] = itemSchema(sites[s.each], v)
			}
		}
		opt := guarded
		for si, st := range steps {
			opt = opt || st.opt || whenGuards[pathText(root, steps[:si+1])]
			var found, missing []SchemaVersion
			var rec *avro.RecordSchema
			var recs []*avro.RecordSchema
			for i := range vs {
				if cur[i] == nil {
					continue
				}
				next, res, r := resolveStep(cur[i], st)
				switch res {
				case stepFound:
					found = append(found, vs[i])
				case stepMissing:
					missing = append(missing, vs[i])
					rec = r
					recs = append(recs, r)
				}
				cur[i] = next
			}
			if len(found)+len(missing) > 0 {
				covered[st.id] = true
			}
			if len(missing) == 0 {
				continue
			}
			line, col := pos(s.n, src.GetStartLocation(st.id))
			path := pathText(root, steps[:si+1])
			if len(found) == 0 {
				msg := path + ": no field " + strconv.Quote(st.key) + " in record " + rec.FullName()
				if sug := suggest(st.key, recs); sug != "" {
					msg += " (did you mean " + strconv.Quote(sug) + "?)"
				}
				if opt {
					// Read only when present (?., has(), a presence
					// branch): not an error, but that part of the rule
					// never applies to these versions.
					msg += ": it is read only when present, so that part of the expression never applies to records of these versions"
				}
				acc.add(diagKey{line: line, col: col, rule: s.rule, field: s.field, msg: msg, warning: opt}, missing...)
				return
			}
			if !opt {
				msg := path + ": field " + strconv.Quote(st.key) + " of record " + rec.FullName() + " is only in " +
					versionLabel(found) + "; records written with the other versions do not have it: read it with " +
					pathText(root, steps[:si]) + ".?" + st.key + " or test has(" + path + ") first"
				acc.add(diagKey{line: line, col: col, rule: s.rule, field: s.field, msg: msg, warning: true}, missing...)
			}
			opt = true // reported once per chain
		}
	})
	return covered
}

// suggest returns the field of recs closest to name (edit distance at most
// 2), or "".
func suggest(name string, recs []*avro.RecordSchema) string {
	best, bestD := "", 3
	for _, rec := range recs {
		for _, f := range rec.Fields() {
			if d := editDistance(name, f.Name()); d < bestD {
				best, bestD = f.Name(), d
			}
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkTypes compiles every expression against version v's types.
func (c *compiler) checkTypes(acc *diagAcc, sites []site, covered []map[int64]bool, vs []SchemaVersion, v SchemaVersion) {
	prov, err := newAvroProvider(vs, v)
	if err != nil {
		c.errf(nil, "", "schema check: "+err.Error())
		return
	}
	env, err := newEnvFor(avroCELType(v.Schema), prov)
	if err != nil {
		c.errf(nil, "", "schema check: "+err.Error())
		return
	}
	itemTypes := make([]*cel.Type, len(sites))
	itemEnvs := map[string]*cel.Env{}
	for i, s := range sites {
		e := env
		if s.each >= 0 {
			it := itemTypes[s.each]
			if it == nil {
				it = cel.DynType
			}
			key := s.item + "\x00" + it.String()
			if e = itemEnvs[key]; e == nil {
				if e, err = env.Extend(cel.Variable(s.item, it)); err != nil {
					c.errf(s.n, s.field, "schema check: "+err.Error())
					continue
				}
				itemEnvs[key] = e
			}
		}
		a, iss := e.Compile(s.src)
		if iss != nil && iss.Err() != nil {
			for _, ce := range iss.Errors() {
				if strings.HasPrefix(ce.Message, "undefined field ") && covered[i][ce.ExprID] {
					continue // reported by checkFields, with the record and versions
				}
				line, col := pos(s.n, ce.Location)
				acc.add(diagKey{line: line, col: col, rule: s.rule, field: s.field, msg: "CEL: " + ce.Message}, v)
			}
			continue
		}
		out := a.OutputType()
		if s.field == "data.contents.each" {
			it := cel.DynType
			if out.Kind() == types.ListKind && len(out.Parameters()) == 1 {
				it = out.Parameters()[0]
			}
			itemTypes[i] = it
		}
		if msg := typeCheck(out, s.want); msg != "" && msg != typeCheck(s.ast.OutputType(), s.want) {
			acc.add(diagKey{line: s.n.Line, col: s.n.Column, rule: s.rule, field: s.field, msg: msg}, v)
		}
		checkHelperArgs(a, func(id int64, msg string) {
			line, col := pos(s.n, a.NativeRep().SourceInfo().GetStartLocation(id))
			acc.add(diagKey{line: line, col: col, rule: s.rule, field: s.field, msg: msg}, v)
		})
	}
}

// checkHelperArgs reports helper arguments whose static type the helper
// cannot take (the helpers are declared over dyn, so CEL's checker does not).
func checkHelperArgs(a *cel.Ast, report func(id int64, msg string)) {
	na := a.NativeRep()
	kinds := func(id int64, ok ...types.Kind) (string, bool) {
		t := na.GetType(id)
		if t == nil {
			return "", true
		}
		if t.Kind() == types.OpaqueKind && t.TypeName() == "optional_type" && len(t.Parameters()) == 1 {
			t = t.Parameters()[0]
		}
		switch t.Kind() {
		case types.DynKind, types.AnyKind, types.NullTypeKind, types.ErrorKind, types.TypeParamKind:
			return "", true
		}
		for _, k := range ok {
			if t.Kind() == k {
				return "", true
			}
		}
		return t.String(), false
	}
	var walk func(e ast.Expr)
	walk = func(e ast.Expr) {
		switch e.Kind() {
		case ast.CallKind:
			call := e.AsCall()
			args := call.Args()
			switch fn := call.FunctionName(); {
			case fn == "money.minor" && len(args) == 2:
				if got, ok := kinds(args[0].ID(), types.IntKind, types.UintKind, types.DoubleKind, types.StringKind); !ok {
					report(args[0].ID(), "money.minor: the amount must be an int, a double or a decimal string, this argument gives "+got)
				}
				if got, ok := kinds(args[1].ID(), types.StringKind); !ok {
					report(args[1].ID(), "money.minor: the currency must be a string, this argument gives "+got)
				}
			case strings.HasPrefix(fn, "time.epoch_") && len(args) == 1:
				if got, ok := kinds(args[0].ID(), types.IntKind, types.UintKind, types.DoubleKind, types.StringKind, types.TimestampKind); !ok {
					report(args[0].ID(), fn+": want an integer, a numeric string or a timestamp, this argument gives "+got)
				}
			}
			if call.IsMemberFunction() {
				walk(call.Target())
			}
			for _, x := range args {
				walk(x)
			}
		case ast.SelectKind:
			walk(e.AsSelect().Operand())
		case ast.ListKind:
			for _, x := range e.AsList().Elements() {
				walk(x)
			}
		case ast.MapKind:
			for _, en := range e.AsMap().Entries() {
				walk(en.AsMapEntry().Key())
				walk(en.AsMapEntry().Value())
			}
		case ast.ComprehensionKind:
			cx := e.AsComprehension()
			walk(cx.IterRange())
			walk(cx.AccuInit())
			walk(cx.LoopCondition())
			walk(cx.LoopStep())
			walk(cx.Result())
		}
	}
	walk(na.Expr())
}

// avroCELType is the CEL type of the values the decoder gives for s.
func avroCELType(s avro.Schema) *cel.Type {
	s = deref(s)
	var logical avro.LogicalType
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		logical = l.Logical().Type()
	}
	switch x := s.(type) {
	case *avro.RecordSchema:
		return cel.ObjectType(x.FullName())
	case *avro.ArraySchema:
		return cel.ListType(avroCELType(x.Items()))
	case *avro.MapSchema:
		return cel.MapType(cel.StringType, avroCELType(x.Values()))
	case *avro.EnumSchema:
		return cel.StringType
	case *avro.UnionSchema:
		t, ok := nonNull(x)
		if ok {
			return avroCELType(t)
		}
		var first *cel.Type
		for _, b := range x.Types() {
			if b.Type() == avro.Null {
				continue
			}
			bt := avroCELType(b)
			if first == nil {
				first = bt
			} else if !first.IsExactType(bt) {
				return cel.DynType
			}
		}
		return first
	case *avro.FixedSchema:
		if logical == avro.Decimal {
			return cel.StringType
		}
		return cel.BytesType
	}
	switch s.Type() {
	case avro.Null:
		return cel.NullType
	case avro.Boolean:
		return cel.BoolType
	case avro.Int:
		if logical == avro.Date {
			return cel.TimestampType
		}
		return cel.IntType
	case avro.Long:
		switch logical {
		case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
			return cel.TimestampType
		}
		return cel.IntType
	case avro.Float, avro.Double:
		return cel.DoubleType
	case avro.String:
		return cel.StringType
	case avro.Bytes:
		if logical == avro.Decimal {
			return cel.StringType
		}
		return cel.BytesType
	}
	return cel.DynType
}

// avroProvider is a CEL type provider over the records of one schema
// version. A field that this version lacks but another version has gets the
// other version's type (whether reading it is safe is checkFields' job).
type avroProvider struct {
	*types.Registry
	own    map[string]*avro.RecordSchema
	others []map[string]*avro.RecordSchema
}

func newAvroProvider(vs []SchemaVersion, v SchemaVersion) (*avroProvider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &avroProvider{Registry: reg, own: records(v.Schema)}
	for _, o := range vs {
		if o.Schema != v.Schema {
			p.others = append(p.others, records(o.Schema))
		}
	}
	return p, nil
}

// records collects the named records of s by full name.
func records(s avro.Schema) map[string]*avro.RecordSchema {
	out := map[string]*avro.RecordSchema{}
	var walk func(s avro.Schema)
	walk = func(s avro.Schema) {
		if _, ok := s.(*avro.RefSchema); ok {
			return // defined elsewhere in the tree
		}
		switch x := s.(type) {
		case *avro.RecordSchema:
			if out[x.FullName()] != nil {
				return
			}
			out[x.FullName()] = x
			for _, f := range x.Fields() {
				walk(f.Type())
			}
		case *avro.ArraySchema:
			walk(x.Items())
		case *avro.MapSchema:
			walk(x.Values())
		case *avro.UnionSchema:
			for _, b := range x.Types() {
				walk(b)
			}
		}
	}
	walk(s)
	return out
}

func (p *avroProvider) record(name string) (*avro.RecordSchema, bool) {
	if r := p.own[name]; r != nil {
		return r, true
	}
	for _, o := range p.others {
		if r := o[name]; r != nil {
			return r, true
		}
	}
	return nil, false
}

// FindStructType implements types.Provider.
func (p *avroProvider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.record(name); ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (p *avroProvider) FindStructFieldNames(name string) ([]string, bool) {
	r, ok := p.record(name)
	if !ok {
		return p.Registry.FindStructFieldNames(name)
	}
	names := make([]string, len(r.Fields()))
	for i, f := range r.Fields() {
		names[i] = f.Name()
	}
	return names, true
}

// FindStructFieldType implements types.Provider.
func (p *avroProvider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if _, ok := p.record(name); !ok {
		return p.Registry.FindStructFieldType(name, field)
	}
	for _, m := range append([]map[string]*avro.RecordSchema{p.own}, p.others...) {
		if r := m[name]; r != nil {
			for _, f := range r.Fields() {
				if f.Name() == field {
					return &types.FieldType{Type: avroCELType(f.Type())}, true
				}
			}
		}
	}
	return nil, false
}
