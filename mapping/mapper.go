package mapping

import (
	"errors"
	"strconv"
	"strings"

	"github.com/capirelay/capirelay/capi"
)

// Map decodes rec.Value with the format of rec.Topic and applies every rule
// of the topic in file order, appending one Output per rule whose `when` holds
// (a record can give zero, one or several events). It returns dst extended.
//
// A record that cannot be mapped returns dst unchanged (its original length)
// and a *MapError naming the rule, the field and the record: the value does
// not decode (ClassDecode), a `when` fails, a required field (id, timestamp,
// action_source, custom_event_name, source_url for web events, currency with
// an amount) is absent, or an expression fails for a reason other than a
// missing key or null (ClassMapping). An optional field whose expression
// meets a missing key or null is left out of the event. A record of a topic
// without rules is a ClassMapping error. A record with an empty value (a
// tombstone) gives no events and no error.
//
// Map does not validate the events with capi.Validator and does not check the
// time window: the caller does. Map is safe for concurrent use.
//
// Map decodes JSON only: for a `format: avro` topic it returns an error (not
// a *MapError: calling it is a programming error, not a bad record); decode
// the value with schemas.Decoder and call MapValue (see Avro).
func (m *Mapper) Map(rec *Record, dst []Output) ([]Output, error) {
	t := m.topics[rec.Topic]
	if t == nil {
		return dst, m.noTopic(rec)
	}
	if len(rec.Value) == 0 {
		return dst, nil
	}
	if t.avro != nil {
		return dst, errAvroMap(rec.Topic)
	}
	v, err := decodeJSON(rec.Value, t.need)
	if err != nil {
		return dst, &MapError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Class: ClassDecode, Err: err}
	}
	return m.apply(t, rec, v, true, dst)
}

// MapValue is Map for a value already decoded (by the Avro decoder, for
// example): value is a tree of map[string]any, []any, string, bool, nil,
// int64 (or int, int32), float64, json.Number, []byte and time.Time (a
// timestamp): the tree schemas.Decoder returns. A record may also be a
// Fields (the *schemas.Record of schemas.Decoder.DecodeRecord, the faster
// decoding): the events are the same as for its map. A key that is missing
// (an Avro null) is absent to the rules, exactly as for JSON. rec.Value is not
// read. value is not modified and may be shared. A nil value (a tombstone)
// gives no events.
//
// The outputs share no memory with value but the bytes of its strings
// (lists, maps and records put into an event are deep copies), so the
// memory value was decoded into may be reused as soon as MapValue returns:
// the relay decodes each record into the same schemas.Arena.
func (m *Mapper) MapValue(rec *Record, value any, dst []Output) ([]Output, error) {
	t := m.topics[rec.Topic]
	if t == nil {
		return dst, m.noTopic(rec)
	}
	if value == nil {
		return dst, nil
	}
	return m.apply(t, rec, value, false, dst)
}

func (m *Mapper) noTopic(rec *Record) error {
	return &MapError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Class: ClassMapping,
		Err: errors.New("no rules for topic " + strconv.Quote(rec.Topic))}
}

// apply maps value; isPlain tells that value holds no Fields (it was
// decoded from JSON here), so CEL may read it as it is.
func (m *Mapper) apply(t *topic, rec *Record, value any, isPlain bool, dst []Output) ([]Output, error) {
	c := ectxPool.Get().(*ectx)
	c.reset(rec, value)
	if isPlain {
		c.plain, c.plainSet, c.itemPlain = value, true, true
	}
	c.useSlots(t.nslots)
	start := len(dst)
	var err error
	for _, r := range t.rules {
		if r.when != nil {
			v, werr := r.when.eval(c)
			switch {
			case werr != nil:
				err = m.fail(rec, r, "when", werr)
			case v.k == kAbsent:
				err = m.fail(rec, r, "when", errors.New("a key it reads is missing (use has(value.x) or value.?x for optional keys)"))
			case v.k != kBool:
				err = m.fail(rec, r, "when", errors.New("must be a bool, got "+v.typeName()))
			}
			if err != nil {
				break
			}
			if v.n == 0 {
				continue
			}
		}
		dst = append(dst, Output{Rule: r.name, Pixel: r.pixel})
		if field, ferr := t.fill(r, c, &dst[len(dst)-1].Event); ferr != nil {
			err = m.fail(rec, r, field, ferr)
			break
		}
	}
	c.reset(nil, nil)
	ectxPool.Put(c)
	if err != nil {
		clear(dst[start:])
		return dst[:start], err
	}
	return dst, nil
}

