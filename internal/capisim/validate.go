package capisim

import (
	"bytes"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fieldError is a violated rule. path is relative to where the error was
// raised and gains prefixes on the way up ("amount" → "contents[2].amount"
// → "data.contents[2].amount"); the event index is added last, or hidden.
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

func ferr(path, msg string) error { return &fieldError{path: path, msg: msg} }

// under prefixes the path of a fieldError with p. Other errors pass through.
func under(err error, p string) error {
	if fe, ok := err.(*fieldError); ok {
		fe.path = joinPath(p, fe.path)
	}
	return err
}

func joinPath(p, rest string) string {
	switch {
	case rest == "":
		return p
	case p == "":
		return rest
	case rest[0] == '[':
		return p + rest
	default:
		return p + "." + rest
	}
}

// batchError locates an error in a request: event is the index of the
// failing event, or -1 for a top-level problem.
type batchError struct {
	event int
	err   error // *fieldError or *syntaxError
}

func (e *batchError) Error() string { return e.err.Error() }

// event is what the simulator keeps of a valid event.
type event struct {
	start, end   int // raw bytes in the body
	id           string
	typ          *eventType
	ts           int64
	cen          string
	actionSource string
}

// batch is a fully validated request body.
type batch struct {
	events            []event
	validateOnly      bool
	integrationSource string
}

// validator checks one request body.
type validator struct {
	sc            scanner
	nowMs         int64
	ignoreUnknown bool
	lenientLists  bool
	maxContents   int
}

// keySet detects duplicate keys among keys the validator does not know in
// advance (custom data properties, ignored unknown fields, variant_dict).
type keySet struct {
	small []string
	big   map[string]struct{}
}

// add records key and reports whether it was new.
func (k *keySet) add(key []byte) bool {
	if k.big != nil {
		if _, ok := k.big[string(key)]; ok {
			return false
		}
		k.big[string(key)] = struct{}{}
		return true
	}
	for _, s := range k.small {
		if s == string(key) {
			return false
		}
	}
	k.small = append(k.small, string(key))
	if len(k.small) > 16 {
		k.big = make(map[string]struct{}, 32)
		for _, s := range k.small {
			k.big[s] = struct{}{}
		}
	}
	return true
}

// pathKey renders an arbitrary object key for an error path.
func pathKey(key []byte) string {
	if len(key) > 0 && len(key) <= 64 {
		simple := true
		for _, c := range key {
			if !(isAlnum(c) || c == '_' || c == '-') {
				simple = false
				break
			}
		}
		if simple {
			return string(key)
		}
	}
	if len(key) > 64 {
		key = key[:64]
	}
	return strconv.Quote(string(key))
}

// quoteValue quotes a value for an error message when it is short, printable
// ASCII; otherwise it says nothing about it. Values of user fields are never
// passed here.
func quoteValue(v []byte) string {
	if len(v) > 64 {
		return ""
	}
	for _, c := range v {
		if c < 0x20 || c >= 0x7f {
			return ""
		}
	}
	return " " + strconv.Quote(string(v))
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isValueStart(c byte) bool {
	switch c {
	case '{', '[', '"', 't', 'f', 'n', '-':
		return true
	}
	return c >= '0' && c <= '9'
}

// typeErr reports that the value at the cursor is not of type want. When the
// cursor is not at a JSON value at all the error is a syntax error.
func (v *validator) typeErr(path, want string) error {
	c := v.sc.peek()
	if !isValueStart(c) {
		if c == 0 {
			return v.sc.fail("unexpected end of input, value expected")
		}
		return v.sc.fail("invalid character, value expected")
	}
	return ferr(path, "must be "+want+", got "+kindOf(c))
}

func (v *validator) wantString(path string) ([]byte, error) {
	if v.sc.peek() != '"' {
		return nil, v.typeErr(path, "a string")
	}
	return v.sc.str()
}

func (v *validator) wantBool(path string) (bool, error) {
	c := v.sc.peek()
	if c != 't' && c != 'f' {
		return false, v.typeErr(path, "a boolean")
	}
	lit, err := v.sc.literal()
	return lit == 't', err
}

func (v *validator) wantInt(path string) (int64, error) {
	c := v.sc.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, v.typeErr(path, "an integer")
	}
	raw, isInt, err := v.sc.number()
	if err != nil {
		return 0, err
	}
	if !isInt {
		return 0, ferr(path, "must be an integer (no fraction or exponent), got "+string(raw))
	}
	n, ok := parseInt64(raw)
	if !ok {
		return 0, ferr(path, "integer out of the 64-bit range")
	}
	return n, nil
}

func (v *validator) wantObject(path string) error {
	if v.sc.peek() != '{' {
		return v.typeErr(path, "an object")
	}
	v.sc.i++
	return nil
}

// unknownField handles a key the contract does not define at this level:
// an error by default, skipped (after checking its syntax and that it is not
// a duplicate) with IgnoreUnknownFields.
func (v *validator) unknownField(key []byte, seen *keySet, depth int) error {
	if !v.ignoreUnknown {
		return ferr(pathKey(key), "unknown field")
	}
	if !seen.add(key) {
		return ferr(pathKey(key), "duplicate key")
	}
	return v.sc.skip(depth)
}

// markSeen records the field bit of key in seen and reports a duplicate key.
// bit 0 (a key without a bit) is never a duplicate here.
func markSeen(seen *int, bit int, key []byte) error {
	if *seen&bit != 0 {
		return ferr(string(key), "duplicate key")
	}
	*seen |= bit
	return nil
}

// Top-level field bits.
const (
	bEvents = 1 << iota
	bValidateOnly
	bIntegrationSource
)

func batchFieldBit(key []byte) int {
	switch string(key) {
	case "events":
		return bEvents
	case "validate_only":
		return bValidateOnly
	case "integration_source":
		return bIntegrationSource
	}
	return 0
}

// openBody checks that the body is a JSON object and consumes its '{'.
// parseBatch and countEvents share it (and endBody) so that the two modes
// agree on what a request body is.
func (v *validator) openBody() error {
	sc := &v.sc
	c := sc.peek()
	if c == 0 {
		return ferr("", "empty request body; a JSON object with \"events\" is required")
	}
	if c != '{' {
		if !isValueStart(c) {
			return sc.fail("invalid character, value expected")
		}
		return ferr("", "request body must be a JSON object, got "+kindOf(c))
	}
	sc.i++
	return nil
}

// endBody checks, after the body's closing '}', that nothing follows and
// that "events" was present.
func (v *validator) endBody(seenEvents bool) error {
	sc := &v.sc
	sc.ws()
	if sc.i != len(sc.b) {
		return sc.fail("unexpected data after the JSON object")
	}
	if !seenEvents {
		return ferr("events", "required")
	}
	return nil
}

// parseBatch validates a whole request body.
func (v *validator) parseBatch() (*batch, error) {
	sc := &v.sc
	top := func(err error) error { return &batchError{event: -1, err: err} }
	if err := v.openBody(); err != nil {
		return nil, top(err)
	}
	b := &batch{}
	var seen int
	var unknown keySet
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return nil, top(err)
		}
		if !ok {
			break
		}
		bit := batchFieldBit(key)
		if err := markSeen(&seen, bit, key); err != nil {
			return nil, top(err)
		}
		switch bit {
		case bEvents:
			if err := v.parseEvents(b); err != nil {
				return nil, err
			}
		case bValidateOnly:
			if b.validateOnly, err = v.wantBool("validate_only"); err != nil {
				return nil, top(err)
			}
		case bIntegrationSource:
			s, err := v.wantString("integration_source")
			if err != nil {
				return nil, top(err)
			}
			if msg := checkIntegrationSource(s); msg != "" {
				return nil, top(ferr("integration_source", msg))
			}
			b.integrationSource = strings.ToLower(string(s))
		default:
			if err := v.unknownField(key, &unknown, 1); err != nil {
				return nil, top(err)
			}
		}
	}
	if err := v.endBody(seen&bEvents != 0); err != nil {
		return nil, top(err)
	}
	if len(b.events) == 0 {
		return nil, top(ferr("events", "must contain 1 to 1000 events, got 0"))
	}
	return b, nil
}

