package mapping

import (
	"strings"
	"testing"
)

const validEvent = `type: order_created
id: value.id
timestamp: time.rfc3339(value.at)
action_source: web
source_url: url.origin_path(value.url)
`

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the diagnostics, in order
	}{
		{"unknown key in event", oneRule(validEvent + "colour: red\n"),
			[]string{`test.yaml:11:11: rule "r" field "event.colour": unknown key "colour"`}},
		{"legacy key with hint", oneRule(validEvent + "event_name: x\n"),
			[]string{`unknown key "event_name"`, `the legacy name of type`}},
		{"unknown key in topic", "topics:\n  - topic: t\n    formt: json\n    rules: []\n",
			[]string{`test.yaml:3:5: field "formt": unknown key "formt"`, `needs a non-empty`}},
		{"constant where CEL expected", oneRule(validEvent + "data:\n  amount: 5\n  currency: USD\n"),
			[]string{`test.yaml:13:23: rule "r" field "data.currency": CEL: undeclared reference to 'USD'`, `quote it for CEL: '"USD"'`}},
		{"contents on customer_action", oneRule(strings.Replace(validEvent, "order_created", "lead_created", 1) + "data:\n  contents: [{id: value.sku}]\n"),
			[]string{`field "data.contents": contents is not allowed for lead_created`}},
		{"plan_id on contents", oneRule(validEvent + "data:\n  plan_id: value.plan\n"),
			[]string{`field "data.plan_id": plan_id is not allowed for order_created`}},
		{"properties on standard event", oneRule(validEvent + "data:\n  properties: {x: value.x}\n"),
			[]string{`field "data.properties": custom properties are allowed only for type custom`}},
		{"custom without name", oneRule(strings.Replace(validEvent, "order_created", "custom", 1)),
			[]string{`field "custom_event_name": required when type is custom`}},
		{"custom name invalid", oneRule(strings.Replace(validEvent, "order_created", "custom", 1) + "custom_event_name: Order_Created\n"),
			[]string{`field "custom_event_name": must be lowercase`}},
		{"custom name is standard", oneRule(strings.Replace(validEvent, "order_created", "custom", 1) + "custom_event_name: order_created\n"),
			[]string{`must not be a standard event name`}},
		{"custom name on standard event", oneRule(validEvent + "custom_event_name: foo\n"),
			[]string{`field "custom_event_name": allowed only when type is custom`}},
		{"app event needs mobile_app", oneRule(strings.Replace(validEvent, "order_created", "app_installed", 1)),
			[]string{`field "action_source": must be mobile_app for app_installed`}},
		{"web needs source_url", oneRule(strings.Replace(validEvent, "source_url: url.origin_path(value.url)\n", "", 1)),
			[]string{`field "source_url": required when action_source is web`}},
		{"amount without currency", oneRule(validEvent + "data:\n  amount: value.total\n"),
			[]string{`field "data.amount": amount needs currency`}},
		{"amount is a string", oneRule(validEvent + "data:\n  amount: value.total + \"\"\n  currency: value.cur\n"),
			[]string{`field "data.amount": must give an int of minor units, this expression gives string: convert major units with money.minor(x, currency)`}},
		{"timestamp string", oneRule(strings.Replace(validEvent, "time.rfc3339(value.at)", "value.at + \"\"", 1)),
			[]string{`field "timestamp": must give a timestamp or an int of Unix milliseconds, this expression gives a string`}},
		{"no timestamp", oneRule(strings.Replace(validEvent, "timestamp: time.rfc3339(value.at)\n", "", 1)),
			[]string{`field "timestamp": required: an expression (e.g. time.rfc3339(value.created_at)), or ` + "`timestamp: record`"}},
		{"no id", oneRule(strings.Replace(validEvent, "id: value.id\n", "", 1)),
			[]string{`field "id": required`}},
		{"no action_source", oneRule(strings.Replace(validEvent, "action_source: web\n", "", 1)),
			[]string{`field "action_source": required`}},
		{"bad action_source", oneRule(strings.Replace(validEvent, "action_source: web", "action_source: website", 1)),
			[]string{`unknown action source "website"`}},
		{"unknown type", oneRule(strings.Replace(validEvent, "order_created", "attribution_appended", 1)),
			[]string{`field "type": unknown event type "attribution_appended"`}},
		{"data.type written", oneRule(validEvent + "data:\n  type: contents\n"),
			[]string{`field "data.type": data.type is derived from the event type`}},
		{"syntax error", oneRule(strings.Replace(validEvent, "value.id", "value.id +", 1)),
			[]string{`test.yaml:7:`, `field "id": CEL: Syntax error`}},
		{"when not bool", "topics:\n  - topic: t\n    rules:\n      - name: r\n        when: value.s + \"x\"\n        event:\n" + indentLines(validEvent, "          "),
			[]string{`test.yaml:5:15: rule "r" field "when": must give a bool, this expression gives string`}},
		{"schema on a json topic", "topics:\n  - topic: t\n    schema: a.avsc\n    rules:\n      - name: r\n        event:\n" + indentLines(validEvent, "          "),
			[]string{`test.yaml:3:5: field "schema": schema is allowed only for ` + "`format: avro`"}},
		{"bad schema list", "topics:\n  - topic: t\n    format: avro\n    schema: {a: b}\n    rules:\n      - name: r\n        event:\n" + indentLines(validEvent, "          "),
			[]string{`test.yaml:4:13: field "schema": must be a .avsc file name, or a list of them`}},
		{"unknown format", "topics:\n  - topic: t\n    format: xml\n    rules:\n      - name: r\n        event:\n" + indentLines(validEvent, "          "),
			[]string{`unknown format "xml"`}},
		{"duplicate rule and topic", "topics:\n  - topic: t\n    rules:\n      - name: r\n        event:\n" + indentLines(validEvent, "          ") +
			"  - topic: t\n    rules:\n      - name: r\n        event:\n" + indentLines(validEvent, "          "),
			[]string{`test.yaml:11:5: topic "t" is configured twice`, `test.yaml:13:15: rule "r" field "name": rule name "r" is used twice`}},
		{"item amount without any currency", oneRule(validEvent + "data:\n  contents: {each: value.items, fields: {amount: item.cents}}\n"),
			[]string{`field "data.contents.amount": an item amount needs a currency`}},
		{"bad prehashed policy", "topics:\n  - topic: t\n    identity: {prehashed: {email: maybe}}\n    rules:\n      - name: r\n        event:\n" + indentLines(validEvent, "          "),
			[]string{`field "identity.prehashed.email": unknown policy "maybe"`}},
		{"no topics", "kafka: {}\n", []string{`test.yaml:1:1: no topics`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := compileErrors(t, tt.src)
			all := ds.Error()
			pos := 0
			for _, w := range tt.want {
				i := strings.Index(all[pos:], w)
				if i < 0 {
					t.Fatalf("diagnostics do not contain %q (in order):\n%s", w, all)
				}
				pos += i + len(w)
			}
		})
	}
}

