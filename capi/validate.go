package capi

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Window limits documented by the API, measured when it receives the event.
const (
	// MaxEventAge is how old an event may be.
	MaxEventAge = 7 * 24 * time.Hour
	// MaxEventFuture is how far ahead of the API's clock an event may be.
	MaxEventFuture = 10 * time.Minute
	// MaxEventsPerRequest is the API's limit on events in one request.
	MaxEventsPerRequest = 1000
)

// ErrTooOld and ErrTooNew are wrapped by the FieldError of a timestamp outside
// the window, so callers can count expired events apart from invalid ones with
// errors.Is.
var (
	ErrTooOld = errors.New("older than the event-age window")
	ErrTooNew = errors.New("too far in the future")
)

// FieldError is one broken rule: the path of the field (e.g.
// "data.contents[1].currency") and the rule, in words. Index is the event's
// position in a request, or -1 when a single event was validated.
type FieldError struct {
	Index int
	Path  string
	Rule  string
	// Err is ErrTooOld or ErrTooNew for timestamp window violations, else nil.
	Err error
}

// Error returns "events[3].data.currency: required when amount is set" (or
// without the "events[3]." prefix when Index is -1).
func (e *FieldError) Error() string {
	if e.Index < 0 {
		return e.Path + ": " + e.Rule
	}
	p := "events[" + strconv.Itoa(e.Index) + "]"
	if e.Path != "" {
		p += "." + e.Path
	}
	return p + ": " + e.Rule
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// ValidationError lists every rule an event (or request) breaks, in field
// order. It is what Validator returns.
type ValidationError []*FieldError

// Error joins the field errors with "; ".
func (v ValidationError) Error() string {
	var b strings.Builder
	for i, e := range v {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the field errors, so errors.Is(err, ErrTooOld) works.
func (v ValidationError) Unwrap() []error {
	out := make([]error, len(v))
	for i, e := range v {
		out[i] = e
	}
	return out
}

// Validator checks events against every documented rule of the API before they
// are sent, so that a bad event is dead-lettered with a precise reason instead
// of failing a whole batch. The zero Validator uses the wall clock and the API's
// own window (7 days back, 10 minutes ahead). A Validator is safe for
// concurrent use; validating a valid event does not allocate.
type Validator struct {
	// Now is the clock; nil means time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// MaxAge is how old an event may be; 0 means MaxEventAge. The relay sets it
	// to MaxEventAge minus a safety margin, so an event that is valid here is
	// still valid when it reaches the API after queueing and retries.
	MaxAge time.Duration
	// MaxFuture is how far ahead an event may be; 0 means MaxEventFuture.
	MaxFuture time.Duration
}

func (v *Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Window returns the oldest and the newest timestamp (Unix ms, inclusive) that
// an event validated at now may have.
func (v *Validator) Window(now time.Time) (oldestMS, newestMS int64) {
	age, fut := v.MaxAge, v.MaxFuture
	if age <= 0 {
		age = MaxEventAge
	}
	if fut <= 0 {
		fut = MaxEventFuture
	}
	return now.Add(-age).UnixMilli(), now.Add(fut).UnixMilli()
}

// Validate checks one event and returns nil or a ValidationError whose paths are
// relative to the event ("data.currency").
func (v *Validator) Validate(e *Event) error {
	oldest, newest := v.Window(v.now())
	var errs ValidationError
	validateEvent(e, -1, oldest, newest, &errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// ValidateRequest checks the top level of a request and every event in it;
// paths are "events[i]...".
func (v *Validator) ValidateRequest(r *Request) error {
	oldest, newest := v.Window(v.now())
	var errs ValidationError
	switch n := len(r.Events); {
	case n == 0:
		errs.add(-1, "events", "must hold at least 1 event")
	case n > MaxEventsPerRequest:
		errs.add(-1, "events", "must hold at most 1000 events, has "+strconv.Itoa(n))
	}
	if r.IntegrationSource != "" {
		if err := CheckIntegrationSource(r.IntegrationSource); err != nil {
			errs.add(-1, "integration_source", err.Error())
		}
	}
	for i := range r.Events {
		validateEvent(&r.Events[i], i, oldest, newest, &errs)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func (v *ValidationError) add(idx int, path, rule string) {
	*v = append(*v, &FieldError{Index: idx, Path: path, Rule: rule})
}

// CheckIntegrationSource checks the integration_source rule: 1-64 ASCII
// characters, starting with a letter or digit, then letters, digits, '.', '_'
// or '-'. (The server trims and lowercases; the relay sends it as configured.)
func CheckIntegrationSource(s string) error {
	if len(s) < 1 || len(s) > 64 {
		return errors.New("must be 1 to 64 characters, has " + strconv.Itoa(len(s)))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || (i > 0 && (c == '.' || c == '_' || c == '-')) {
			continue
		}
		if i == 0 {
			return errors.New("must start with a letter or digit")
		}
		return errors.New("may hold only letters, digits, '.', '_' and '-', found " + strconv.QuoteRune(rune(c)))
	}
	return nil
}

func validateEvent(e *Event, idx int, oldest, newest int64, errs *ValidationError) {
	if e.ID == "" {
		errs.add(idx, "id", "required (the deduplication key must not be empty)")
	}
	dataType, known := DataTypeOf(e.Type)
	switch {
	case e.Type == "":
		errs.add(idx, "type", "required")
	case !known:
		errs.add(idx, "type", "unknown event name "+strconv.Quote(string(e.Type)))
	}
	switch {
	case e.TimestampMS <= 0:
		errs.add(idx, "timestamp_ms", "required (Unix milliseconds)")
	case e.TimestampMS < oldest:
		*errs = append(*errs, &FieldError{Index: idx, Path: "timestamp_ms", Err: ErrTooOld,
			Rule: "older than the event-age window (" + time.UnixMilli(e.TimestampMS).UTC().Format(time.RFC3339) +
				" < cutoff " + time.UnixMilli(oldest).UTC().Format(time.RFC3339) + ")"})
	case e.TimestampMS > newest:
		*errs = append(*errs, &FieldError{Index: idx, Path: "timestamp_ms", Err: ErrTooNew,
			Rule: "more than 10 minutes in the future (" + time.UnixMilli(e.TimestampMS).UTC().Format(time.RFC3339) +
				" > " + time.UnixMilli(newest).UTC().Format(time.RFC3339) + ")"})
	}
	if e.Type == Custom {
		if e.CustomEventName == "" {
			errs.add(idx, "custom_event_name", "required when type is custom")
		} else if rule := checkCustomEventName(e.CustomEventName); rule != "" {
			errs.add(idx, "custom_event_name", rule)
		}
	} else if e.CustomEventName != "" {
		errs.add(idx, "custom_event_name", "allowed only when type is custom")
	}
	switch {
	case e.ActionSource == "":
		errs.add(idx, "action_source", "required (its default is undocumented, so capirelay always sends it)")
	case !e.ActionSource.Valid():
		errs.add(idx, "action_source", "must be one of web, mobile_app, offline, physical_store, phone_call, email, other; got "+strconv.Quote(string(e.ActionSource)))
	case (e.Type == AppInstalled || e.Type == AppOpened) && e.ActionSource != SourceMobileApp:
		errs.add(idx, "action_source", "must be mobile_app for "+string(e.Type))
	}
	if e.ActionSource == SourceWeb && e.Type != AppInstalled && e.Type != AppOpened {
		if e.SourceURL == "" {
			errs.add(idx, "source_url", "required when action_source is web")
		}
	}
	if e.SourceURL != "" && !isAbsoluteURL(e.SourceURL) {
		errs.add(idx, "source_url", "must be an absolute URL with scheme and host")
	}
	validateUser(&e.User, idx, errs)
	if known {
		validateData(&e.Data, dataType, idx, errs)
	}
}

func checkCustomEventName(s string) string {
	if len(s) > 64 {
		return "must be 1 to 64 characters, has " + strconv.Itoa(len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			return "must be lowercase (the server lowercases it; send it lowercase)"
		case isAlnum(c):
		case c == '_' || c == '-':
			if i == 0 || i == len(s)-1 {
				return "must start and end with a letter or digit"
			}
		default:
			return "may hold only letters, digits, '_' and '-', found " + strconv.QuoteRune(rune(c))
		}
	}
	if EventType(s).IsStandard() {
		return "must not be a standard event name (use type " + strconv.Quote(s) + " instead)"
	}
	return ""
}

func validateData(d *Data, want DataType, idx int, errs *ValidationError) {
	switch {
	case d.Type == "":
		errs.add(idx, "data.type", "required, must be "+strconv.Quote(string(want)))
	case d.Type != want:
		errs.add(idx, "data.type", "must be "+strconv.Quote(string(want))+" for this event type, got "+strconv.Quote(string(d.Type)))
	}
	if d.PlanID != "" && want != DataPlanEnrollment && want != DataCustom {
		errs.add(idx, "data.plan_id", "not allowed in "+string(want)+" data")
	}
	if len(d.Contents) > 0 && want == DataCustomerAction {
		errs.add(idx, "data.contents", "not allowed in customer_action data")
	}
	if len(d.Properties) > 0 && want != DataCustom {
		errs.add(idx, "data", "custom properties are allowed only in custom data")
	}
	if d.Amount.Valid && d.Currency == "" {
		errs.add(idx, "data.currency", "required when amount is set")
	}
	if d.Currency != "" {
		if _, ok := CurrencyExponent(d.Currency); !ok {
			errs.add(idx, "data.currency", "not an ISO 4217 currency code: "+strconv.Quote(d.Currency))
		}
	}
	for i := range d.Contents {
		validateContent(&d.Contents[i], i, d.Currency != "", idx, errs)
	}
	for k, val := range d.Properties {
		switch k {
		case "type", "plan_id", "amount", "currency", "contents":
			errs.add(idx, "data."+k, "custom property collides with a documented data field; set the field instead")
		}
		if k == "" {
			errs.add(idx, "data", "custom property with an empty name")
		}
		if rule := checkPropertyValue(val, 0); rule != "" {
			errs.add(idx, "data."+k, rule)
		}
	}
}

func contentPath(i int, field string) string {
	return "data.contents[" + strconv.Itoa(i) + "]." + field
}

func validateContent(c *Content, i int, eventCurrency bool, idx int, errs *ValidationError) {
	if c.Amount.Valid && c.Currency == "" && !eventCurrency {
		errs.add(idx, contentPath(i, "currency"), "required when the item has an amount and the event has no currency")
	}
	if c.Currency != "" {
		if _, ok := CurrencyExponent(c.Currency); !ok {
			errs.add(idx, contentPath(i, "currency"), "not an ISO 4217 currency code: "+strconv.Quote(c.Currency))
		}
	}
}

// checkPropertyValue accepts the JSON value kinds the encoder can write.
func checkPropertyValue(v any, depth int) string {
	if depth > 32 {
		return "nested more than 32 levels deep"
	}
	switch x := v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return ""
	case float32:
		if !isFinite(float64(x)) {
			return "NaN or infinite number"
		}
	case float64:
		if !isFinite(x) {
			return "NaN or infinite number"
		}
	case jsonNumber:
		if !validJSONNumber(string(x)) {
			return "invalid JSON number " + strconv.Quote(string(x))
		}
	case map[string]any:
		for _, e := range x {
			if r := checkPropertyValue(e, depth+1); r != "" {
				return r
			}
		}
	case []any:
		for _, e := range x {
			if r := checkPropertyValue(e, depth+1); r != "" {
				return r
			}
		}
	default:
		return "unsupported value type (want string, number, bool, null, object or array)"
	}
	return ""
}

func validateUser(u *User, idx int, errs *ValidationError) {
	hashLists := [...]struct {
		name string
		list []string
	}{
		{"user.emails_sha256", u.EmailsSHA256},
		{"user.phone_numbers_sha256", u.PhoneNumbersSHA256},
		{"user.external_ids_sha256", u.ExternalIDsSHA256},
		{"user.first_names_sha256", u.FirstNamesSHA256},
		{"user.last_names_sha256", u.LastNamesSHA256},
	}
	for _, hl := range hashLists {
		for i, h := range hl.list {
			if !IsSHA256Hex(h) {
				errs.add(idx, listPath(hl.name, i), "must be a lowercase 64-character hex SHA-256 (never a raw value)")
			}
		}
	}
	for i, s := range u.Regions {
		checkPlace(s, "user.regions", i, 128, idx, errs)
	}
	for i, s := range u.Cities {
		checkPlace(s, "user.cities", i, 128, idx, errs)
	}
	for i, s := range u.PostalCodes {
		switch {
		case strings.TrimSpace(s) == "":
			errs.add(idx, listPath("user.postal_codes", i), "must not be empty")
		case len(s) > 32:
			errs.add(idx, listPath("user.postal_codes", i), "longer than 32 characters")
		default:
			for j := 0; j < len(s); j++ {
				if c := s[j]; !isAlnum(c) && c != ' ' && c != '-' {
					errs.add(idx, listPath("user.postal_codes", i), "may hold only letters, digits, spaces and hyphens")
					break
				}
			}
		}
	}
	for i, s := range u.Countries {
		switch {
		case !IsCountry(s):
			errs.add(idx, listPath("user.countries", i), "not an ISO 3166-1 alpha-2 country code: "+strconv.Quote(s))
		case s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z':
			// A known code (so 2 bytes long) in lower or mixed case. The API
			// documents upper case ("US") and no normalization.
			errs.add(idx, listPath("user.countries", i), "must be upper case (ISO 3166-1 alpha-2, e.g. \"US\"), got "+strconv.Quote(s))
		}
	}
	if u.AndroidAdvertisingID != "" && !isUUID(u.AndroidAdvertisingID) {
		errs.add(idx, "user.android_advertising_id", "must be a UUID")
	}
	if u.IPAddress != "" {
		if _, err := netip.ParseAddr(u.IPAddress); err != nil {
			errs.add(idx, "user.ip_address", "not a valid IPv4 or IPv6 address")
		}
	}
}

func checkPlace(s, name string, i, max, idx int, errs *ValidationError) {
	switch {
	case strings.TrimSpace(s) == "":
		errs.add(idx, listPath(name, i), "must not be empty")
	case len([]rune(strings.TrimSpace(s))) > max:
		errs.add(idx, listPath(name, i), "longer than "+strconv.Itoa(max)+" characters")
	}
}

func listPath(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// IsSHA256Hex reports whether s is a lowercase 64-character hex string, the form
// the API wants for every *_sha256 field.
func IsSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < 64; i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isUUID checks the 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isAbsoluteURL checks scheme "://" host without allocating: a scheme per RFC
// 3986 (a letter, then letters, digits, '+', '-', '.'), then "://", then a
// non-empty host, and no spaces or control characters anywhere.
func isAbsoluteURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 || !('a' <= s[0]|0x20 && s[0]|0x20 <= 'z') {
		return false
	}
	for j := 1; j < i; j++ {
		c := s[j]
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	if host == "" {
		return false
	}
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 2 {
			return false
		}
		if port := host[end+1:]; port != "" && (port[0] != ':' || strings.Trim(port[1:], "0123456789") != "") {
			return false
		}
	} else {
		for j := 0; j < len(host); j++ {
			c := host[j]
			if !isAlnum(c) && !strings.ContainsRune("-._~!$&'()*+,;=%", rune(c)) && c < 0x80 {
				return false
			}
		}
	}
	for j := 0; j < len(s); j++ {
		switch c := s[j]; {
		case c <= ' ' || c == 0x7f:
			return false
		case c == '%':
			// A percent sign must start an escape: %XX with two hex digits.
			if j+2 >= len(s) || !isHex(s[j+1]) || !isHex(s[j+2]) {
				return false
			}
		}
	}
	return true
}