func (m *Mapper) fail(rec *Record, r *rule, field string, err error) error {
	return &MapError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Rule: r.name, Field: field, Class: ClassMapping, Err: err}
}

var errRequired = errors.New("required, but the expression gave no value (a key it reads is missing or null)")

// str evaluates an optional string field; ints are written in decimal when
// ints are allowed.
func str(n node, c *ectx, ints bool) (string, error) {
	if n == nil {
		return "", nil
	}
	var v val
	switch p := n.(type) { // fast paths: a plain selection, a constant
	case *pathNode:
		x, found := p.lookup(c)
		if s, ok := x.(string); ok {
			return s, nil
		}
		if !found || x == nil {
			return "", nil
		}
		v = fromAny(x) // what p.eval gives, without a second lookup
	case *constNode:
		if p.v.k == kString {
			return p.v.s, nil
		}
		v = p.v
	default:
		var err error
		if v, err = n.eval(c); err != nil {
			return "", err
		}
	}
	switch v.k {
	case kAbsent, kNull:
		return "", nil
	case kString:
		return v.s, nil
	case kInt:
		if ints {
			return strconv.FormatInt(v.n, 10), nil
		}
	}
	if ints {
		return "", errors.New("must be a string or an int, got " + v.typeName())
	}
	return "", errors.New("must be a string, got " + v.typeName())
}

func optInt(n node, c *ectx, what string) (capi.OptInt64, error) {
	if n == nil {
		return capi.OptInt64{}, nil
	}
	var v val
	if p, ok := n.(*pathNode); ok { // fast path: a plain selection of an int
		x, found := p.lookup(c)
		if i, ok := x.(int64); ok {
			return capi.Int64(i), nil
		}
		if !found || x == nil {
			return capi.OptInt64{}, nil
		}
		v = fromAny(x) // what p.eval gives, without a second lookup
	} else {
		var err error
		if v, err = n.eval(c); err != nil {
			return capi.OptInt64{}, err
		}
	}
	switch v.k {
	case kAbsent, kNull:
		return capi.OptInt64{}, nil
	case kInt:
		return capi.Int64(v.n), nil
	case kFloat:
		if what == "quantity" && v.float() == float64(int64(v.float())) {
			return capi.Int64(int64(v.float())), nil
		}
	case kString:
		if what == "quantity" {
			if q, err := strconv.ParseInt(strings.TrimSpace(v.s), 10, 64); err == nil {
				return capi.Int64(q), nil
			}
		}
	}
	if what == "amount" {
		hint := ""
		if v.k == kFloat || v.k == kString {
			hint = ": convert major units with money.minor(x, currency)"
		}
		return capi.OptInt64{}, errors.New("must be an int of minor units, got " + v.typeName() + hint)
	}
	return capi.OptInt64{}, errors.New("must be an integer, got " + v.typeName())
}

// fill evaluates rule r into e; on error it returns the field's path.
func (t *topic) fill(r *rule, c *ectx, e *capi.Event) (string, error) {
	var err error
	e.Type = r.typ
	e.Data.Type = r.dataType
	if e.ID, err = str(r.id, c, true); err != nil {
		return "id", err
	}
	if e.ID == "" {
		return "id", errRequired
	}
	if r.timestamp == nil {
		e.TimestampMS = c.rec.Timestamp.UnixMilli()
		if c.rec.Timestamp.IsZero() {
			return "timestamp", errors.New("the record has no timestamp")
		}
	} else {
		v, err := r.timestamp.eval(c)
		if err != nil {
			return "timestamp", err
		}
		switch v.k {
		case kAbsent, kNull:
			return "timestamp", errRequired
		case kTime, kInt:
			e.TimestampMS = v.n
		case kString:
			return "timestamp", errors.New("must be a timestamp or an int of Unix milliseconds, got a string: parse it with time.rfc3339(...)")
		default:
			return "timestamp", errors.New("must be a timestamp or an int of Unix milliseconds, got " + v.typeName())
		}
	}
	if r.customName != nil {
		if e.CustomEventName, err = str(r.customName, c, false); err != nil {
			return "custom_event_name", err
		}
		if e.CustomEventName == "" && r.typ == capi.Custom {
			return "custom_event_name", errRequired
		}
	}
	src, err := str(r.source, c, false)
	if err != nil {
		return "action_source", err
	}
	if src == "" {
		return "action_source", errRequired
	}
	e.ActionSource = capi.ActionSource(src)
	if e.SourceURL, err = str(r.sourceURL, c, false); err != nil {
		return "source_url", err
	}
	if e.SourceURL == "" && e.ActionSource == capi.SourceWeb && r.typ != capi.AppInstalled && r.typ != capi.AppOpened {
		return "source_url", errors.New("required when action_source is web, but the expression gave no value")
	}
	if e.OppRef, err = str(r.oppRef, c, false); err != nil {
		return "oppref", err
	}
	if r.optOut != nil {
		v, err := r.optOut.eval(c)
		if err != nil {
			return "opt_out", err
		}
		switch v.k {
		case kBool:
			e.OptOut = v.n == 1
		case kString:
			e.OptOut = v.s == "true"
		case kAbsent, kNull:
		default:
			return "opt_out", errors.New("must be a bool, got " + v.typeName())
		}
	}
	if field, err := t.fillUser(r, c, &e.User); err != nil {
		return field, err
	}
	return t.fillData(r, c, &e.Data)
}

