package capi

// EventType is an event name, the `type` field of an event.
type EventType string

// The event names the API documents. attribution_appended (listed by one
// third-party connector with an undocumented data shape) is deliberately absent.
const (
	OrderCreated          EventType = "order_created"
	CheckoutStarted       EventType = "checkout_started"
	ItemsAdded            EventType = "items_added"
	ContentsViewed        EventType = "contents_viewed"
	PageViewed            EventType = "page_viewed"
	LeadCreated           EventType = "lead_created"
	RegistrationCompleted EventType = "registration_completed"
	AppointmentScheduled  EventType = "appointment_scheduled"
	AppInstalled          EventType = "app_installed"
	AppOpened             EventType = "app_opened"
	SubscriptionCreated   EventType = "subscription_created"
	TrialStarted          EventType = "trial_started"
	Custom                EventType = "custom"
)

// EventTypes lists every supported event name, in the order of the API's
// documentation.
var EventTypes = []EventType{
	OrderCreated, CheckoutStarted, ItemsAdded, ContentsViewed, PageViewed,
	LeadCreated, RegistrationCompleted, AppointmentScheduled, AppInstalled, AppOpened,
	SubscriptionCreated, TrialStarted, Custom,
}

// DataType is the `data.type` field: the shape of an event's data.
type DataType string

// The four data shapes.
const (
	DataContents       DataType = "contents"
	DataCustomerAction DataType = "customer_action"
	DataPlanEnrollment DataType = "plan_enrollment"
	DataCustom         DataType = "custom"
)

// DataTypeOf returns the data shape that event type t requires, and false for an
// unknown event type.
func DataTypeOf(t EventType) (DataType, bool) {
	switch t {
	case OrderCreated, CheckoutStarted, ItemsAdded, ContentsViewed, PageViewed:
		return DataContents, true
	case LeadCreated, RegistrationCompleted, AppointmentScheduled, AppInstalled, AppOpened:
		return DataCustomerAction, true
	case SubscriptionCreated, TrialStarted:
		return DataPlanEnrollment, true
	case Custom:
		return DataCustom, true
	}
	return "", false
}

// IsStandard reports whether t is one of the documented event names other than
// custom.
func (t EventType) IsStandard() bool {
	_, ok := DataTypeOf(t)
	return ok && t != Custom
}

// ActionSource is where the conversion happened.
type ActionSource string

// The documented action sources.
const (
	SourceWeb           ActionSource = "web"
	SourceMobileApp     ActionSource = "mobile_app"
	SourceOffline       ActionSource = "offline"
	SourcePhysicalStore ActionSource = "physical_store"
	SourcePhoneCall     ActionSource = "phone_call"
	SourceEmail         ActionSource = "email"
	SourceOther         ActionSource = "other"
)

// Valid reports whether s is a documented action source.
func (s ActionSource) Valid() bool {
	switch s {
	case SourceWeb, SourceMobileApp, SourceOffline, SourcePhysicalStore, SourcePhoneCall, SourceEmail, SourceOther:
		return true
	}
	return false
}

// OptInt64 is an optional integer: Valid false means the field is absent (and
// not sent), which differs from a present zero (a free trial has amount 0).
type OptInt64 struct {
	Value int64
	Valid bool
}

// Int64 returns a present OptInt64.
func Int64(v int64) OptInt64 { return OptInt64{Value: v, Valid: true} }

// IsZero reports whether the value is absent (for encoding/json's omitzero).
func (o OptInt64) IsZero() bool { return !o.Valid }

// MarshalJSON encodes the value as a JSON integer. Absent values are omitted by
// the omitzero tags of the structs that hold them.
func (o OptInt64) MarshalJSON() ([]byte, error) {
	return appendInt(nil, o.Value), nil
}

// UnmarshalJSON decodes a JSON integer; null leaves the value absent.
func (o *OptInt64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = OptInt64{}
		return nil
	}
	v, err := parseJSONInt(b)
	if err != nil {
		return err
	}
	*o = OptInt64{Value: v, Valid: true}
	return nil
}

// Request is the body of POST /v1/events.
type Request struct {
	// Events holds 1 to 1,000 events. One invalid event fails the whole request.
	Events []Event `json:"events"`
	// ValidateOnly asks the API to validate and save nothing.
	ValidateOnly bool `json:"validate_only,omitempty"`
	// IntegrationSource is the stable id of the sending integration.
	IntegrationSource string `json:"integration_source,omitempty"`
}

