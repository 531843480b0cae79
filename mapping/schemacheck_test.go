package mapping

import (
	"errors"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/schemas"
)

// embeddedSchemas resolves a topic's schema: names as embedded schema files.
func embeddedSchemas(t testing.TB) func(AvroTopic) ([]SchemaVersion, error) {
	return func(a AvroTopic) ([]SchemaVersion, error) {
		if len(a.SchemaNames) == 0 {
			return nil, errors.New("no schema for subject " + a.Subject)
		}
		var out []SchemaVersion
		for _, n := range a.SchemaNames {
			s, err := schemas.ParseEmbedded(n)
			if err != nil {
				return nil, err
			}
			out = append(out, SchemaVersion{Schema: s.Avro, File: n})
		}
		return out, nil
	}
}

// checkAvro compiles src with the embedded schemas and returns every
// diagnostic, one per line.
func checkAvro(t *testing.T, src string) string {
	t.Helper()
	f, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(f, Options{Schemas: embeddedSchemas(t)})
	var ds config.Diagnostics
	switch {
	case err == nil:
		ds = m.Warnings()
	case !errors.As(err, &ds):
		t.Fatal(err)
	}
	return ds.Error()
}

// withSchemas returns avroOrderRules with a schema key and one expression
// replaced.
func withSchemas(schema, old, new string) string {
	src := strings.Replace(avroOrderRules, "format: avro\n", "format: avro\n    schema: "+schema+"\n", 1)
	if old != "" {
		if !strings.Contains(src, old) {
			panic("no " + old)
		}
		src = strings.Replace(src, old, new, 1)
	}
	return src
}

const bothVersions = "[order.v1.avsc, order.v2.avsc]"

func TestSchemaCheck(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // the diagnostics, in order ("" for none)
	}{
		{"one rule for both versions", withSchemas(bothVersions, "", ""), nil},
		{"v1 alone: the v2 branch never applies", withSchemas("order.v1.avsc", "", ""), []string{
			`test.yaml:23:89: warning: rule "order-created" field "data.amount": value.total_cents: no field "total_cents" in record com.example.shop.Order: it is read only when present, so that part of the expression never applies to records of these versions (schema order.v1.avsc)`,
			`test.yaml:33:100: warning: rule "order-created" field "data.contents.amount": item.unit_price_cents: no field "unit_price_cents" in record com.example.shop.Item: it is read only when present`}},
		{"unknown field", withSchemas(bothVersions, "id: value.order_id", "id: value.order_idd"),
			[]string{`test.yaml:11:20: rule "order-created" field "id": value.order_idd: no field "order_idd" in record com.example.shop.Order (did you mean "order_id"?) (schemas order.v1.avsc, order.v2.avsc)`}},
		{"unknown nested field", withSchemas(bothVersions, "email: value.customer.email", "email: value.customer.emial"),
			[]string{`test.yaml:16:34: rule "order-created" field "user.email": value.customer.emial: no field "emial" in record com.example.shop.Customer (did you mean "email"?) (schemas order.v1.avsc, order.v2.avsc)`}},
		{"unknown field behind ?.", withSchemas(bothVersions, "oppref: value.?attribution.oppref", "oppref: value.?attribution.opref"),
			[]string{`test.yaml:14:37: warning: rule "order-created" field "oppref": value.attribution.opref: no field "opref" in record com.example.shop.Attribution (did you mean "oppref"?): it is read only when present`}},
		{"unknown item field", withSchemas(bothVersions, "id: item.sku", "id: item.skuu"),
			[]string{`test.yaml:29:25: rule "order-created" field "data.contents.id": item.skuu: no field "skuu" in record com.example.shop.Item (did you mean "sku"?) (schemas order.v1.avsc, order.v2.avsc)`}},
		{"string amount", withSchemas("order.v1.avsc", "'has(value.total) ? money.minor(value.total, value.currency) : value.total_cents'", "value.total"),
			[]string{`test.yaml:23:21: rule "order-created" field "data.amount": must give an int of minor units, this expression gives string: convert major units with money.minor(x, currency) (schema order.v1.avsc)`,
				`test.yaml:33:100: warning: rule "order-created" field "data.contents.amount": item.unit_price_cents: no field`}},
		{"timestamp id", withSchemas(bothVersions, "id: value.order_id", "id: value.created_at"),
			[]string{`test.yaml:11:15: rule "order-created" field "id": must give a string (or an int, written in decimal), this expression gives google.protobuf.Timestamp (schemas order.v1.avsc, order.v2.avsc)`}},
		{"record for a string", withSchemas(bothVersions, "email: value.customer.email", "email: value.customer"),
			[]string{`field "user.email": must give a string or a list of strings, this expression gives com.example.shop.Customer`}},
		{"record as an amount", withSchemas(bothVersions, "money.minor(item.unit_price, value.currency)", "money.minor(item, value.currency)"),
			[]string{`field "data.contents.amount": money.minor: the amount must be an int, a double or a decimal string, this argument gives com.example.shop.Item`}},
		{"type error inside CEL", withSchemas(bothVersions, `when: value.status == "paid"`, `when: value.status == 1`),
			[]string{`test.yaml:7:28: rule "order-created" field "when": CEL: found no matching overload for '_==_' applied to '(string, int)' (schemas order.v1.avsc, order.v2.avsc)`}},
		{"field of one version unguarded", withSchemas(bothVersions, "'has(value.total) ? money.minor(value.total, value.currency) : value.total_cents'", "value.total_cents"),
			[]string{`test.yaml:23:26: warning: rule "order-created" field "data.amount": value.total_cents: field "total_cents" of record com.example.shop.Order is only in schema order.v2.avsc; records written with the other versions do not have it: read it with value.?total_cents or test has(value.total_cents) first (schema order.v1.avsc)`}},
		{"field of one version behind ?.", withSchemas(bothVersions, "oppref: value.?attribution.oppref", "oppref: value.?coupon"), nil},
		{"field of one version guarded by when", withSchemas(bothVersions, `when: value.status == "paid"`, `when: value.status == "paid" && has(value.coupon)`) + "", nil},
		{"no schema", strings.Replace(avroOrderRules, "format: avro\n", "format: avro\n    subject: s-value\n", 1),
			[]string{`test.yaml:4:14: field "subject": no schema for subject s-value`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkAvro(t, tt.src)
			if tt.want == nil {
				if got != "" {
					t.Errorf("want no diagnostics, got:\n%s", got)
				}
				return
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("diagnostics lack %q (in order):\n%s", w, got)
					return
				}
				rest = rest[i+len(w):]
			}
			if n := strings.Count(got, "\n") + 1; n != len(tt.want) {
				t.Errorf("want %d diagnostics, got %d:\n%s", len(tt.want), n, got)
			}
		})
	}
}