func (v *validator) parseEvents(b *batch) error {
	sc := &v.sc
	if sc.peek() != '[' {
		return &batchError{event: -1, err: v.typeErr("events", "an array")}
	}
	sc.i++
	for i := 0; ; i++ {
		ok, err := sc.nextElem(i == 0)
		if err != nil {
			return &batchError{event: i, err: err}
		}
		if !ok {
			return nil
		}
		if i == MaxEventsPerRequest {
			return &batchError{event: -1, err: ferr("events", "must contain 1 to 1000 events, got more than 1000")}
		}
		b.events = append(b.events, event{})
		if err := v.parseEvent(&b.events[i]); err != nil {
			return &batchError{event: i, err: err}
		}
	}
}

// Event-level field bits.
const (
	fID = 1 << iota
	fType
	fTimestamp
	fCustomName
	fActionSource
	fSourceURL
	fOppref
	fUser
	fOptOut
	fData
)

func eventFieldBit(key []byte) int {
	switch string(key) {
	case "id":
		return fID
	case "type":
		return fType
	case "timestamp_ms":
		return fTimestamp
	case "custom_event_name":
		return fCustomName
	case "action_source":
		return fActionSource
	case "source_url":
		return fSourceURL
	case "oppref":
		return fOppref
	case "user":
		return fUser
	case "opt_out":
		return fOptOut
	case "data":
		return fData
	}
	return 0
}

