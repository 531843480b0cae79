package capisim

// Enumerations and code lists of the Conversions API contract
// (docs/conversions-api.md). Everything here is data; the rules that use it
// live in validate.go.

// Data shapes (the value of data.type).
const (
	shapeContents       = "contents"
	shapeCustomerAction = "customer_action"
	shapePlanEnrollment = "plan_enrollment"
	shapeCustom         = "custom"
)

// eventType is one supported value of an event's "type".
type eventType struct {
	name  string
	shape string
	// app events (app_installed, app_opened) require action_source
	// mobile_app.
	app bool
}

// eventTypes lists the 13 event names of the contract's table. The
// third-party "attribution_appended" (data type "attribution") is
// deliberately not supported, as the contract says.
var eventTypes = []eventType{
	{name: "order_created", shape: shapeContents},
	{name: "checkout_started", shape: shapeContents},
	{name: "items_added", shape: shapeContents},
	{name: "contents_viewed", shape: shapeContents},
	{name: "page_viewed", shape: shapeContents},
	{name: "lead_created", shape: shapeCustomerAction},
	{name: "registration_completed", shape: shapeCustomerAction},
	{name: "appointment_scheduled", shape: shapeCustomerAction},
	{name: "app_installed", shape: shapeCustomerAction, app: true},
	{name: "app_opened", shape: shapeCustomerAction, app: true},
	{name: "subscription_created", shape: shapePlanEnrollment},
	{name: "trial_started", shape: shapePlanEnrollment},
	{name: "custom", shape: shapeCustom},
}

// lookupEventType returns the table entry for name, or nil. Comparing
// string(name) does not allocate.
func lookupEventType(name []byte) *eventType {
	for i := range eventTypes {
		if string(name) == eventTypes[i].name {
			return &eventTypes[i]
		}
	}
	return nil
}

// lookupShape reports whether v is one of the four data shapes and returns
// its canonical string (so no per-event allocation is needed).
func lookupShape(v []byte) (string, bool) {
	switch string(v) {
	case shapeContents:
		return shapeContents, true
	case shapeCustomerAction:
		return shapeCustomerAction, true
	case shapePlanEnrollment:
		return shapePlanEnrollment, true
	case shapeCustom:
		return shapeCustom, true
	}
	return "", false
}

// lookupActionSource returns the canonical action_source string.
func lookupActionSource(v []byte) (string, bool) {
	switch string(v) {
	case "web":
		return "web", true
	case "mobile_app":
		return "mobile_app", true
	case "offline":
		return "offline", true
	case "physical_store":
		return "physical_store", true
	case "phone_call":
		return "phone_call", true
	case "email":
		return "email", true
	case "other":
		return "other", true
	}
	return "", false
}

// legacyEventFields are event-level names from older versions of the API
// (and the undocumented oppcref). They are rejected whatever
// Options.IgnoreUnknownFields says. The value is the advice given.
var legacyEventFields = map[string]string{
	"event_name":          `legacy field; use "type" (and "custom_event_name" for custom events)`,
	"event_id":            `legacy field; use "id"`,
	"event_time_epoch_ms": `legacy field; use "timestamp_ms"`,
	"event_source_url":    `legacy field; use "source_url"`,
	"event_data":          `legacy field; use "data"`,
	"oppcref":             `undocumented field; do not send it (the click reference is "oppref")`,
}

// legacyUserFields are the single-value user keys of older versions of the
// documentation; always rejected.
var legacyUserFields = map[string]string{
	"email_sha256":       `legacy single-value key; use "emails_sha256" (a list)`,
	"external_id_sha256": `legacy single-value key; use "external_ids_sha256" (a list)`,
	"country":            `legacy single-value key; use "countries" (a list)`,
	"city":               `legacy single-value key; use "cities" (a list)`,
	"zip_code":           `legacy single-value key; use "postal_codes" (a list)`,
	"oppcref":            `undocumented field; do not send it (the click reference is the event-level "oppref")`,
}

// iso4217 holds the ISO 4217 alphabetic codes: the active list (including
// fund, precious-metal and special codes such as XDR, XTS and XXX) plus codes
// withdrawn so recently (2023 and later) that data may still carry them
// (ANG, CUC, SLL, ZWL). HRK (withdrawn 2023-01) is not included.
var iso4217 = makeSet(`
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE
CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV
MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW
ZWG ZWL`)

// iso3166 holds the 249 officially assigned ISO 3166-1 alpha-2 codes
// (user-assigned codes such as XK and reserved ones such as UK or EU are not
// included).
var iso3166 = makeSet(`
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW`)

// codeSet is a set of short upper-case codes, looked up without allocating.
type codeSet map[string]struct{}

func makeSet(words string) codeSet {
	s := codeSet{}
	start := -1
	for i := 0; i <= len(words); i++ {
		if i < len(words) && words[i] > ' ' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			s[words[start:i]] = struct{}{}
			start = -1
		}
	}
	return s
}

func (s codeSet) has(code []byte) bool {
	_, ok := s[string(code)]
	return ok
}
