package mapping

import (
	"sort"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/capi"
	"github.com/capirelay/capirelay/internal/config"
)

// Diagnostic is an error or warning about the rule file, with its position.
type Diagnostic = config.Diagnostic

// Formats a topic can have.
const (
	// FormatJSON: the value is a JSON document; Map decodes it.
	FormatJSON = "json"
	// FormatAvro: the value is Avro in the Confluent wire format; the caller
	// decodes it (schemas.Decoder) and calls MapValue. See AvroTopic.
	FormatAvro = "avro"
)

// outKind is what a field wants from its expression, for the static type check
// and the conversion of the result.
type outKind uint8

const (
	wantString    outKind = iota // string
	wantID                       // string or int (written in decimal)
	wantInt                      // int (quantity)
	wantAmount                   // int of minor units
	wantTime                     // timestamp or int of Unix ms
	wantBool                     // bool
	wantStrings                  // string or list of strings
	wantAny                      // any JSON value (custom properties)
	wantList                     // list (contents.each)
	wantStringMap                // map string → string (variant_dict)
)

// expr is one compiled expression.
type expr struct {
	node node
	ast  *cel.Ast // nil for a constant written plainly
}

// A rule, compiled.
type rule struct {
	name     string
	pixel    string
	when     node
	typ      capi.EventType
	dataType capi.DataType

	id, timestamp      node // timestamp nil: the record timestamp
	customName, source node
	sourceURL, oppRef  node
	optOut             node
	identity           [numIdentity]node
	lists              [numLists]node
	strs               [numStrs]node
	amount, currency   node
	planID             node
	contents           *contentsSpec
	props              []prop
}

type prop struct {
	name string
	n    node
}

type contentFields struct {
	id, groupID, name, contentType, quantity, amount, currency, variantDict node
}

type contentsSpec struct {
	each   node   // nil: a static list
	as     string // the item variable
	fields contentFields
	static []contentFields
}

const (
	numIdentity = 5 // email, phone, external_id, first_name, last_name (capi.IdentityField order)
	numLists    = 4 // countries, regions, cities, postal_codes
	numStrs     = 4 // ip_address, user_agent, obref, android_advertising_id
)

var (
	identityKeys = [numIdentity]string{"email", "phone", "external_id", "first_name", "last_name"}
	listKeys     = [numLists]string{"countries", "regions", "cities", "postal_codes"}
	strKeys      = [numStrs]string{"ip_address", "user_agent", "obref", "android_advertising_id"}
)

// topic is the compiled configuration of one topic.
type topic struct {
	name        string
	format      string
	hasher      *capi.Hasher
	dropInvalid bool
	rules       []*rule
	need        *need      // keys the rules read; nil: decode everything
	avro        *AvroTopic // nil unless format avro
	nslots      int        // interned value paths (see pathTable)
}

// Mapper turns records into events with the compiled rules of a config file.
// It is immutable after Compile and safe for concurrent use by any number of
// goroutines.
type Mapper struct {
	topics   map[string]*topic
	order    []string
	warnings []Diagnostic
}

// Topics returns the configured topics, in file order.
func (m *Mapper) Topics() []string { return append([]string(nil), m.order...) }

// Format returns the format of topic ("json"), or "" for a topic without
// rules.
func (m *Mapper) Format(topic string) string {
	if t := m.topics[topic]; t != nil {
		return t.format
	}
	return ""
}

// Rules returns the number of rules of topic.
func (m *Mapper) Rules(topic string) int {
	if t := m.topics[topic]; t != nil {
		return len(t.rules)
	}
	return 0
}

// Warnings returns what `capirelay check` warns about (a constant id, an id
// built only from the offset, ...), sorted by position.
func (m *Mapper) Warnings() []Diagnostic { return append([]Diagnostic(nil), m.warnings...) }

