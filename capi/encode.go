package capi

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

type jsonNumber = json.Number

// AppendEvent appends the JSON encoding of e to dst and returns the extended
// buffer. The output is what encoding/json would produce for the same Event
// (same members, same order; HTML characters are not escaped), but it is written
// by hand: with a reused dst it does not allocate, except to sort the keys of
// custom Properties. Absent optional fields are left out. AppendEvent does not
// validate; call Validator.Validate first. Strings with invalid UTF-8 have the
// bad bytes replaced by U+FFFD, as encoding/json does.
func AppendEvent(dst []byte, e *Event) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, string(e.Type))
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendInt(dst, e.TimestampMS, 10)
	dst = appendOptString(dst, `,"custom_event_name":`, e.CustomEventName)
	dst = appendOptString(dst, `,"action_source":`, string(e.ActionSource))
	dst = appendOptString(dst, `,"source_url":`, e.SourceURL)
	dst = appendOptString(dst, `,"oppref":`, e.OppRef)
	if !e.User.IsZero() {
		dst = append(dst, `,"user":`...)
		dst = appendUser(dst, &e.User)
	}
	if e.OptOut {
		dst = append(dst, `,"opt_out":true`...)
	}
	dst = append(dst, `,"data":`...)
	dst = appendData(dst, &e.Data)
	return append(dst, '}')
}

// AppendRequest appends a whole request body whose events are already encoded
// (by AppendEvent) to dst. It is how the client builds request bodies: each
// event is encoded once, and batches are assembled and re-split from the
// encoded pieces.
func AppendRequest(dst []byte, events [][]byte, validateOnly bool, integrationSource string) []byte {
	dst = append(dst, `{"events":[`...)
	for i, ev := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, ev...)
	}
	dst = append(dst, ']')
	if validateOnly {
		dst = append(dst, `,"validate_only":true`...)
	}
	dst = appendOptString(dst, `,"integration_source":`, integrationSource)
	return append(dst, '}')
}

// RequestSize returns the exact length of AppendRequest's output for events of
// the given total encoded length n and count k, without building it.
func RequestSize(n, k int, validateOnly bool, integrationSource string) int {
	size := len(`{"events":[`) + n + len(`]}`)
	if k > 1 {
		size += k - 1
	}
	if validateOnly {
		size += len(`,"validate_only":true`)
	}
	if integrationSource != "" {
		// A valid integration_source (at most 64 ASCII characters) is
		// escaped within buf, so this does not allocate.
		var buf [128]byte
		size += len(`,"integration_source":`) + len(appendString(buf[:0], integrationSource))
	}
	return size
}

func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, key...)
	return appendString(dst, s)
}

func appendUser(dst []byte, u *User) []byte {
	dst = append(dst, '{')
	first := true
	key := func(dst []byte, k string) []byte {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, k...)
		return dst
	}
	list := func(dst []byte, k string, l []string) []byte {
		if len(l) == 0 {
			return dst
		}
		dst = key(dst, k)
		dst = append(dst, '[')
		for i, s := range l {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		return append(dst, ']')
	}
	str := func(dst []byte, k, s string) []byte {
		if s == "" {
			return dst
		}
		dst = key(dst, k)
		return appendString(dst, s)
	}
	dst = list(dst, `"emails_sha256":`, u.EmailsSHA256)
	dst = list(dst, `"phone_numbers_sha256":`, u.PhoneNumbersSHA256)
	dst = list(dst, `"external_ids_sha256":`, u.ExternalIDsSHA256)
	dst = list(dst, `"first_names_sha256":`, u.FirstNamesSHA256)
	dst = list(dst, `"last_names_sha256":`, u.LastNamesSHA256)
	dst = list(dst, `"regions":`, u.Regions)
	dst = list(dst, `"cities":`, u.Cities)
	dst = list(dst, `"postal_codes":`, u.PostalCodes)
	dst = list(dst, `"countries":`, u.Countries)
	dst = str(dst, `"android_advertising_id":`, u.AndroidAdvertisingID)
	dst = str(dst, `"obref":`, u.OBRef)
	dst = str(dst, `"ip_address":`, u.IPAddress)
	dst = str(dst, `"user_agent":`, u.UserAgent)
	return append(dst, '}')
}

func appendData(dst []byte, d *Data) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, string(d.Type))
	dst = appendOptString(dst, `,"plan_id":`, d.PlanID)
	if d.Amount.Valid {
		dst = append(dst, `,"amount":`...)
		dst = strconv.AppendInt(dst, d.Amount.Value, 10)
	}
	dst = appendOptString(dst, `,"currency":`, d.Currency)
	if len(d.Contents) > 0 {
		dst = append(dst, `,"contents":[`...)
		for i := range d.Contents {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendContent(dst, &d.Contents[i])
		}
		dst = append(dst, ']')
	}
	if len(d.Properties) > 0 {
		keys := make([]string, 0, len(d.Properties))
		for k := range d.Properties {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = append(dst, ',')
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendAny(dst, d.Properties[k], 0)
		}
	}
	return append(dst, '}')
}