// parseEvent validates one event object.
func (v *validator) parseEvent(e *event) error {
	sc := &v.sc
	if err := v.wantObject(""); err != nil {
		return err
	}
	e.start = sc.i - 1
	var seen int
	var unknown keySet
	var d dataInfo
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		bit := eventFieldBit(key)
		if err := markSeen(&seen, bit, key); err != nil {
			return err
		}
		switch bit {
		case fID:
			s, err := v.wantString("id")
			if err != nil {
				return err
			}
			if len(s) == 0 {
				return ferr("id", "must not be empty")
			}
			e.id = string(s)
		case fType:
			s, err := v.wantString("type")
			if err != nil {
				return err
			}
			if e.typ = lookupEventType(s); e.typ == nil {
				if string(s) == "attribution_appended" {
					return ferr("type", `"attribution_appended" is not supported (its fields are undocumented)`)
				}
				return ferr("type", "unknown event type"+quoteValue(s))
			}
		case fTimestamp:
			if e.ts, err = v.wantInt("timestamp_ms"); err != nil {
				return err
			}
			if e.ts < v.nowMs-MaxEventAge.Milliseconds() {
				return ferr("timestamp_ms", "older than 7 days (timestamp_ms is Unix time in milliseconds)")
			}
			if e.ts > v.nowMs+MaxEventFuture.Milliseconds() {
				return ferr("timestamp_ms", "more than 10 minutes in the future")
			}
		case fCustomName:
			s, err := v.wantString("custom_event_name")
			if err != nil {
				return err
			}
			if msg := checkCustomEventName(s); msg != "" {
				return ferr("custom_event_name", msg)
			}
			e.cen = string(s)
		case fActionSource:
			s, err := v.wantString("action_source")
			if err != nil {
				return err
			}
			var ok bool
			if e.actionSource, ok = lookupActionSource(s); !ok {
				return ferr("action_source", "must be one of web, mobile_app, offline, physical_store, phone_call, email, other")
			}
		case fSourceURL:
			if err := v.parseSingle("source_url", checkURL); err != nil {
				return err
			}
		case fOppref:
			if _, err := v.wantString("oppref"); err != nil {
				return err
			}
		case fOptOut:
			if _, err := v.wantBool("opt_out"); err != nil {
				return err
			}
		case fUser:
			if err := v.parseUser(); err != nil {
				return under(err, "user")
			}
		case fData:
			if err := v.parseData(&d); err != nil {
				return under(err, "data")
			}
		default:
			if msg, ok := legacyEventFields[string(key)]; ok {
				return ferr(string(key), msg)
			}
			if err := v.unknownField(key, &unknown, 3); err != nil {
				return err
			}
		}
	}
	e.end = sc.i

	// Rules that involve more than one field.
	for _, req := range []struct {
		bit  int
		name string
	}{{fID, "id"}, {fType, "type"}, {fTimestamp, "timestamp_ms"}, {fData, "data"}} {
		if seen&req.bit == 0 {
			return ferr(req.name, "required")
		}
	}
	t := e.typ
	if t.shape == shapeCustom {
		if seen&fCustomName == 0 {
			return ferr("custom_event_name", "required when type is custom")
		}
	} else if seen&fCustomName != 0 {
		return ferr("custom_event_name", "only allowed when type is custom")
	}
	if t.app {
		if seen&fActionSource == 0 {
			return ferr("action_source", "required for "+t.name+" (must be mobile_app)")
		}
		if e.actionSource != "mobile_app" {
			return ferr("action_source", "must be mobile_app for "+t.name)
		}
	}
	if e.actionSource == "web" && seen&fSourceURL == 0 {
		return ferr("source_url", "required when action_source is web")
	}
	if d.shape != t.shape {
		return ferr("data.type", "must be "+strconv.Quote(t.shape)+" for type "+t.name)
	}
	if err := v.checkShape(&d); err != nil {
		return under(err, "data")
	}
	return nil
}