type compiler struct {
	file     string
	env      *cel.Env
	itemEnvs map[string]*cel.Env
	ds       config.Diagnostics
	rule     string
	hasher   *capi.Hasher

	need       *need
	paths      *pathTable // the value paths of the topic being compiled
	eachExpr   bool       // compiling contents.each: a plain chain is not a whole-value read
	itemPrefix []string   // the each chain while compiling item fields; nil: not a plain chain
	inItem     bool

	opts  Options
	sites *[]site // the expressions of the topic being compiled, for the schema check; nil: not recorded
	each  int     // index in sites of the contents.each being compiled (-1: none)
}

// Compile compiles the topics section of file. On any error it returns a
// config.Diagnostics listing every error (and warning) of the file sorted by
// position, formatted FILE:LINE:COL: rule "NAME" field "data.amount": message.
// Compile checks statically everything that can be known before a record
// arrives: keys, expression syntax and types, the event type's data shape,
// and the fields the event type requires.
func Compile(file *config.File, opts Options) (*Mapper, error) {
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	h := opts.Hasher
	if h == nil {
		h = &capi.Hasher{}
	}
	c := &compiler{file: file.Path, env: env, itemEnvs: map[string]*cel.Env{}, hasher: h, opts: opts, each: -1}
	m := &Mapper{topics: map[string]*topic{}}
	tn := &file.Topics
	switch {
	case tn.Kind == 0:
		c.ds.Add(file.Path, nil, "", "", "no topics: add a `topics:` list (see MAPPING.md)")
	case tn.Kind != yaml.SequenceNode:
		c.errf(tn, "", "topics must be a list of topics")
	default:
		ruleNames := map[string]bool{}
		for _, n := range tn.Content {
			t := c.topic(n, ruleNames)
			if t == nil {
				continue
			}
			if m.topics[t.name] != nil {
				c.errf(n, "", "topic "+strconv.Quote(t.name)+" is configured twice; put all its rules in one entry")
				continue
			}
			m.topics[t.name] = t
			m.order = append(m.order, t.name)
		}
	}
	ds := c.ds.Sorted()
	for _, d := range ds {
		if d.Warning {
			m.warnings = append(m.warnings, d)
		}
	}
	if ds.HasErrors() {
		return nil, ds
	}
	return m, nil
}

func (c *compiler) errf(n *yaml.Node, field, msg string) {
	c.ds.Add(c.file, n, c.rule, field, msg)
}

func (c *compiler) warnf(n *yaml.Node, field, msg string) {
	c.ds.Add(c.file, n, c.rule, field, msg)
	c.ds[len(c.ds)-1].Warning = true
}

type entry struct{ k, v *yaml.Node }

// fields reads a mapping node strictly: unknown and duplicate keys are errors.
func (c *compiler) fields(n *yaml.Node, field string, allowed ...string) map[string]entry {
	out := map[string]entry{}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		c.errf(n, field, "must be a mapping with the keys "+strings.Join(allowed, ", "))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if _, dup := out[k.Value]; dup {
			c.errf(k, join(field, k.Value), "duplicate key "+strconv.Quote(k.Value))
			continue
		}
		ok := false
		for _, a := range allowed {
			if a == k.Value {
				ok = true
				break
			}
		}
		if !ok {
			msg := "unknown key " + strconv.Quote(k.Value) + " (allowed: " + strings.Join(allowed, ", ") + ")"
			if h := keyHints[k.Value]; h != "" {
				msg += "; " + h
			}
			c.errf(k, join(field, k.Value), msg)
			continue
		}
		out[k.Value] = entry{k, v}
	}
	return out
}