func appendContent(dst []byte, c *Content) []byte {
	dst = append(dst, '{')
	n := len(dst)
	sep := func(dst []byte) []byte {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		return dst
	}
	if c.ID != "" {
		dst = append(sep(dst), `"id":`...)
		dst = appendString(dst, c.ID)
	}
	if c.GroupID != "" {
		dst = append(sep(dst), `"group_id":`...)
		dst = appendString(dst, c.GroupID)
	}
	if c.Name != "" {
		dst = append(sep(dst), `"name":`...)
		dst = appendString(dst, c.Name)
	}
	if c.ContentType != "" {
		dst = append(sep(dst), `"content_type":`...)
		dst = appendString(dst, c.ContentType)
	}
	if c.Quantity.Valid {
		dst = append(sep(dst), `"quantity":`...)
		dst = strconv.AppendInt(dst, c.Quantity.Value, 10)
	}
	if c.Amount.Valid {
		dst = append(sep(dst), `"amount":`...)
		dst = strconv.AppendInt(dst, c.Amount.Value, 10)
	}
	if c.Currency != "" {
		dst = append(sep(dst), `"currency":`...)
		dst = appendString(dst, c.Currency)
	}
	if len(c.VariantDict) > 0 {
		dst = append(sep(dst), `"variant_dict":{`...)
		keys := make([]string, 0, len(c.VariantDict))
		for k := range c.VariantDict {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, c.VariantDict[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendAny writes the JSON value kinds checkPropertyValue accepts. Anything
// else (which Validate reports) is written as null so the output stays JSON.
func appendAny(dst []byte, v any, depth int) []byte {
	if depth > 32 {
		return append(dst, "null"...)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendString(dst, x)
	case bool:
		return strconv.AppendBool(dst, x)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int8:
		return strconv.AppendInt(dst, int64(x), 10)
	case int16:
		return strconv.AppendInt(dst, int64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case float32:
		return appendFloat(dst, float64(x), 32)
	case float64:
		return appendFloat(dst, x, 64)
	case jsonNumber:
		if !validJSONNumber(string(x)) {
			return append(dst, "null"...)
		}
		return append(dst, x...)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendAny(dst, x[k], depth+1)
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendAny(dst, e, depth+1)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendFloat formats like encoding/json: shortest representation, exponent
// form only for very large or small magnitudes. NaN and infinities (reported
// by Validate) become null.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if !isFinite(f) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	fmtByte := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		fmtByte = 'e'
	}
	n := len(dst)
	dst = strconv.AppendFloat(dst, f, fmtByte, -1, bits)
	if fmtByte == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		m := len(dst) - n
		if m >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// validJSONNumber reports whether s is a number in JSON's grammar.
func validJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	if s[i] == '-' {
		i++
		if i == len(s) {
			return false
		}
	}
	switch {
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

func appendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

var errNotInteger = errors.New("not a JSON integer")

func parseJSONInt(b []byte) (int64, error) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, errNotInteger
	}
	return v, nil
}

const hexDigits = "0123456789abcdef"

// safeASCII[c] is true for bytes that need no escaping in a JSON string.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped (as encoding/json does, for JavaScript consumers).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// MarshalJSON encodes d including its custom Properties, as AppendEvent does,
// so that encoding/json and AppendEvent agree.
func (d Data) MarshalJSON() ([]byte, error) { return appendData(nil, &d), nil }

// UnmarshalJSON decodes a data object; members other than the named fields go
// to Properties (numbers as json.Number, so integers stay exact).
func (d *Data) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*d = Data{}
	for k, v := range raw {
		var err error
		switch k {
		case "type":
			err = json.Unmarshal(v, &d.Type)
		case "plan_id":
			err = json.Unmarshal(v, &d.PlanID)
		case "amount":
			err = d.Amount.UnmarshalJSON(v)
		case "currency":
			err = json.Unmarshal(v, &d.Currency)
		case "contents":
			err = json.Unmarshal(v, &d.Contents)
		default:
			var x any
			dec := json.NewDecoder(bytesReader(v))
			dec.UseNumber()
			err = dec.Decode(&x)
			if d.Properties == nil {
				d.Properties = make(map[string]any)
			}
			d.Properties[k] = x
		}
		if err != nil {
			return errors.New("data." + k + ": " + err.Error())
		}
	}
	return nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