func TestCompileReportsAllErrorsSorted(t *testing.T) {
	src := oneRule("type: order_created\nid: value.id\ntimestamp: value.at + \"\"\naction_source: phone\ncolour: red\n")
	ds := compileErrors(t, src)
	if len(ds) != 3 {
		t.Fatalf("want 3 diagnostics, got %d:\n%v", len(ds), ds)
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].Line < ds[i-1].Line {
			t.Errorf("diagnostics not sorted:\n%v", ds)
		}
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		id   string
		want string
	}{
		{`'"fixed"'`, "does not depend on the record"},
		{`string(offset)`, "built only from topic/partition/offset"},
		{`topic + string(partition) + string(offset)`, "built only from topic/partition/offset"},
		{`value.id`, ""},
		{`key`, ""},
	}
	for _, tt := range tests {
		m := compileYAML(t, oneRule(strings.Replace(validEvent, "id: value.id", "id: "+tt.id, 1)))
		ws := m.Warnings()
		switch {
		case tt.want == "" && len(ws) > 0:
			t.Errorf("id %s: unexpected warnings %v", tt.id, ws)
		case tt.want != "" && (len(ws) != 1 || !strings.Contains(ws[0].String(), tt.want) || !ws[0].Warning):
			t.Errorf("id %s: warnings %v, want one containing %q", tt.id, ws, tt.want)
		case tt.want != "" && !strings.HasPrefix(ws[0].String(), `test.yaml:7:15: warning: rule "r" field "id": `):
			t.Errorf("warning format: %s", ws[0])
		}
	}
}

func TestNeedTree(t *testing.T) {
	m := webShopMapper(t)
	n := m.topics["shop.orders"].need
	if n == nil || n.all {
		t.Fatal("web-shop rules should read only some keys")
	}
	for _, k := range []string{"order_id", "status", "customer", "items", "attribution"} {
		if n.keys[k] == nil {
			t.Errorf("need lacks %q", k)
		}
	}
	if n.keys["notes"] != nil || n.keys["shipping"] != nil {
		t.Error("need has keys no rule reads")
	}
	items := n.keys["items"]
	if items.all || items.keys["sku"] == nil || items.keys["weight_g"] != nil {
		t.Errorf("items need = %+v, want only the item keys the fields read", items)
	}
	// A rule that uses a whole value decodes everything.
	m = compileYAML(t, oneRule(strings.Replace(validEvent, "value.id", "string(value)", 1)))
	if m.topics["t"].need != nil {
		t.Error("a rule reading the whole value should turn pruning off")
	}
}