// Data field bits.
const (
	dType = 1 << iota
	dAmount
	dCurrency
	dContents
	dPlanID
)

// dataInfo is what parseData learns for the checks that need data.type.
type dataInfo struct {
	shape             string
	seen              int
	itemNeedsCurrency int    // first contents index with an amount and no currency, or -1
	firstExtra        string // first key outside type/amount/currency/contents/plan_id
}

func dataFieldBit(key []byte) int {
	switch string(key) {
	case "type":
		return dType
	case "amount":
		return dAmount
	case "currency":
		return dCurrency
	case "contents":
		return dContents
	case "plan_id":
		return dPlanID
	}
	return 0
}

// parseData checks every field of data whatever its shape (the types of
// the documented fields do not depend on it); checkShape applies the
// per-shape rules once data.type is known, wherever it appeared.
func (v *validator) parseData(d *dataInfo) error {
	sc := &v.sc
	if err := v.wantObject(""); err != nil {
		return err
	}
	d.itemNeedsCurrency = -1
	var extra keySet
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		bit := dataFieldBit(key)
		if err := markSeen(&d.seen, bit, key); err != nil {
			return err
		}
		switch bit {
		case dType:
			s, err := v.wantString("type")
			if err != nil {
				return err
			}
			var ok bool
			if d.shape, ok = lookupShape(s); !ok {
				if string(s) == "attribution" {
					return ferr("type", `"attribution" is not supported (its fields are undocumented)`)
				}
				return ferr("type", "must be one of contents, customer_action, plan_enrollment, custom")
			}
		case dAmount:
			if _, err := v.wantInt("amount"); err != nil {
				return err
			}
		case dCurrency:
			if err := v.parseSingle("currency", checkCurrency); err != nil {
				return err
			}
		case dContents:
			if err := v.parseContents(d); err != nil {
				return err
			}
		case dPlanID:
			if _, err := v.wantString("plan_id"); err != nil {
				return err
			}
		default:
			if string(key) == "custom_event_name" {
				return ferr("custom_event_name", "event-level field, never inside data")
			}
			if !extra.add(key) {
				return ferr(pathKey(key), "duplicate key")
			}
			if d.firstExtra == "" {
				d.firstExtra = pathKey(key)
			}
			if err := sc.skip(4); err != nil {
				return err
			}
		}
	}
	if d.seen&dType == 0 {
		return ferr("type", "required")
	}
	if d.seen&dAmount != 0 && d.seen&dCurrency == 0 {
		return ferr("currency", "required when amount is present")
	}
	if d.itemNeedsCurrency >= 0 && d.seen&dCurrency == 0 {
		return ferr("contents["+strconv.Itoa(d.itemNeedsCurrency)+"].currency",
			"required with an item amount when data has no currency")
	}
	return nil
}