// strList collects the strings of a string-or-list field into buf.
func strList(n node, c *ectx, buf []string, skipEmpty bool) ([]string, error) {
	var v val
	if p, ok := n.(*pathNode); ok { // fast path: a plain selection of a string
		x, found := p.lookup(c)
		if s, ok := x.(string); ok {
			if skipEmpty && strings.TrimSpace(s) == "" {
				return buf, nil
			}
			return append(buf, s), nil
		}
		if !found || x == nil {
			return buf, nil
		}
		v = fromAny(x) // what p.eval gives, without a second lookup
	} else {
		var err error
		if v, err = n.eval(c); err != nil {
			return buf, err
		}
	}
	switch v.k {
	case kAbsent, kNull:
		return buf, nil
	case kString:
		if skipEmpty && strings.TrimSpace(v.s) == "" {
			return buf, nil
		}
		return append(buf, v.s), nil
	case kInt:
		return append(buf, strconv.FormatInt(v.n, 10)), nil
	case kOther:
		l, ok := v.a.([]any)
		if !ok {
			break
		}
		for i, x := range l {
			// The kinds of a single value: an int is any of MapValue's ints.
			switch e := fromAny(x); e.k {
			case kNull:
			case kString:
				if skipEmpty && strings.TrimSpace(e.s) == "" {
					continue
				}
				buf = append(buf, e.s)
			case kInt:
				buf = append(buf, strconv.FormatInt(e.n, 10))
			default:
				return buf, errors.New("list element " + strconv.Itoa(i) + " must be a string (or an int), got " + e.typeName())
			}
		}
		return buf, nil
	}
	return buf, errors.New("must be a string or a list of strings (ints are written in decimal), got " + v.typeName())
}

func (t *topic) fillUser(r *rule, c *ectx, u *capi.User) (string, error) {
	var arr [16]string
	buf := arr[:0]
	var ends [numIdentity + numLists]int
	// The hashes are appended to hexes, 64 hex characters each, in the order
	// of buf, and become strings with one allocation for all of them.
	var hexArr [4 * 64]byte
	hexes := hexArr[:0]
	var err error
	for i, n := range r.identity {
		if n != nil {
			start := len(buf)
			if buf, err = strList(n, c, buf, true); err != nil {
				return "user." + identityKeys[i], err
			}
			w := start
			for j := start; j < len(buf); j++ {
				var herr error
				if hexes, herr = t.hasher.AppendHash(hexes, capi.IdentityField(i), buf[j]); herr != nil {
					if t.dropInvalid {
						continue
					}
					return "user." + identityKeys[i], herr
				}
				w++
			}
			buf = buf[:w]
		}
		ends[i] = len(buf)
	}
	if len(hexes) > 0 {
		all := string(hexes)
		for j := range ends[numIdentity-1] {
			buf[j] = all[j*64 : (j+1)*64]
		}
	}
	for i, n := range r.lists {
		if n != nil {
			if buf, err = strList(n, c, buf, true); err != nil {
				return "user." + listKeys[i], err
			}
		}
		ends[numIdentity+i] = len(buf)
	}
	if len(buf) > 0 {
		all := make([]string, len(buf))
		copy(all, buf)
		lists := [numIdentity + numLists]*[]string{&u.EmailsSHA256, &u.PhoneNumbersSHA256, &u.ExternalIDsSHA256,
			&u.FirstNamesSHA256, &u.LastNamesSHA256, &u.Countries, &u.Regions, &u.Cities, &u.PostalCodes}
		start := 0
		for i, end := range ends {
			if end > start {
				*lists[i] = all[start:end:end]
			}
			start = end
		}
	}
	strs := [numStrs]*string{&u.IPAddress, &u.UserAgent, &u.OBRef, &u.AndroidAdvertisingID}
	for i, n := range r.strs {
		if n != nil {
			if *strs[i], err = str(n, c, false); err != nil {
				return "user." + strKeys[i], err
			}
		}
	}
	return "", nil
}