// keyHints explains common mistakes: legacy API names and fields that do not
// exist.
var keyHints = map[string]string{
	"price":                "there is no price field: use amount (the unit price in minor units, e.g. money.minor(item.price, value.currency))",
	"value":                "use amount (minor units) and currency",
	"event_name":           "the legacy name of type",
	"event_id":             "the legacy name of id",
	"event_time_epoch_ms":  "the legacy name of timestamp_ms: write timestamp",
	"timestamp_ms":         "write timestamp (a CEL timestamp or Unix ms, or `record`)",
	"event_source_url":     "the legacy name of source_url",
	"event_data":           "the legacy name of data",
	"oppcref":              "the field is oppref",
	"emails_sha256":        "write email with the raw value; the relay normalizes and hashes it",
	"phone_numbers_sha256": "write phone with the raw value; the relay normalizes and hashes it",
	"external_ids_sha256":  "write external_id with the raw value; the relay hashes it",
	"emails":               "write email (a string or a list)",
	"phones":               "write phone (a string or a list)",
	"country":              "write countries (a string or a list)",
	"zip_code":             "write postal_codes",
	"city":                 "write cities",
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// scalar returns a scalar's value, reporting other node kinds.
func (c *compiler) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		c.errf(n, field, "must be a plain value, not a list or mapping")
		return "", false
	}
	if n.Tag == "!!null" {
		c.errf(n, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

func (c *compiler) topic(n *yaml.Node, ruleNames map[string]bool) *topic {
	c.rule = ""
	f := c.fields(n, "", "topic", "format", "schema", "subject", "identity", "rules")
	e, ok := f["topic"]
	if !ok {
		c.errf(n, "", "topic entry without a `topic:` name")
		return nil
	}
	name, ok := c.scalar(e.v, "topic")
	if !ok {
		return nil
	}
	t := &topic{name: name, format: FormatJSON, hasher: c.hasher}
	if e, ok := f["format"]; ok {
		if v, ok := c.scalar(e.v, "format"); ok {
			switch v {
			case FormatJSON:
			case FormatAvro:
				t.format = FormatAvro
				t.avro = &AvroTopic{Topic: name, Subject: name + "-value"}
			default:
				c.errf(e.v, "format", "unknown format "+strconv.Quote(v)+" (supported: json, avro)")
			}
		}
	}
	c.avroKeys(f, t)
	if e, ok := f["identity"]; ok {
		c.identity(e.v, t)
	}
	c.need = &need{}
	c.paths = &pathTable{}
	c.sites = nil
	var sites []site
	if t.avro != nil && c.opts.Schemas != nil {
		c.sites = &sites
	}
	e, ok = f["rules"]
	if !ok || e.v.Kind != yaml.SequenceNode || len(e.v.Content) == 0 {
		at := n
		if ok {
			at = e.v
		}
		c.errf(at, "", "topic "+strconv.Quote(name)+" needs a non-empty `rules:` list")
		return t
	}
	for _, rn := range e.v.Content {
		if r := c.compileRule(rn, ruleNames, t); r != nil {
			t.rules = append(t.rules, r)
		}
	}
	c.rule = ""
	if !c.need.all {
		t.need = c.need
	}
	t.nslots = c.paths.finish()
	if c.sites != nil {
		c.sites = nil
		c.checkSchemas(t, f, sites)
	}
	return t
}

var policyNames = map[string]capi.PrehashedPolicy{
	"accept": capi.PrehashedAccept, "reject": capi.PrehashedReject, "as_raw": capi.PrehashedAsRaw,
}

func (c *compiler) identity(n *yaml.Node, t *topic) {
	f := c.fields(n, "identity", "prehashed", "invalid")
	if e, ok := f["prehashed"]; ok {
		pf := c.fields(e.v, "identity.prehashed", identityKeys[:]...)
		if len(pf) > 0 {
			h := &capi.Hasher{Policy: map[capi.IdentityField]capi.PrehashedPolicy{}}
			for k, p := range c.hasher.Policy {
				h.Policy[k] = p
			}
			for i, k := range identityKeys {
				if e, ok := pf[k]; ok {
					v, _ := c.scalar(e.v, "identity.prehashed."+k)
					p, ok := policyNames[v]
					if !ok {
						c.errf(e.v, "identity.prehashed."+k, "unknown policy "+strconv.Quote(v)+" (want accept, reject or as_raw)")
						continue
					}
					h.Policy[capi.IdentityField(i)] = p
				}
			}
			t.hasher = h
		}
	}
	if e, ok := f["invalid"]; ok {
		switch v, _ := c.scalar(e.v, "identity.invalid"); v {
		case "error":
		case "drop":
			t.dropInvalid = true
		default:
			c.errf(e.v, "identity.invalid", "unknown value "+strconv.Quote(v)+" (want error or drop)")
		}
	}
}

func (c *compiler) compileRule(n *yaml.Node, names map[string]bool, t *topic) *rule {
	c.rule = ""
	f := c.fields(n, "", "name", "when", "pixel", "event")
	e, ok := f["name"]
	if !ok {
		c.errf(n, "", "rule without a `name:` (the name appears in errors, dead-letter headers and metrics)")
		return nil
	}
	name, ok := c.scalar(e.v, "name")
	if !ok {
		return nil
	}
	c.rule = name
	if names[name] {
		c.errf(e.v, "name", "rule name "+strconv.Quote(name)+" is used twice in this file; names must be unique")
	}
	names[name] = true
	r := &rule{name: name}
	if e, ok := f["when"]; ok {
		r.when = c.expr(e.v, "when", wantBool).node
	}
	if e, ok := f["pixel"]; ok {
		r.pixel, _ = c.scalar(e.v, "pixel")
	}
	e, ok = f["event"]
	if !ok {
		c.errf(n, "", "rule without an `event:`")
		return nil
	}
	c.event(e.v, r)
	return r
}

func (c *compiler) event(n *yaml.Node, r *rule) {
	f := c.fields(n, "event", "type", "custom_event_name", "action_source", "id", "timestamp",
		"source_url", "oppref", "opt_out", "user", "data")
	// type: a constant.
	e, ok := f["type"]
	if !ok {
		c.errf(n, "type", "required: the event name (order_created, lead_created, custom, ...)")
		return
	}
	if v, ok := c.scalar(e.v, "type"); ok {
		r.typ = capi.EventType(v)
		dt, known := capi.DataTypeOf(r.typ)
		if !known {
			c.errf(e.v, "type", "unknown event type "+strconv.Quote(v)+" (want one of "+eventTypeList()+"); the type is a constant: use one rule per type, chosen with `when`")
			return
		}
		r.dataType = dt
	}
	app := r.typ == capi.AppInstalled || r.typ == capi.AppOpened
	if e, ok := f["id"]; ok {
		x := c.expr(e.v, "id", wantID)
		r.id = x.node
		c.checkID(e.v, x)
	} else {
		c.errf(n, "id", "required: the deduplication key, derived from the record (e.g. value.order_id)")
	}
	if e, ok := f["timestamp"]; ok {
		if e.v.Kind == yaml.ScalarNode && e.v.Value == "record" && e.v.Style == 0 {
			r.timestamp = nil // the Kafka record timestamp, explicitly
		} else {
			r.timestamp = c.expr(e.v, "timestamp", wantTime).node
		}
	} else {
		c.errf(n, "timestamp", "required: an expression (e.g. time.rfc3339(value.created_at)), or `timestamp: record` to use the Kafka record timestamp; there is no default")
	}
	// custom_event_name
	if e, ok := f["custom_event_name"]; ok {
		if r.typ != capi.Custom {
			c.errf(e.k, "custom_event_name", "allowed only when type is custom")
		}
		nd, cst, isConst := c.constOrExpr(e.v, "custom_event_name", wantString)
		r.customName = nd
		if isConst {
			probe := capi.Event{ID: "x", Type: capi.Custom, TimestampMS: 1, CustomEventName: cst, ActionSource: capi.SourceOther, Data: capi.Data{Type: capi.DataCustom}}
			if err := (&capi.Validator{}).Validate(&probe); err != nil {
				for _, fe := range err.(capi.ValidationError) {
					if fe.Path == "custom_event_name" {
						c.errf(e.v, "custom_event_name", fe.Rule)
					}
				}
			}
		}
	} else if r.typ == capi.Custom {
		c.errf(n, "custom_event_name", "required when type is custom (lowercase letters, digits, _ and -)")
	}
	// action_source
	if e, ok := f["action_source"]; ok {
		nd, cst, isConst := c.constOrExpr(e.v, "action_source", wantString)
		r.source = nd
		if isConst {
			switch {
			case !capi.ActionSource(cst).Valid():
				c.errf(e.v, "action_source", "unknown action source "+strconv.Quote(cst)+" (want web, mobile_app, offline, physical_store, phone_call, email or other)")
			case app && cst != string(capi.SourceMobileApp):
				c.errf(e.v, "action_source", "must be mobile_app for "+string(r.typ))
			case cst == string(capi.SourceWeb) && !app:
				if _, ok := f["source_url"]; !ok {
					c.errf(e.v, "source_url", "required when action_source is web: add source_url (e.g. url.origin_path(value.page_url))")
				}
			}
		}
	} else {
		msg := "required: the API's default is undocumented, so capirelay always sends it (web, mobile_app, offline, physical_store, phone_call, email, other)"
		if app {
			msg = "required: must be mobile_app for " + string(r.typ)
		}
		c.errf(n, "action_source", msg)
	}
	if e, ok := f["source_url"]; ok {
		r.sourceURL = c.expr(e.v, "source_url", wantString).node
	}
	if e, ok := f["oppref"]; ok {
		r.oppRef = c.expr(e.v, "oppref", wantString).node
	}
	if e, ok := f["opt_out"]; ok {
		if e.v.Kind == yaml.ScalarNode {
			switch e.v.Value {
			case "true":
				r.optOut = &constNode{val{k: kBool, n: 1}}
			case "false":
				r.optOut = nil
			default:
				c.errf(e.v, "opt_out", "must be true, false or {expr: CEL}")
			}
		} else {
			r.optOut, _, _ = c.constOrExpr(e.v, "opt_out", wantBool)
		}
	}
	if e, ok := f["user"]; ok {
		c.user(e.v, r)
	}
	if e, ok := f["data"]; ok {
		c.data(e.v, r)
	}
}

func eventTypeList() string {
	s := make([]string, len(capi.EventTypes))
	for i, t := range capi.EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// checkID warns about ids that do not identify the record's content.
func (c *compiler) checkID(n *yaml.Node, x expr) {
	if x.ast == nil {
		return
	}
	refs := idents(x.ast.NativeRep().Expr())
	if len(refs) == 0 {
		c.warnf(n, "id", "the id does not depend on the record: every record gets the same id, and the API keeps only the first event (deduplication)")
		return
	}
	content := false
	for r := range refs {
		switch r {
		case varTopic, varPartition, varOffset:
		default:
			content = true
		}
	}
	if !content {
		c.warnf(n, "id", "the id is built only from topic/partition/offset: it changes if the topic is re-produced or mirrored, so the same conversion could be sent twice; derive it from the value or key (e.g. value.order_id)")
	}
}

func (c *compiler) user(n *yaml.Node, r *rule) {
	keys := append(append(append([]string(nil), identityKeys[:]...), listKeys[:]...), strKeys[:]...)
	f := c.fields(n, "user", keys...)
	for i, k := range identityKeys {
		if e, ok := f[k]; ok {
			r.identity[i] = c.expr(e.v, "user."+k, wantStrings).node
		}
	}
	for i, k := range listKeys {
		if e, ok := f[k]; ok {
			r.lists[i] = c.expr(e.v, "user."+k, wantStrings).node
		}
	}
	for i, k := range strKeys {
		if e, ok := f[k]; ok {
			r.strs[i] = c.expr(e.v, "user."+k, wantString).node
		}
	}
}

func (c *compiler) data(n *yaml.Node, r *rule) {
	f := c.fields(n, "data", "amount", "currency", "plan_id", "contents", "properties", "type")
	if e, ok := f["type"]; ok {
		c.errf(e.k, "data.type", "data.type is derived from the event type ("+string(r.dataType)+" for "+string(r.typ)+"); remove it")
	}
	if e, ok := f["amount"]; ok {
		r.amount = c.expr(e.v, "data.amount", wantAmount).node
		if _, ok := f["currency"]; !ok {
			c.errf(e.k, "data.amount", "amount needs currency: add data.currency (the API requires it whenever amount is set)")
		}
	}
	if e, ok := f["currency"]; ok {
		r.currency = c.expr(e.v, "data.currency", wantString).node
	}
	if e, ok := f["plan_id"]; ok {
		if r.dataType != "" && r.dataType != capi.DataPlanEnrollment && r.dataType != capi.DataCustom {
			c.errf(e.k, "data.plan_id", "plan_id is not allowed for "+string(r.typ)+" ("+string(r.dataType)+" data); only plan_enrollment (subscription_created, trial_started) and custom events have it")
		}
		r.planID = c.expr(e.v, "data.plan_id", wantID).node
	}
	if e, ok := f["contents"]; ok {
		if r.dataType == capi.DataCustomerAction {
			c.errf(e.k, "data.contents", "contents is not allowed for "+string(r.typ)+" (customer_action data has only amount and currency)")
		}
		r.contents = c.contents(e.v, f["currency"].v != nil)
	}
	if e, ok := f["properties"]; ok {
		if r.dataType != "" && r.dataType != capi.DataCustom {
			c.errf(e.k, "data.properties", "custom properties are allowed only for type custom, not "+string(r.typ))
		}
		if e.v.Kind != yaml.MappingNode {
			c.errf(e.v, "data.properties", "must be a mapping of property name to expression")
			return
		}
		for i := 0; i+1 < len(e.v.Content); i += 2 {
			k, v := e.v.Content[i], e.v.Content[i+1]
			switch k.Value {
			case "type", "plan_id", "amount", "currency", "contents":
				c.errf(k, "data.properties."+k.Value, "collides with the documented data field "+strconv.Quote(k.Value)+"; set data."+k.Value+" instead")
				continue
			case "":
				c.errf(k, "data.properties", "empty property name")
				continue
			}
			r.props = append(r.props, prop{name: k.Value, n: c.expr(v, "data.properties."+k.Value, wantAny).node})
		}
		sort.Slice(r.props, func(i, j int) bool { return r.props[i].name < r.props[j].name })
	}
}

var contentKeys = []string{"id", "group_id", "name", "content_type", "quantity", "amount", "currency", "variant_dict"}

func (c *compiler) contents(n *yaml.Node, eventCurrency bool) *contentsSpec {
	cs := &contentsSpec{}
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			cs.static = append(cs.static, c.contentFields(item, eventCurrency))
		}
		return cs
	}
	f := c.fields(n, "data.contents", "each", "as", "fields")
	e, ok := f["each"]
	if !ok {
		c.errf(n, "data.contents", "needs `each:` (an expression giving the list of items) and `fields:`, or a list of items")
		return nil
	}
	c.eachExpr = true
	x := c.expr(e.v, "data.contents.each", wantList)
	c.eachExpr = false
	c.each = -1
	if c.sites != nil && x.ast != nil {
		c.each = len(*c.sites) - 1
	}
	cs.each = x.node
	cs.as = "item"
	if e, ok := f["as"]; ok {
		if v, ok := c.scalar(e.v, "data.contents.as"); ok {
			if !isIdent(v) || v == varValue || v == varKey || v == varHeaders || v == varTopic || v == varPartition || v == varOffset || v == varTimestamp {
				c.errf(e.v, "data.contents.as", "must be an identifier other than the record variables, got "+strconv.Quote(v))
			} else {
				cs.as = v
			}
		}
	}
	e, ok = f["fields"]
	if !ok {
		c.errf(n, "data.contents", "needs `fields:` (the item's id, name, quantity, amount, ...)")
		return cs
	}
	c.itemPrefix = nil
	if x.ast != nil {
		if root, keys, ok := chain(x.ast.NativeRep().Expr()); ok && root == varValue {
			c.itemPrefix = keys
			c.need.node(keys)
		}
	}
	c.inItem = true
	prev := c.env
	c.env = c.itemEnv(cs.as)
	cs.fields = c.contentFields(e.v, eventCurrency)
	c.env, c.inItem, c.itemPrefix, c.each = prev, false, nil, -1
	return cs
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || i > 0 && ch >= '0' && ch <= '9') {
			return false
		}
	}
	return s != ""
}