// checkShape applies the rules of data.type: which documented fields the
// shape allows, and whether other properties are allowed (custom only).
func (v *validator) checkShape(d *dataInfo) error {
	var allowed int
	switch d.shape {
	case shapeContents:
		allowed = dType | dAmount | dCurrency | dContents
	case shapeCustomerAction:
		allowed = dType | dAmount | dCurrency
	case shapePlanEnrollment, shapeCustom:
		allowed = dType | dAmount | dCurrency | dContents | dPlanID
	}
	if bad := d.seen &^ allowed; bad != 0 {
		name := "plan_id"
		if bad&dContents != 0 {
			name = "contents"
		}
		return ferr(name, "not allowed when data.type is "+d.shape)
	}
	if d.firstExtra != "" && d.shape != shapeCustom && !v.ignoreUnknown {
		return ferr(d.firstExtra, "unknown field (only data.type custom allows extra properties)")
	}
	return nil
}

func (v *validator) parseContents(d *dataInfo) error {
	sc := &v.sc
	if sc.peek() != '[' {
		return v.typeErr("contents", "an array")
	}
	sc.i++
	for i := 0; ; i++ {
		ok, err := sc.nextElem(i == 0)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		needsCurrency, err := v.parseItem()
		if err != nil {
			return under(err, "contents["+strconv.Itoa(i)+"]")
		}
		if needsCurrency && d.itemNeedsCurrency < 0 {
			d.itemNeedsCurrency = i
		}
		if v.maxContents > 0 && i+1 > v.maxContents {
			return ferr("contents", "more than "+strconv.Itoa(v.maxContents)+" items")
		}
	}
}

// Contents item field bits.
const (
	iID = 1 << iota
	iGroupID
	iName
	iContentType
	iQuantity
	iAmount
	iCurrency
	iVariantDict
)

func itemFieldBit(key []byte) int {
	switch string(key) {
	case "id":
		return iID
	case "group_id":
		return iGroupID
	case "name":
		return iName
	case "content_type":
		return iContentType
	case "quantity":
		return iQuantity
	case "amount":
		return iAmount
	case "currency":
		return iCurrency
	case "variant_dict":
		return iVariantDict
	}
	return 0
}

// parseItem validates one contents item and reports whether it has an
// amount without a currency (allowed only if data has a currency).
func (v *validator) parseItem() (needsCurrency bool, err error) {
	sc := &v.sc
	if err := v.wantObject(""); err != nil {
		return false, err
	}
	var seen int
	var unknown keySet
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		bit := itemFieldBit(key)
		if err := markSeen(&seen, bit, key); err != nil {
			return false, err
		}
		switch bit {
		case iID:
			_, err = v.wantString("id")
		case iGroupID:
			_, err = v.wantString("group_id")
		case iName:
			_, err = v.wantString("name")
		case iContentType:
			s, err := v.wantString("content_type")
			if err != nil {
				return false, err
			}
			if len(s) == 0 {
				return false, ferr("content_type", "must not be empty")
			}
		case iQuantity:
			_, err = v.wantInt("quantity")
		case iAmount:
			_, err = v.wantInt("amount")
		case iCurrency:
			err = v.parseSingle("currency", checkCurrency)
		case iVariantDict:
			if err := v.parseVariantDict(); err != nil {
				return false, under(err, "variant_dict")
			}
		default:
			if string(key) == "price" {
				return false, ferr("price", `no such field; use "amount" (integer minor units)`)
			}
			err = v.unknownField(key, &unknown, 6)
		}
		if err != nil {
			return false, err
		}
	}
	return seen&iAmount != 0 && seen&iCurrency == 0, nil
}

func (v *validator) parseVariantDict() error {
	sc := &v.sc
	if err := v.wantObject(""); err != nil {
		return err
	}
	var keys keySet
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if !keys.add(key) {
			return ferr(pathKey(key), "duplicate key")
		}
		if _, err := v.wantString(pathKey(key)); err != nil {
			return err
		}
	}
}