// Event is one conversion event, with exactly the documented fields.
//
// String fields are absent when empty. Identity fields in User must already be
// normalized and hashed (see Hasher); the relay never sends raw emails, phone
// numbers, external ids or names.
type Event struct {
	// ID is the deduplication key (with the pixel and the event name). It must
	// be deterministic: the same on retries and replays, and equal to the browser
	// pixel's event_id for the same conversion.
	ID string `json:"id"`
	// Type is the event name.
	Type EventType `json:"type"`
	// TimestampMS is when the conversion happened, in Unix milliseconds. The API
	// refuses events older than 7 days or more than 10 minutes ahead, measured
	// when it receives them.
	TimestampMS int64 `json:"timestamp_ms"`
	// CustomEventName is required when Type is custom, and forbidden otherwise.
	CustomEventName string `json:"custom_event_name,omitempty"`
	// ActionSource is required by the Validator on every event (its default is
	// undocumented); it must be mobile_app for app_installed and app_opened.
	ActionSource ActionSource `json:"action_source,omitempty"`
	// SourceURL is required when ActionSource is web: an absolute URL.
	SourceURL string `json:"source_url,omitempty"`
	// OppRef is the opaque click reference, passed unchanged.
	OppRef string `json:"oppref,omitempty"`
	// User holds the matching fields; the zero User is not sent.
	User User `json:"user,omitzero"`
	// OptOut opts the event out of user-level personalization.
	OptOut bool `json:"opt_out,omitempty"`
	// Data is the event's data; Data.Type must be DataTypeOf(Type).
	Data Data `json:"data"`
}

// User holds the matching fields of an event. Lists are used by the API up to
// their first three valid unique values.
type User struct {
	EmailsSHA256         []string `json:"emails_sha256,omitempty"`
	PhoneNumbersSHA256   []string `json:"phone_numbers_sha256,omitempty"`
	ExternalIDsSHA256    []string `json:"external_ids_sha256,omitempty"`
	FirstNamesSHA256     []string `json:"first_names_sha256,omitempty"`
	LastNamesSHA256      []string `json:"last_names_sha256,omitempty"`
	Regions              []string `json:"regions,omitempty"`
	Cities               []string `json:"cities,omitempty"`
	PostalCodes          []string `json:"postal_codes,omitempty"`
	Countries            []string `json:"countries,omitempty"`
	AndroidAdvertisingID string   `json:"android_advertising_id,omitempty"`
	OBRef                string   `json:"obref,omitempty"`
	IPAddress            string   `json:"ip_address,omitempty"`
	UserAgent            string   `json:"user_agent,omitempty"`
}

// IsZero reports whether no user field is set (the user object is then not
// sent).
func (u *User) IsZero() bool {
	return len(u.EmailsSHA256) == 0 && len(u.PhoneNumbersSHA256) == 0 &&
		len(u.ExternalIDsSHA256) == 0 && len(u.FirstNamesSHA256) == 0 &&
		len(u.LastNamesSHA256) == 0 && len(u.Regions) == 0 && len(u.Cities) == 0 &&
		len(u.PostalCodes) == 0 && len(u.Countries) == 0 &&
		u.AndroidAdvertisingID == "" && u.OBRef == "" && u.IPAddress == "" && u.UserAgent == ""
}

// Data is an event's data object. Which fields are allowed depends on Type:
//
//	contents:        amount, currency, contents
//	customer_action: amount, currency
//	plan_enrollment: plan_id, amount, currency, contents
//	custom:          plan_id, amount, currency, contents, and Properties
//
// Money is an integer in the ISO 4217 minor unit of Currency; Currency is
// required whenever Amount is set.
type Data struct {
	Type     DataType  `json:"type"`
	PlanID   string    `json:"plan_id,omitempty"`
	Amount   OptInt64  `json:"amount,omitzero"`
	Currency string    `json:"currency,omitempty"`
	Contents []Content `json:"contents,omitempty"`
	// Properties are the custom properties of a custom event, sent as further
	// members of the data object. Values may be string, bool, nil, any Go
	// integer or float type, json.Number, map[string]any and []any (nested the
	// same way). Keys must not collide with the named fields. Keys are encoded
	// in sorted order so the same event always encodes to the same bytes.
	Properties map[string]any `json:"-"`
}

// Content is one item of a data object's contents list.
type Content struct {
	ID          string   `json:"id,omitempty"`
	GroupID     string   `json:"group_id,omitempty"`
	Name        string   `json:"name,omitempty"`
	ContentType string   `json:"content_type,omitempty"`
	Quantity    OptInt64 `json:"quantity,omitzero"`
	// Amount is in minor units (prefer the unit price). It needs Currency
	// unless the event-level currency applies.
	Amount      OptInt64          `json:"amount,omitzero"`
	Currency    string            `json:"currency,omitempty"`
	VariantDict map[string]string `json:"variant_dict,omitempty"`
}