func (c *compiler) itemEnv(name string) *cel.Env {
	if e := c.itemEnvs[name]; e != nil {
		return e
	}
	e, err := c.env.Extend(cel.Variable(name, cel.DynType))
	if err != nil {
		panic(err) // a declared identifier cannot fail to extend
	}
	c.itemEnvs[name] = e
	return e
}

func (c *compiler) contentFields(n *yaml.Node, eventCurrency bool) contentFields {
	f := c.fields(n, "data.contents", contentKeys...)
	var cf contentFields
	get := func(k string, want outKind) node {
		if e, ok := f[k]; ok {
			return c.expr(e.v, "data.contents."+k, want).node
		}
		return nil
	}
	cf.id = get("id", wantID)
	cf.groupID = get("group_id", wantID)
	cf.name = get("name", wantString)
	if e, ok := f["content_type"]; ok {
		cf.contentType, _, _ = c.constOrExpr(e.v, "data.contents.content_type", wantString)
	}
	cf.quantity = get("quantity", wantInt)
	cf.amount = get("amount", wantAmount)
	cf.currency = get("currency", wantString)
	cf.variantDict = get("variant_dict", wantStringMap)
	if e, ok := f["amount"]; ok && cf.currency == nil && !eventCurrency {
		c.errf(e.k, "data.contents.amount", "an item amount needs a currency: set data.currency or data.contents currency")
	}
	return cf
}