// userFields are the documented user fields. A field's bit in parseUser's
// seen set is 1<<index. check returns "" for a valid value; nil accepts any
// string.
var userFields = [...]struct {
	name  string
	list  bool // an array of strings, each checked
	check func([]byte) string
}{
	{"emails_sha256", true, checkSHA256},
	{"phone_numbers_sha256", true, checkSHA256},
	{"external_ids_sha256", true, checkSHA256},
	{"first_names_sha256", true, checkSHA256},
	{"last_names_sha256", true, checkSHA256},
	{"regions", true, checkRegionOrCity},
	{"cities", true, checkRegionOrCity},
	{"postal_codes", true, checkPostalCode},
	{"countries", true, checkCountry},
	{"android_advertising_id", false, checkGAID},
	{"obref", false, nil},
	{"ip_address", false, checkIP},
	{"user_agent", false, checkUserAgent},
}

// userField returns the index of key in userFields, or -1. A switch, not a
// loop over the table: it is several times faster on the hot path
// (TestUserFieldIndex keeps the two in step).
func userField(key []byte) int {
	switch string(key) {
	case "emails_sha256":
		return 0
	case "phone_numbers_sha256":
		return 1
	case "external_ids_sha256":
		return 2
	case "first_names_sha256":
		return 3
	case "last_names_sha256":
		return 4
	case "regions":
		return 5
	case "cities":
		return 6
	case "postal_codes":
		return 7
	case "countries":
		return 8
	case "android_advertising_id":
		return 9
	case "obref":
		return 10
	case "ip_address":
		return 11
	case "user_agent":
		return 12
	}
	return -1
}

func (v *validator) parseUser() error {
	sc := &v.sc
	if err := v.wantObject(""); err != nil {
		return err
	}
	var seen int
	var unknown keySet
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		i := userField(key)
		if i < 0 {
			if msg, ok := legacyUserFields[string(key)]; ok {
				return ferr(string(key), msg)
			}
			if err := v.unknownField(key, &unknown, 4); err != nil {
				return err
			}
			continue
		}
		if err := markSeen(&seen, 1<<i, key); err != nil {
			return err
		}
		switch f := &userFields[i]; {
		case f.list:
			err = v.parseList(f.name, f.check)
		case f.check == nil:
			_, err = v.wantString(f.name)
		default:
			err = v.parseSingle(f.name, f.check)
		}
		if err != nil {
			return err
		}
	}
}

// parseSingle reads a string checked by check (which returns "" when the
// value is valid). The value is never echoed: user values identify people.
func (v *validator) parseSingle(name string, check func([]byte) string) error {
	s, err := v.wantString(name)
	if err != nil {
		return err
	}
	if msg := check(s); msg != "" {
		return ferr(name, msg)
	}
	return nil
}

// parseList reads an array of strings checked by check. With
// LenientUserLists an invalid value is ignored instead.
func (v *validator) parseList(name string, check func([]byte) string) error {
	sc := &v.sc
	if sc.peek() != '[' {
		return v.typeErr(name, "an array of strings")
	}
	sc.i++
	for i := 0; ; i++ {
		ok, err := sc.nextElem(i == 0)
		if err != nil || !ok {
			return err
		}
		if sc.peek() != '"' {
			return v.typeErr(name+"["+strconv.Itoa(i)+"]", "a string")
		}
		s, err := sc.str()
		if err != nil {
			return err
		}
		if msg := check(s); msg != "" && !v.lenientLists {
			return ferr(name+"["+strconv.Itoa(i)+"]", msg)
		}
	}
}

// Value rules. Each returns "" when the value is valid, else the reason.

func checkIntegrationSource(s []byte) string {
	if len(s) < 1 || len(s) > 64 {
		return "must be 1 to 64 characters"
	}
	if !isAlnum(s[0]) {
		return "must start with an ASCII letter or digit"
	}
	for _, c := range s[1:] {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return "may only contain ASCII letters, digits, '.', '_' and '-'"
		}
	}
	return ""
}

