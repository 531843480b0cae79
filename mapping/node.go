package mapping

import (
	"errors"
	"strconv"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// A node evaluates one compiled expression against a record. Plain
// selections (value.a.b, item.sku, value.?x.y, value["k"]), literals, the
// record variables, ==, !=, &&, ||, !, has() and calls of capirelay's helpers
// over such operands are evaluated natively, without CEL's interpreter; every
// other expression runs as a compiled CEL program. Both paths give the same
// result (tests compare them).
type node interface {
	eval(c *ectx) (val, error)
}

// ectx is the evaluation context of one record. It is the CEL activation
// too, so CEL programs read the record without a map being built.
type ectx struct {
	rec      *Record
	value    any
	itemName string
	item     any
	headers  map[string]string
	key      string
	keySet   bool
	// The cache of the topic's value-rooted paths (see pathNode.slot),
	// indexed by slot; slot 0 is unused. state is slotUnknown until the
	// path is first looked up for the record.
	slotVals  []any
	slotState []uint8
	// plain is value with its Fields records converted to maps, for CEL
	// (built on the first CEL read of value; plainSet tells).
	plain    any
	plainSet bool
	// itemPlain: the items hold no Fields either (a JSON value).
	itemPlain bool
}

const (
	slotUnknown uint8 = iota
	slotPresent
	slotAbsent
)

// reset prepares a pooled context for a record.
func (c *ectx) reset(rec *Record, value any) {
	c.rec, c.value = rec, value
	c.itemName, c.item, c.headers, c.key, c.keySet = "", nil, nil, "", false
	c.plain, c.plainSet, c.itemPlain = nil, false, false
	clear(c.slotVals) // drop the previous record's values
	c.slotVals, c.slotState = c.slotVals[:0], c.slotState[:0]
}

// useSlots sizes the path cache for a topic with n interned paths, all
// unknown.
func (c *ectx) useSlots(n int) {
	if n == 0 {
		return
	}
	if cap(c.slotState) < n+1 {
		c.slotVals, c.slotState = make([]any, n+1), make([]uint8, n+1)
		return
	}
	c.slotVals, c.slotState = c.slotVals[:n+1], c.slotState[:n+1]
	clear(c.slotState)
}

var ectxPool = sync.Pool{New: func() any { return new(ectx) }}

// ResolveName implements interpreter.Activation.
func (c *ectx) ResolveName(name string) (any, bool) {
	switch name {
	case varValue:
		// A value with Fields records (schemas.Record) is converted to the
		// plain tree, which CEL reads natively, once per record and only
		// when a CEL program runs.
		if !c.plainSet {
			c.plain, c.plainSet = plainTree(c.value), true
		}
		return c.plain, true
	case varKey:
		return c.keyString(), true
	case varHeaders:
		return c.headerMap(), true
	case varTopic:
		return c.rec.Topic, true
	case varPartition:
		return int64(c.rec.Partition), true
	case varOffset:
		return c.rec.Offset, true
	case varTimestamp:
		return types.Timestamp{Time: c.rec.Timestamp}, true
	}
	if c.itemName != "" && name == c.itemName {
		if c.itemPlain {
			return c.item, true
		}
		return plainTree(c.item), true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (c *ectx) Parent() interpreter.Activation { return nil }

func (c *ectx) keyString() string {
	if !c.keySet {
		c.key, c.keySet = string(c.rec.Key), true
	}
	return c.key
}

// headerMap returns the headers as a map; for a repeated key the last value
// wins.
func (c *ectx) headerMap() map[string]string {
	if c.headers == nil {
		c.headers = make(map[string]string, len(c.rec.Headers))
		for _, h := range c.rec.Headers {
			c.headers[h.Key] = string(h.Value)
		}
	}
	return c.headers
}

type constNode struct{ v val }

func (n *constNode) eval(*ectx) (val, error) { return n.v, nil }

// step is one step of a path: a map key, or a list index.
type step struct {
	key   string
	idx   int
	isIdx bool
}

// pathNode reads a path below value or below the current item. A missing key,
// an out-of-range index, a step into a non-container and a null on the way
// all give absent (CEL gives "no such key" there, which is absent too).
//
// The value-rooted paths of a topic are interned when the topic is compiled
// (see pathTable): a path read by at least two path nodes, itself or through
// paths below it (value.customer for value.customer.email and
// value.customer.phone), gets a cache slot and is looked up at most once per
// record; every other value-rooted path is walked from its nearest cached
// ancestor, or from the value when none is cached.
type pathNode struct {
	item  bool
	steps []step
	// slot is the cache slot of the path (0: not cached). parent is the
	// nearest cached proper ancestor of a value-rooted path (nil: none) and
	// rest the steps from it (from the value when parent is nil) to the
	// path. lookup uses them only when slot > 0 or parent != nil; otherwise
	// it walks steps from the value or the item.
	slot   int
	parent *pathNode
	rest   []step
}

func (n *pathNode) eval(c *ectx) (val, error) {
	x, ok := n.lookup(c)
	if !ok {
		return val{}, nil
	}
	return fromAny(x), nil
}

func (n *pathNode) lookup(c *ectx) (any, bool) {
	if n.slot == 0 && n.parent == nil {
		x := c.value
		if n.item {
			x = c.item
		}
		return walk(x, n.steps)
	}
	cached := n.slot > 0 && n.slot < len(c.slotState)
	if cached {
		switch c.slotState[n.slot] {
		case slotPresent:
			return c.slotVals[n.slot], true
		case slotAbsent:
			return nil, false
		}
	}
	x, ok := c.value, true
	if n.parent != nil {
		x, ok = n.parent.lookup(c)
	}
	if ok {
		x, ok = walk(x, n.rest)
	}
	if cached {
		if ok {
			c.slotVals[n.slot], c.slotState[n.slot] = x, slotPresent
		} else {
			c.slotState[n.slot] = slotAbsent
		}
	}
	return x, ok
}

func walk(x any, steps []step) (any, bool) {
	for _, s := range steps {
		if s.isIdx {
			l, ok := x.([]any)
			if !ok || s.idx < 0 || s.idx >= len(l) {
				return nil, false
			}
			x = l[s.idx]
			continue
		}
		var ok bool
		switch m := x.(type) {
		case map[string]any:
			x, ok = m[s.key]
		case Fields:
			x, ok = m.Field(s.key)
		}
		if !ok {
			return nil, false
		}
	}
	return x, true
}

// pathTable collects the value-rooted paths of one topic's expressions;
// finish then decides which are cached.
type pathTable struct {
	infos map[string]*pathInfo // by pathKey
	nodes []*pathNode          // every value-rooted path node
}

// pathInfo is one distinct path (or a proper prefix of one).
type pathInfo struct {
	steps  []step
	uses   int       // the path nodes reading it or a path below it
	parent *pathInfo // steps[:len(steps)-1]; nil at the top
	cached *pathNode // the cache's node (nil: not cached)
}

// add records every value-rooted path node below n.
func (t *pathTable) add(n node) {
	switch n := n.(type) {
	case *pathNode:
		if n.item || len(n.steps) == 0 {
			return
		}
		t.nodes = append(t.nodes, n)
		for i := t.info(n.steps); i != nil; i = i.parent {
			i.uses++
		}
	case *hasNode:
		t.add(n.operand)
	case *callNode:
		t.add(n.arg0)
		if n.arg1 != nil {
			t.add(n.arg1)
		}
	case *moneyNode:
		t.add(n.call) // amount and currency are its arguments
	case *strCallNode:
		t.add(n.call)
	case *eqNode:
		t.add(n.a)
		t.add(n.b)
	case *logicNode:
		t.add(n.a)
		if n.b != nil {
			t.add(n.b)
		}
	case *condNode:
		t.add(n.cond)
		t.add(n.a)
		t.add(n.b)
	}
}

func (t *pathTable) info(steps []step) *pathInfo {
	key := pathKey(steps)
	if i, ok := t.infos[key]; ok {
		return i
	}
	if t.infos == nil {
		t.infos = map[string]*pathInfo{}
	}
	i := &pathInfo{steps: steps[:len(steps):len(steps)]}
	if len(steps) > 1 {
		i.parent = t.info(steps[:len(steps)-1])
	}
	t.infos[key] = i
	return i
}

// finish gives a slot to every path used more than once and links every
// path node to its nearest cached ancestor. It returns the number of slots.
func (t *pathTable) finish() int {
	n := 0
	var cache func(i *pathInfo) *pathNode // the node of i if cached, creating it
	cache = func(i *pathInfo) *pathNode {
		if i == nil || i.uses < 2 {
			return nil
		}
		if i.cached == nil {
			n++
			i.cached = &pathNode{steps: i.steps, slot: n}
			i.cached.parent, i.cached.rest = below(i, cache)
		}
		return i.cached
	}
	for _, p := range t.nodes {
		i := t.infos[pathKey(p.steps)]
		if c := cache(i); c != nil {
			p.slot, p.parent, p.rest = c.slot, c.parent, c.rest
			continue
		}
		p.parent, p.rest = below(i, cache)
		if p.parent == nil {
			p.rest = nil // walked from the value: steps
		}
	}
	return n
}

// below returns the cached node of i's nearest cached proper ancestor and
// i's steps below it (all of them when no ancestor is cached).
func below(i *pathInfo, cache func(*pathInfo) *pathNode) (*pathNode, []step) {
	for a := i.parent; a != nil; a = a.parent {
		if c := cache(a); c != nil {
			return c, i.steps[len(a.steps):]
		}
	}
	return nil, i.steps
}

// pathKey encodes steps unambiguously (keys are length-prefixed).
func pathKey(steps []step) string {
	var b []byte
	for _, s := range steps {
		if s.isIdx {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.idx), 10)
			b = append(b, ']')
			continue
		}
		b = strconv.AppendInt(b, int64(len(s.key)), 10)
		b = append(b, ':')
		b = append(b, s.key...)
	}
	return string(b)
}

// varNode reads key, topic, partition, offset or timestamp.
type varNode struct{ name string }

func (n *varNode) eval(c *ectx) (val, error) {
	switch n.name {
	case varKey:
		return val{k: kString, s: c.keyString()}, nil
	case varTopic:
		return val{k: kString, s: c.rec.Topic}, nil
	case varPartition:
		return val{k: kInt, n: int64(c.rec.Partition)}, nil
	case varOffset:
		return val{k: kInt, n: c.rec.Offset}, nil
	case varTimestamp:
		return val{k: kTime, n: c.rec.Timestamp.UnixMilli()}, nil
	}
	return val{}, errors.New("unknown variable " + n.name)
}

// hasNode is has(path.key): true when the key is present (even if null).
type hasNode struct {
	operand *pathNode
	key     string
}

func (n *hasNode) eval(c *ectx) (val, error) {
	x, ok := n.operand.lookup(c)
	if !ok {
		return val{}, nil
	}
	switch m := x.(type) {
	case map[string]any:
		_, ok = m[n.key]
	case Fields:
		_, ok = m.Field(n.key)
	default:
		return val{}, errors.New("has(): not a map")
	}
	return boolVal(ok), nil
}

func boolVal(b bool) val {
	if b {
		return val{k: kBool, n: 1}
	}
	return val{k: kBool}
}

// callNode calls a helper natively.
type callNode struct {
	fn         func(a0, a1 val) (val, error)
	arg0, arg1 node // arg1 nil for one-argument helpers
}

func (n *callNode) eval(c *ectx) (val, error) {
	a0, err := n.arg0.eval(c)
	if err != nil {
		return val{}, err
	}
	var a1 val
	if n.arg1 != nil {
		if a1, err = n.arg1.eval(c); err != nil {
			return val{}, err
		}
	}
	return n.fn(a0, a1)
}

// specialize returns a faster node for a call of a common helper over plain
// paths (or constants), falling back to n for any other argument value.
func specialize(fn string, n *callNode) node {
	if noFastPaths {
		return n
	}
	switch fn {
	case "money.minor":
		m := &moneyNode{call: n}
		m.amount, _ = n.arg0.(*pathNode)
		switch a := n.arg1.(type) {
		case *pathNode:
			m.currency = a
		case *constNode:
			exp, known := 0, false
			if a.v.k == kString {
				exp, known = currencyExponent(a.v.s)
			}
			if !known {
				return n // the generic call reports the currency
			}
			m.exp = exp
		default:
			return n
		}
		if m.amount == nil {
			return n
		}
		return m
	case "time.rfc3339", "url.origin_path":
		p, ok := n.arg0.(*pathNode)
		if !ok {
			return n
		}
		f := &strCallNode{call: n, arg: p, originPath: fn == "url.origin_path"}
		return f
	}
	return n
}

// moneyNode is money.minor(path, path or constant known currency): when the
// amount is a decimal string and the currency a known one, it computes the
// result directly (what moneyMinor does for a string); any other case goes
// to the generic call, which gives the same result for those.
type moneyNode struct {
	call     *callNode
	amount   *pathNode
	currency *pathNode // nil: a constant currency, whose exponent is exp
	exp      int
}

func (n *moneyNode) eval(c *ectx) (val, error) {
	x, _ := n.amount.lookup(c)
	s, isStr := x.(string)
	if !isStr {
		return n.call.eval(c)
	}
	exp, known := n.exp, n.currency == nil
	if !known {
		x, _ := n.currency.lookup(c)
		if cur, ok := x.(string); ok {
			exp, known = currencyExponent(cur)
		}
	}
	if !known {
		return n.call.eval(c)
	}
	m, err := decimalMinor(s, exp)
	return val{k: kInt, n: m}, err
}

// strCallNode is time.rfc3339(path) or url.origin_path(path): a string
// argument is handled directly, anything else by the generic call.
type strCallNode struct {
	call       *callNode
	arg        *pathNode
	originPath bool // url.origin_path; else time.rfc3339
}

func (n *strCallNode) eval(c *ectx) (val, error) {
	x, _ := n.arg.lookup(c)
	s, ok := x.(string)
	if !ok {
		return n.call.eval(c)
	}
	if n.originPath {
		u, err := originPath(s)
		if u == "" {
			return val{}, err
		}
		return val{k: kString, s: u}, err
	}
	t, err := parseRFC3339(s)
	return val{k: kTime, n: t.UnixMilli()}, err
}

// eqNode is a == lit or a != lit (a literal on one side).
type eqNode struct {
	a, b node
	neg  bool
}

func (n *eqNode) eval(c *ectx) (val, error) {
	a, err := n.a.eval(c)
	if err != nil {
		return val{}, err
	}
	b, err := n.b.eval(c)
	if err != nil {
		return val{}, err
	}
	if a.k == kAbsent || b.k == kAbsent {
		return val{}, nil
	}
	return boolVal(equal(a, b) != n.neg), nil
}

// equal is CEL's heterogeneous equality for scalars.
func equal(a, b val) bool {
	switch {
	case a.k == kInt && b.k == kFloat:
		return float64(a.n) == b.float()
	case a.k == kFloat && b.k == kInt:
		return a.float() == float64(b.n)
	case a.k != b.k:
		return false
	}
	switch a.k {
	case kNull:
		return true
	case kString:
		return a.s == b.s
	case kInt, kBool, kTime:
		return a.n == b.n
	case kFloat:
		return a.float() == b.float()
	}
	return false
}

// logicNode is &&, || or ! with CEL's semantics: false && error is false,
// true || error is true, whatever the order.
type logicNode struct {
	op   string // "&&", "||", "!"
	a, b node
}

func (n *logicNode) eval(c *ectx) (val, error) {
	a, aerr := evalBool(n.a, c)
	if n.op == "!" {
		if aerr != nil || a.k != kBool {
			return a, aerr
		}
		return boolVal(a.n == 0), nil
	}
	short := int64(0) // && short-circuits on false
	if n.op == "||" {
		short = 1
	}
	if aerr == nil && a.k == kBool && a.n == short {
		return a, nil
	}
	b, berr := evalBool(n.b, c)
	if berr == nil && b.k == kBool && b.n == short {
		return b, nil
	}
	if aerr != nil {
		return val{}, aerr
	}
	if berr != nil {
		return val{}, berr
	}
	if a.k != kBool {
		return a, nil
	}
	return b, nil
}

// condNode is cond ? a : b (one rule for two schema versions:
// has(value.total) ? money.minor(value.total, value.currency) : value.total_cents).
// A failing or absent condition gives its error or absent, as in CEL.
type condNode struct{ cond, a, b node }

func (n *condNode) eval(c *ectx) (val, error) {
	v, err := evalBool(n.cond, c)
	if err != nil || v.k != kBool {
		return v, err
	}
	if v.n == 1 {
		return n.a.eval(c)
	}
	return n.b.eval(c)
}

// evalBool evaluates n and reports a non-bool, non-absent result as an error.
func evalBool(n node, c *ectx) (val, error) {
	v, err := n.eval(c)
	if err != nil || v.k == kBool || v.k == kAbsent {
		return v, err
	}
	return val{}, errors.New("no such overload: want a bool, got " + v.typeName())
}

// celNode runs a CEL program.
type celNode struct{ prg cel.Program }

func (n *celNode) eval(c *ectx) (val, error) {
	out, _, err := n.prg.Eval(c)
	if err != nil {
		if isNoSuchKey(err.Error()) {
			return val{}, nil
		}
		return val{}, err
	}
	return fromRef(out)
}

// nativeNode compiles e into a native node, or returns nil when e needs CEL.
// item is the name of the current item variable ("" outside contents.each).
func nativeNode(e ast.Expr, item string) node {
	switch e.Kind() {
	case ast.LiteralKind:
		v, err := fromRef(e.AsLiteral())
		if err != nil || v.k == kOther {
			return nil
		}
		return &constNode{v}
	case ast.IdentKind:
		switch name := e.AsIdent(); name {
		case varValue:
			return &pathNode{}
		case varKey, varTopic, varPartition, varOffset, varTimestamp:
			return &varNode{name}
		default:
			if item != "" && name == item {
				return &pathNode{item: true}
			}
		}
		return nil
	case ast.SelectKind:
		sel := e.AsSelect()
		op, ok := nativeNode(sel.Operand(), item).(*pathNode)
		if !ok {
			return nil
		}
		if sel.IsTestOnly() {
			return &hasNode{operand: op, key: sel.FieldName()}
		}
		return op.with(step{key: sel.FieldName()})
	case ast.CallKind:
		call := e.AsCall()
		args := call.Args()
		if call.IsMemberFunction() {
			return nil
		}
		switch fn := call.FunctionName(); fn {
		case "_?._", "_[_]", "_[?_]":
			op, ok := nativeNode(args[0], item).(*pathNode)
			if !ok || args[1].Kind() != ast.LiteralKind {
				return nil
			}
			switch k := args[1].AsLiteral().(type) {
			case types.String:
				return op.with(step{key: string(k)})
			case types.Int:
				if fn == "_?._" {
					return nil
				}
				return op.with(step{idx: int(k), isIdx: true})
			}
			return nil
		case "_==_", "_!=_":
			if args[0].Kind() != ast.LiteralKind && args[1].Kind() != ast.LiteralKind {
				return nil
			}
			a, b := nativeNode(args[0], item), nativeNode(args[1], item)
			if a == nil || b == nil {
				return nil
			}
			return &eqNode{a: a, b: b, neg: fn == "_!=_"}
		case "_&&_", "_||_":
			a, b := nativeNode(args[0], item), nativeNode(args[1], item)
			if a == nil || b == nil {
				return nil
			}
			return &logicNode{op: fn[1:3], a: a, b: b}
		case "_?_:_":
			cond, a, b := nativeNode(args[0], item), nativeNode(args[1], item), nativeNode(args[2], item)
			if cond == nil || a == nil || b == nil {
				return nil
			}
			return &condNode{cond: cond, a: a, b: b}
		case "!_":
			a := nativeNode(args[0], item)
			if a == nil {
				return nil
			}
			return &logicNode{op: "!", a: a}
		default:
			f, arity, ok := nativeHelper(fn)
			if !ok || arity != len(args) {
				return nil
			}
			n := &callNode{fn: f}
			if n.arg0 = nativeNode(args[0], item); n.arg0 == nil {
				return nil
			}
			if arity == 2 {
				if n.arg1 = nativeNode(args[1], item); n.arg1 == nil {
					return nil
				}
			}
			return specialize(fn, n)
		}
	}
	return nil
}

func (n *pathNode) with(s step) *pathNode {
	steps := make([]step, len(n.steps), len(n.steps)+1)
	copy(steps, n.steps)
	return &pathNode{item: n.item, steps: append(steps, s)}
}

// chain returns the root identifier and the keys of e when e is a plain
// selection chain (idents, selects, optional selects, constant indexes; see
// chainSteps); integer indexes appear as "[]".
func chain(e ast.Expr) (root string, keys []string, ok bool) {
	root, steps, ok := chainSteps(e)
	if !ok {
		return "", nil, false
	}
	return root, chainKeys(steps), true
}

// chainKeys returns the keys of a chain's steps, "[]" for an index.
func chainKeys(steps []selStep) []string {
	var keys []string
	for _, s := range steps {
		if s.index != "" {
			keys = append(keys, "[]")
		} else {
			keys = append(keys, s.key)
		}
	}
	return keys
}

// visitChains calls f for every maximal selection chain in e.
func visitChains(e ast.Expr, f func(root string, keys []string)) {
	visitSel(e, false, func(root string, steps []selStep, _ bool) { f(root, chainKeys(steps)) })
}

// idents returns the record variables e references.
func idents(e ast.Expr) map[string]bool {
	out := map[string]bool{}
	visitChains(e, func(root string, _ []string) { out[root] = true })
	return out
}