// constOrExpr compiles a constant-natural field: a plain scalar is a constant
// string; {expr: CEL} is an expression.
func (c *compiler) constOrExpr(n *yaml.Node, field string, want outKind) (node, string, bool) {
	if n.Kind == yaml.MappingNode {
		f := c.fields(n, field, "expr")
		e, ok := f["expr"]
		if !ok {
			c.errf(n, field, "write a constant, or {expr: CEL expression} to compute it")
			return nil, "", false
		}
		return c.expr(e.v, field, want).node, "", false
	}
	v, ok := c.scalar(n, field)
	if !ok {
		return nil, "", false
	}
	if v == "" {
		c.errf(n, field, "must not be empty")
		return nil, "", false
	}
	return &constNode{val{k: kString, s: v}}, v, true
}

// expr compiles a CEL expression written in a YAML scalar and checks its
// output type against what the field wants.
func (c *compiler) expr(n *yaml.Node, field string, want outKind) expr {
	src, ok := c.scalar(n, field)
	if !ok {
		return expr{node: &constNode{}}
	}
	if strings.TrimSpace(src) == "" {
		c.errf(n, field, "empty expression")
		return expr{node: &constNode{}}
	}
	a, iss := c.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			d := *n
			d.Line, d.Column = pos(n, e.Location)
			msg := e.Message
			if strings.HasPrefix(msg, "undeclared reference to '") && !strings.Contains(src, "(") {
				ref := strings.TrimSuffix(strings.TrimPrefix(msg, "undeclared reference to '"), "'")
				if !strings.Contains(ref, ".") || ref == src {
					msg += " (expressions are CEL: to write the constant string " + src + ", quote it for CEL: '\"" + src + "\"')"
				}
			}
			c.errf(&d, field, "CEL: "+msg)
		}
		return expr{node: &constNode{}}
	}
	if msg := typeCheck(a.OutputType(), want); msg != "" {
		c.errf(n, field, msg)
	}
	if c.sites != nil {
		st := site{n: n, rule: c.rule, field: field, src: src, want: want, ast: a, each: -1}
		if c.inItem {
			st.each, st.item = c.each, c.itemName()
		}
		*c.sites = append(*c.sites, st)
	}
	e := a.NativeRep().Expr()
	c.collectNeeds(e)
	var nd node
	if !celOnly {
		nd = nativeNode(e, c.itemName())
		if c.paths != nil && !noFastPaths {
			c.paths.add(nd)
		}
	}
	if nd == nil {
		prg, err := c.env.Program(a, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			c.errf(n, field, "CEL: "+err.Error())
			return expr{node: &constNode{}}
		}
		nd = &celNode{prg: prg}
	}
	return expr{node: nd, ast: a}
}

