package capi

import "strings"

// currencyExponents maps ISO 4217 codes in circulation to the number of digits
// of their minor unit (USD 2, JPY 0, KWD 3, CLF 4). Funds and precious-metal
// codes without a minor unit (XAU, XDR, ...) are left out: money cannot be
// expressed in minor units of them.
var currencyExponents = func() map[string]int8 {
	m := make(map[string]int8, 180)
	two := "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
		"CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD " +
		"GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD " +
		"MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD " +
		"RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH " +
		"USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
	for _, c := range strings.Fields(two) {
		m[c] = 2
	}
	for _, c := range strings.Fields("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF") {
		m[c] = 0
	}
	for _, c := range strings.Fields("BHD IQD JOD KWD LYD OMR TND") {
		m[c] = 3
	}
	for _, c := range strings.Fields("CLF UYW") {
		m[c] = 4
	}
	return m
}()

// CurrencyExponent returns the number of minor-unit digits of the ISO 4217
// currency code (case-insensitive), and false for an unknown code.
func CurrencyExponent(code string) (int, bool) {
	if len(code) != 3 {
		return 0, false
	}
	var b [3]byte
	for i := 0; i < 3; i++ {
		c := code[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	e, ok := currencyExponents[string(b[:])]
	return int(e), ok
}

// countries is the set of ISO 3166-1 alpha-2 codes officially assigned.
var countries = func() map[string]struct{} {
	const list = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS " +
		"BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER " +
		"ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE " +
		"IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA " +
		"MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM " +
		"PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR " +
		"SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU " +
		"WF WS YE YT ZA ZM ZW"
	m := make(map[string]struct{}, 249)
	for _, c := range strings.Fields(list) {
		m[c] = struct{}{}
	}
	return m
}()

// IsCountry reports whether code is an assigned ISO 3166-1 alpha-2 code
// (case-insensitive: the API documents upper case, e.g. "US").
func IsCountry(code string) bool {
	if len(code) != 2 {
		return false
	}
	var b [2]byte
	for i := 0; i < 2; i++ {
		c := code[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	_, ok := countries[string(b[:])]
	return ok
}
