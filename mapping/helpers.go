package mapping

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/capi"
)

// This file holds the native implementations of the expression helpers. The
// CEL bindings (env.go) and the fast paths (node.go) both call them, so an
// expression gives the same result whichever way it is evaluated.

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
	1000000000, 10000000000, 100000000000, 1000000000000, 10000000000000,
	100000000000000, 1000000000000000, 10000000000000000, 100000000000000000, 1000000000000000000}

var errOverflow = errors.New("money.minor: amount overflows a 64-bit integer of minor units")

// moneyMinor converts an amount in MAJOR units (29.99) of currency into an
// integer of minor units (2999), using the ISO 4217 exponent of the currency.
// amount may be an int (whole major units), a decimal string ("199.90",
// "-5", "+0.5", no exponent, no thousands separators, surrounding spaces
// trimmed) or a double. A double is first written as the shortest decimal
// that reads back as the same double (so 199.9 is "199.9", exactly as a JSON
// producer wrote it when it has at most 15 significant digits). Extra
// fractional digits are rounded half away from zero ("0.125" USD → 13,
// "-0.125" → -13).
func moneyMinor(amount val, currency string) (int64, error) {
	exp, ok := currencyExponent(currency)
	if !ok {
		return 0, errors.New("money.minor: unknown currency " + strconv.Quote(currency) + " (want an ISO 4217 code such as USD, EUR, JPY)")
	}
	switch amount.k {
	case kInt:
		n := amount.n
		m := pow10[exp]
		if n > math.MaxInt64/m || n < math.MinInt64/m {
			return 0, errOverflow
		}
		return n * m, nil
	case kFloat:
		if math.IsNaN(amount.float()) || math.IsInf(amount.float(), 0) {
			return 0, errors.New("money.minor: amount is NaN or infinite")
		}
		var buf [32]byte
		return decimalMinor(string(strconv.AppendFloat(buf[:0], amount.float(), 'f', -1, 64)), exp)
	case kString:
		return decimalMinor(amount.s, exp)
	}
	return 0, errors.New("money.minor: amount must be an int, a double or a decimal string, got " + amount.typeName())
}

// currencyExponent is capi.CurrencyExponent with a fast path for the most
// used codes (a string switch instead of a map lookup); a test checks that
// both agree.
func currencyExponent(code string) (int, bool) {
	switch code {
	case "USD", "EUR", "GBP", "CAD", "AUD", "CHF", "CNY", "INR", "BRL", "MXN", "SEK", "NOK", "DKK", "PLN", "SGD", "HKD", "NZD", "ZAR":
		return 2, true
	case "JPY", "KRW":
		return 0, true
	}
	return capi.CurrencyExponent(code)
}

// decimalMinor parses a decimal string and scales it by 10^exp with
// half-away-from-zero rounding, exactly (integer arithmetic only).
func decimalMinor(s string, exp int) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && frac == "" || hasDot && frac == "" && intPart == "" {
		return 0, errors.New("money.minor: not a decimal number: " + strconv.Quote(orig))
	}
	var n int64
	add := func(d byte) bool {
		if n > (math.MaxInt64-int64(d-'0'))/10 {
			return false
		}
		n = n*10 + int64(d-'0')
		return true
	}
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, errors.New("money.minor: not a decimal number: " + strconv.Quote(orig))
		}
		if !add(c) {
			return 0, errOverflow
		}
	}
	for i := 0; i < len(frac); i++ {
		if c := frac[i]; c < '0' || c > '9' {
			return 0, errors.New("money.minor: not a decimal number: " + strconv.Quote(orig))
		}
	}
	for i := 0; i < exp; i++ {
		d := byte('0')
		if i < len(frac) {
			d = frac[i]
		}
		if !add(d) {
			return 0, errOverflow
		}
	}
	if len(frac) > exp && frac[exp] >= '5' {
		if n == math.MaxInt64 {
			return 0, errOverflow
		}
		n++ // half away from zero: the first dropped digit decides
	}
	if neg {
		n = -n
	}
	return n, nil
}

// parseRFC3339 parses an RFC 3339 timestamp ("2026-03-19T04:00:00Z",
// "2026-03-19T06:00:00.123+02:00") into the instant it names, in UTC. The
// common shapes are parsed by hand; anything else goes to time.Parse, so
// the accepted set is exactly time.RFC3339Nano's.
func parseRFC3339(s string) (time.Time, error) {
	if t, ok := fastRFC3339(s); ok {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("time.rfc3339: not an RFC 3339 timestamp: " + strconv.Quote(s) + " (want e.g. 2026-03-19T04:00:00Z)")
	}
	return t.UTC(), nil
}