func (t *topic) fillData(r *rule, c *ectx, d *capi.Data) (string, error) {
	var err error
	if d.Amount, err = optInt(r.amount, c, "amount"); err != nil {
		return "data.amount", err
	}
	if d.Currency, err = str(r.currency, c, false); err != nil {
		return "data.currency", err
	}
	if d.Amount.Valid && d.Currency == "" {
		return "data.currency", errors.New("required when amount is set, but the expression gave no value")
	}
	if d.PlanID, err = str(r.planID, c, true); err != nil {
		return "data.plan_id", err
	}
	if r.contents != nil {
		if field, err := fillContents(r.contents, c, d); err != nil {
			return field, err
		}
	}
	if len(r.props) > 0 {
		for _, p := range r.props {
			v, err := p.n.eval(c)
			if err != nil {
				return "data.properties." + p.name, err
			}
			var x any
			switch v.k {
			case kAbsent:
				continue
			case kNull:
				x = nil
			case kString:
				x = v.s
			case kInt:
				x = v.n
			case kFloat:
				x = v.float()
			case kBool:
				x = v.n == 1
			case kTime:
				x = v.n
			default:
				x = detachTree(v.a) // a list, map or record of the value, copied: see MapValue
			}
			if d.Properties == nil {
				d.Properties = make(map[string]any, len(r.props))
			}
			d.Properties[p.name] = x
		}
	}
	return "", nil
}

func fillContents(cs *contentsSpec, c *ectx, d *capi.Data) (string, error) {
	if cs.each == nil {
		d.Contents = make([]capi.Content, len(cs.static))
		for i := range cs.static {
			if field, err := fillContent(&cs.static[i], c, &d.Contents[i], i, d.Currency != ""); err != nil {
				return field, err
			}
		}
		return "", nil
	}
	v, err := cs.each.eval(c)
	if err != nil {
		return "data.contents", err
	}
	var items []any
	switch v.k {
	case kAbsent, kNull:
		return "", nil
	case kOther:
		var ok bool
		if items, ok = v.a.([]any); !ok {
			return "data.contents", errors.New("each must give a list, got " + v.typeName())
		}
	default:
		return "data.contents", errors.New("each must give a list, got " + v.typeName())
	}
	if len(items) == 0 {
		return "", nil
	}
	d.Contents = make([]capi.Content, len(items))
	c.itemName = cs.as
	for i, it := range items {
		c.item = it
		if field, err := fillContent(&cs.fields, c, &d.Contents[i], i, d.Currency != ""); err != nil {
			c.itemName, c.item = "", nil
			return field, err
		}
	}
	c.itemName, c.item = "", nil
	return "", nil
}

func fillContent(f *contentFields, c *ectx, o *capi.Content, i int, eventCurrency bool) (string, error) {
	path := func(k string) string { return "data.contents[" + strconv.Itoa(i) + "]." + k }
	var err error
	if o.ID, err = str(f.id, c, true); err != nil {
		return path("id"), err
	}
	if o.GroupID, err = str(f.groupID, c, true); err != nil {
		return path("group_id"), err
	}
	if o.Name, err = str(f.name, c, false); err != nil {
		return path("name"), err
	}
	if o.ContentType, err = str(f.contentType, c, false); err != nil {
		return path("content_type"), err
	}
	if o.Quantity, err = optInt(f.quantity, c, "quantity"); err != nil {
		return path("quantity"), err
	}
	if o.Amount, err = optInt(f.amount, c, "amount"); err != nil {
		return path("amount"), err
	}
	if o.Currency, err = str(f.currency, c, false); err != nil {
		return path("currency"), err
	}
	if o.Amount.Valid && o.Currency == "" && !eventCurrency {
		return path("currency"), errors.New("required when the item has an amount and the event has no currency")
	}
	if f.variantDict != nil {
		v, err := f.variantDict.eval(c)
		if err != nil {
			return path("variant_dict"), err
		}
		if !v.missing() {
			m, ok := v.a.(map[string]any)
			if f, isRec := v.a.(Fields); isRec {
				m, ok = f.AsMap(), true
			}
			if !ok {
				return path("variant_dict"), errors.New("must be a map of string to string, got " + v.typeName())
			}
			o.VariantDict = make(map[string]string, len(m))
			for k, x := range m {
				s, ok := x.(string)
				if !ok {
					return path("variant_dict"), errors.New("value of " + strconv.Quote(k) + " must be a string, got " + fromAny(x).typeName())
				}
				o.VariantDict[k] = s
			}
		}
	}
	return "", nil
}