func (c *compiler) itemName() string {
	if !c.inItem {
		return ""
	}
	for name, e := range c.itemEnvs {
		if e == c.env {
			return name
		}
	}
	return ""
}

// collectNeeds records which keys of the value e reads, for the JSON decoder.
func (c *compiler) collectNeeds(e ast.Expr) {
	if c.eachExpr {
		if root, _, ok := chain(e); ok && root == varValue {
			return // contents() records the chain as the items' container
		}
	}
	item := c.itemName()
	visitChains(e, func(root string, keys []string) {
		switch {
		case root == varValue:
			c.need.add(keys)
		case item != "" && root == item:
			// With no prefix the items come from a computed list, which
			// was marked whole already.
			if c.itemPrefix != nil {
				c.need.node(c.itemPrefix).add(keys)
			}
		}
	})
}

// celOnly makes every expression run as a CEL program (for the benchmark
// that measures what the native fast paths save).
var celOnly = false

// noFastPaths turns off the path cache and the specialized helper nodes
// (moneyNode, strCallNode), for the tests that compare them with the plain
// native nodes.
var noFastPaths = false

// typeCheck returns a message when the expression's static type cannot give
// what the field wants ("" when it can, or when the type is dyn).
func typeCheck(t *cel.Type, want outKind) string {
	if t.Kind() == types.OpaqueKind && t.TypeName() == "optional_type" && len(t.Parameters()) == 1 {
		t = t.Parameters()[0]
	}
	k := t.Kind()
	if k == types.DynKind || k == types.AnyKind || k == types.NullTypeKind || k == types.ErrorKind {
		return ""
	}
	got := t.String()
	switch want {
	case wantString:
		if k == types.StringKind {
			return ""
		}
		return "must give a string, this expression gives " + got
	case wantID:
		if k == types.StringKind || k == types.IntKind || k == types.UintKind {
			return ""
		}
		return "must give a string (or an int, written in decimal), this expression gives " + got
	case wantInt:
		if k == types.IntKind || k == types.UintKind {
			return ""
		}
		return "must give an int, this expression gives " + got
	case wantAmount:
		if k == types.IntKind || k == types.UintKind {
			return ""
		}
		if k == types.StringKind || k == types.DoubleKind {
			return "must give an int of minor units, this expression gives " + got + ": convert major units with money.minor(x, currency)"
		}
		return "must give an int of minor units, this expression gives " + got
	case wantTime:
		if k == types.TimestampKind || k == types.IntKind {
			return ""
		}
		if k == types.StringKind {
			return "must give a timestamp or an int of Unix milliseconds, this expression gives a string: parse it with time.rfc3339(...) or time.epoch_seconds(...)"
		}
		return "must give a timestamp or an int of Unix milliseconds, this expression gives " + got
	case wantBool:
		if k == types.BoolKind {
			return ""
		}
		return "must give a bool, this expression gives " + got
	case wantStrings:
		if k == types.StringKind {
			return ""
		}
		if k == types.ListKind {
			if p := t.Parameters(); len(p) == 1 && p[0].Kind() != types.StringKind && p[0].Kind() != types.DynKind {
				return "must give a string or a list of strings, this expression gives " + got
			}
			return ""
		}
		return "must give a string or a list of strings, this expression gives " + got
	case wantList:
		if k == types.ListKind {
			return ""
		}
		return "must give a list, this expression gives " + got
	case wantStringMap:
		if k == types.MapKind {
			return ""
		}
		return "must give a map of string to string, this expression gives " + got
	}
	return ""
}

// need is the set of keys of a value that the rules read; the JSON decoder
// skips the rest. Array elements share their array's need.
type need struct {
	all  bool
	name string // the key this need is under (so the decoder need not allocate it)
	keys map[string]*need
}

// node returns the need at keys, creating it.
func (n *need) node(keys []string) *need {
	for _, k := range keys {
		if n.all {
			return n
		}
		if k == "[]" {
			continue
		}
		if n.keys == nil {
			n.keys = map[string]*need{}
		}
		next := n.keys[k]
		if next == nil {
			next = &need{name: k}
			n.keys[k] = next
		}
		n = next
	}
	return n
}

// add marks the whole subtree at keys as needed.
func (n *need) add(keys []string) {
	m := n.node(keys)
	m.all, m.keys = true, nil
}