// fastRFC3339 parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) without
// allocating; ok is false for any other shape and for days past the 28th
// (time.Parse then decides, with its exact rules).
func fastRFC3339(s string) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || month < 1 || month > 12 || day < 1 || day > 28 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		i++
		start := i
		scale := 100000000
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				nsec += int(s[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start || i-start > 9 {
			return time.Time{}, false
		}
	}
	offset := 0
	switch rest := s[i:]; {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, om := num(i+1, 2), num(i+4, 2)
		if oh < 0 || oh > 23 || om < 0 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// epochTime converts x (int, or a string of an integer; for seconds also a
// double or a decimal string) in the given unit (1 = seconds, 1e3 = ms, 1e6 = µs)
// to a time.
func epochTime(fn string, x val, perSecond int64) (time.Time, error) {
	switch x.k {
	case kInt:
		return fromUnits(x.n, perSecond), nil
	case kFloat:
		if perSecond == 1 && !math.IsNaN(x.float()) && !math.IsInf(x.float(), 0) {
			var buf [32]byte
			return parseEpochDecimal(fn, string(strconv.AppendFloat(buf[:0], x.float(), 'f', -1, 64)), perSecond)
		}
		if x.float() == math.Trunc(x.float()) && math.Abs(x.float()) < 1<<53 {
			return fromUnits(int64(x.float()), perSecond), nil
		}
	case kString:
		return parseEpochDecimal(fn, x.s, perSecond)
	}
	return time.Time{}, errors.New(fn + ": want an integer or a numeric string (or a timestamp), got " + x.typeName())
}

func parseEpochDecimal(fn, s string, perSecond int64) (time.Time, error) {
	s = strings.TrimSpace(s)
	if perSecond == 1 {
		// seconds may have a fraction: parse as nanoseconds exactly.
		ns, err := decimalMinor(s, 9)
		if err != nil {
			return time.Time{}, errors.New(fn + ": not a number: " + strconv.Quote(s))
		}
		return time.Unix(0, ns).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, errors.New(fn + ": not an integer: " + strconv.Quote(s))
	}
	return fromUnits(n, perSecond), nil
}

func fromUnits(n, perSecond int64) time.Time {
	sec, rem := n/perSecond, n%perSecond
	return time.Unix(sec, rem*(1e9/perSecond)).UTC()
}

// originPath returns scheme://host[:port]/path of an absolute URL: the query,
// the fragment and any user:password@ are dropped, scheme and host are
// lowercased, the path is kept as written. An empty input returns "" (the
// field is then absent); a relative URL or one without a host is an error.
// It does not allocate when the input needs no lowercasing and has no
// user info.
func originPath(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	i := strings.Index(s, "://")
	if i <= 0 {
		return "", errors.New("url.origin_path: not an absolute URL (want scheme://host/path): " + strconv.Quote(truncate(s)))
	}
	schemeUpper := false
	for j := 0; j < i; j++ {
		c := s[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", errors.New("url.origin_path: invalid URL scheme in " + strconv.Quote(truncate(s)))
		}
		schemeUpper = schemeUpper || c >= 'A' && c <= 'Z'
	}
	rest := s[i+3:]
	// One pass over the authority: where it ends (strings.IndexAny(rest,
	// "/?#")), its last '@', and whether it has upper case letters or
	// spaces and control characters.
	end, at, upper, ctrl := 0, -1, schemeUpper, false
	for ; end < len(rest); end++ {
		c := rest[end]
		if c == '/' || c == '?' || c == '#' {
			break
		}
		switch {
		case c <= ' ' || c == 0x7f:
			ctrl = true
		case c == '@':
			at = end
		case c >= 'A' && c <= 'Z':
			upper = true
		}
	}
	hostStart := i + 3 + at + 1
	host := s[hostStart : i+3+end]
	if host == "" || host[0] == ':' {
		return "", errors.New("url.origin_path: URL has no host: " + strconv.Quote(truncate(s)))
	}
	pathEnd := i + 3 + end
	if end < len(rest) && rest[end] == '/' {
		for ; pathEnd < len(s); pathEnd++ {
			c := s[pathEnd]
			if c == '?' || c == '#' {
				break
			}
			if c <= ' ' || c == 0x7f {
				ctrl = true
			}
		}
	}
	if ctrl {
		return "", errors.New("url.origin_path: URL contains spaces or control characters")
	}
	if at < 0 && !upper {
		return s[:pathEnd], nil
	}
	return strings.ToLower(s[:i]) + "://" + strings.ToLower(host) + s[i+3+end:pathEnd], nil
}

// truncate shortens a value quoted in an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