func checkCustomEventName(s []byte) string {
	if len(s) < 1 || len(s) > 64 {
		return "must be 1 to 64 characters"
	}
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			return "must be lowercase (send it lowercased, as the API stores it)"
		case isAlnum(c) || c == '_' || c == '-':
		default:
			return "may only contain letters, digits, '_' and '-'"
		}
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return "must start and end with a letter or digit"
	}
	if lookupEventType(s) != nil {
		return "must not be a standard event name"
	}
	return ""
}

func checkURL(s []byte) string {
	u, err := url.Parse(string(s))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "must be an absolute URL with scheme and host"
	}
	return ""
}

func checkCurrency(s []byte) string {
	if len(s) != 3 {
		return "must be a 3-letter ISO 4217 code"
	}
	var up [3]byte
	for i, c := range s {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return "must be a 3-letter ISO 4217 code"
		}
		up[i] = c
	}
	if !iso4217.has(up[:]) {
		return "not an ISO 4217 currency code"
	}
	return ""
}

func checkSHA256(s []byte) string {
	if len(s) != 64 {
		return "must be a SHA-256 as 64 lowercase hex characters (never a raw value)"
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') {
			return "must be a SHA-256 as 64 lowercase hex characters (never a raw value)"
		}
	}
	return ""
}

func checkRegionOrCity(s []byte) string {
	if len(bytes.TrimSpace(s)) == 0 {
		return "must not be empty"
	}
	if utf8.RuneCount(s) > 128 {
		return "must be at most 128 characters"
	}
	return ""
}

func checkPostalCode(s []byte) string {
	if len(s) > 32 {
		return "must be at most 32 characters"
	}
	blank := true
	for _, c := range s {
		switch {
		case isAlnum(c) || c == '-':
			blank = false
		case c == ' ':
		default:
			return "may only contain letters, digits, spaces and hyphens"
		}
	}
	if blank {
		return "must contain a letter or digit"
	}
	return ""
}

func checkCountry(s []byte) string {
	if len(s) != 2 || !iso3166.has(s) {
		return "must be an upper-case ISO 3166-1 alpha-2 code such as US"
	}
	return ""
}

// checkGAID accepts a UUID in 8-4-4-4-12 hex form, either case.
func checkGAID(s []byte) string {
	if len(s) != 36 {
		return "must be a UUID (8-4-4-4-12 hex digits)"
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return "must be a UUID (8-4-4-4-12 hex digits)"
			}
		} else if !isHex(c) {
			return "must be a UUID (8-4-4-4-12 hex digits)"
		}
	}
	return ""
}

func checkIP(s []byte) string {
	a, err := netip.ParseAddr(string(s))
	if err != nil || a.Zone() != "" {
		return "must be a valid IPv4 or IPv6 address"
	}
	return ""
}

func checkUserAgent(s []byte) string {
	if len(bytes.TrimSpace(s)) == 0 {
		return "must not be empty"
	}
	return ""
}

// countEvents is the NullSink parse: the body must be a syntactically valid
// JSON object whose "events" is an array; nothing else is checked.
func (v *validator) countEvents() (n int, validateOnly bool, err error) {
	sc := &v.sc
	if err := v.openBody(); err != nil {
		return 0, false, err
	}
	seenEvents := false
	for first := true; ; first = false {
		key, ok, err := sc.nextKey(first)
		if err != nil {
			return 0, false, err
		}
		if !ok {
			break
		}
		switch {
		case string(key) == "events":
			if sc.peek() != '[' {
				return 0, false, v.typeErr("events", "an array")
			}
			seenEvents = true
			sc.i++
			for first := true; ; first = false {
				more, err := sc.nextElem(first)
				if err != nil {
					return 0, false, err
				}
				if !more {
					break
				}
				n++
				if err := sc.skip(2); err != nil {
					return 0, false, err
				}
			}
		case string(key) == "validate_only" && sc.peek() == 't':
			if _, err := sc.literal(); err != nil {
				return 0, false, err
			}
			validateOnly = true
		default:
			if err := sc.skip(1); err != nil {
				return 0, false, err
			}
		}
	}
	if err := v.endBody(seenEvents); err != nil {
		return 0, false, err
	}
	return n, validateOnly, nil
}
