package mapping

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/capirelay/capirelay/capi"
)

var sampleValue = map[string]any{
	"s":     "paid",
	"n":     int64(3),
	"f":     float64(3),
	"price": "19.99",
	"cur":   "USD",
	"nil":   nil,
	"t":     true,
	"url":   "https://x.example/p?q=1",
	"at":    "2026-03-19T04:00:00Z",
	"secs":  int64(1773892800),
	"ts":    testTime.Add(123456 * time.Microsecond), // an Avro timestamp
	"bin":   []byte("ab"),                            // Avro bytes
	"obj":   map[string]any{"a": "b", "n": nil, "deep": map[string]any{"k": "v"}},
	"list":  []any{"x", "y"},
	"items": []any{map[string]any{"sku": "a"}, map[string]any{"sku": "b"}},
}

// evalBoth evaluates src natively (when it has a native form) and with CEL,
// and checks that both agree.
func evalBoth(t *testing.T, src string) (val, error, bool) {
	t.Helper()
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	a, iss := env.Compile(src)
	if iss.Err() != nil {
		t.Fatalf("%s: %v", src, iss.Err())
	}
	prg, err := env.Program(a, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{Topic: "t", Partition: 2, Offset: 7, Key: []byte("k1"), Timestamp: testTime,
		Headers: []Header{{"h", []byte("1")}, {"h", []byte("2")}}}
	c := &ectx{}
	c.reset(rec, sampleValue)
	cv, cerr := (&celNode{prg}).eval(c)
	n := nativeNode(a.NativeRep().Expr(), "")
	if n == nil {
		return cv, cerr, false
	}
	nv, nerr := n.eval(c)
	if (cerr == nil) != (nerr == nil) || cerr == nil && !reflect.DeepEqual(cv, nv) {
		t.Errorf("%s: CEL gives %+v, %v; native gives %+v, %v", src, cv, cerr, nv, nerr)
	}
	// The plain native nodes (no specialized helpers) and the nodes with
	// their paths interned and cached (evaluated twice: the second time
	// from the cache) agree too.
	noFastPaths = true
	plain := nativeNode(a.NativeRep().Expr(), "")
	noFastPaths = false
	var pt pathTable
	cached := nativeNode(a.NativeRep().Expr(), "")
	pt.add(cached)
	c.useSlots(pt.finish())
	for name, n := range map[string]node{"plain": plain, "cached": cached, "cached again": cached} {
		v, err := n.eval(c)
		if (err == nil) != (nerr == nil) || err != nil && err.Error() != nerr.Error() || !reflect.DeepEqual(v, nv) {
			t.Errorf("%s: %s native gives %+v, %v; native gives %+v, %v", src, name, v, err, nv, nerr)
		}
	}
	return nv, nerr, true
}

func TestExpressionsNativeAndCELAgree(t *testing.T) {
	tests := []struct {
		src    string
		want   val
		err    string
		native bool
	}{
		{src: `value.s`, want: val{k: kString, s: "paid"}, native: true},
		{src: `value.n`, want: val{k: kInt, n: 3}, native: true},
		{src: `value.obj.deep.k`, want: val{k: kString, s: "v"}, native: true},
		{src: `value["obj"].a`, want: val{k: kString, s: "b"}, native: true},
		{src: `value.list[1]`, want: val{k: kString, s: "y"}, native: true},
		{src: `value.missing`, want: val{}, native: true},
		{src: `value.obj.missing.x`, want: val{}, native: true},
		{src: `value.nil`, want: val{k: kNull}, native: true},
		{src: `value.obj.n.x`, want: val{}, native: true},
		{src: `value.?obj.missing`, want: val{}, native: true},
		{src: `value.?missing.x`, want: val{}, native: true},
		{src: `value.?obj.a`, want: val{k: kString, s: "b"}, native: true},
		{src: `value.s == "paid"`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.s != "paid"`, want: val{k: kBool}, native: true},
		{src: `value.n == 3.0`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.f == 3`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.s == 3`, want: val{k: kBool}, native: true},
		{src: `value.nil == null`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.s == "paid" && value.t == true`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.s == "x" && value.missing == 1`, want: val{k: kBool}, native: true},
		{src: `value.missing == 1 || value.s == "paid"`, want: val{k: kBool, n: 1}, native: true},
		{src: `!(value.s == "x")`, want: val{k: kBool, n: 1}, native: true},
		{src: `has(value.obj.a)`, want: val{k: kBool, n: 1}, native: true},
		{src: `has(value.obj.zz)`, want: val{k: kBool}, native: true},
		{src: `key`, want: val{k: kString, s: "k1"}, native: true},
		{src: `topic`, want: val{k: kString, s: "t"}, native: true},
		{src: `partition`, want: val{k: kInt, n: 2}, native: true},
		{src: `offset`, want: val{k: kInt, n: 7}, native: true},
		{src: `timestamp`, want: val{k: kTime, n: testTime.UnixMilli()}, native: true},
		{src: `money.minor(value.price, value.cur)`, want: val{k: kInt, n: 1999}, native: true},
		{src: `money.minor(value.n, "JPY")`, want: val{k: kInt, n: 3}, native: true},
		{src: `money.minor(value.missing, value.cur)`, want: val{}, native: true},
		{src: `money.minor(value.price, "XYZ")`, err: "unknown currency", native: true},
		{src: `url.origin_path(value.url)`, want: val{k: kString, s: "https://x.example/p"}, native: true},
		{src: `url.origin_path("/relative")`, err: "not an absolute URL", native: true},
		{src: `time.rfc3339(value.at)`, want: val{k: kTime, n: testTime.UnixMilli()}, native: true},
		{src: `time.rfc3339(value.s)`, err: "not an RFC 3339 timestamp", native: true},
		{src: `time.epoch_seconds(value.secs)`, want: val{k: kTime, n: testTime.UnixMilli()}, native: true},
		{src: `time.epoch_millis(value.missing)`, want: val{}, native: true},
		{src: `sha256(value.s)`, want: val{k: kString, s: capi.SHA256Hex("paid")}, native: true},
		// The specialized helper nodes' fallbacks.
		{src: `money.minor(value.price, "JPY")`, want: val{k: kInt, n: 20}, native: true},
		{src: `money.minor(value.n, value.cur)`, want: val{k: kInt, n: 300}, native: true},
		{src: `money.minor(value.f, value.cur)`, want: val{k: kInt, n: 300}, native: true},
		{src: `money.minor(value.price, value.nil)`, want: val{}, native: true},
		{src: `money.minor(value.nil, value.cur)`, want: val{}, native: true},
		{src: `money.minor(value.price, value.n)`, err: "currency must be a string", native: true},
		{src: `money.minor(value.s, value.cur)`, err: "not a decimal number", native: true},
		{src: `money.minor(value.obj, value.cur)`, err: "amount must be", native: true},
		{src: `money.minor(value.obj.a, value.obj.deep.k)`, err: "unknown currency", native: true},
		{src: `money.minor(value.price, value.obj.missing)`, want: val{}, native: true},
		{src: `url.origin_path(value.n)`, err: "want a string", native: true},
		{src: `url.origin_path(value.missing)`, want: val{}, native: true},
		{src: `url.origin_path(value.s)`, err: "not an absolute URL", native: true},
		{src: `time.rfc3339(value.ts)`, want: val{k: kTime, n: testTime.UnixMilli() + 123}, native: true},
		{src: `time.rfc3339(value.n)`, err: "want a string", native: true},
		{src: `value.items[1].sku == "b" && value.items[0].sku == "a"`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.items[2].sku`, want: val{}, native: true},
		{src: `has(value.obj.deep.k) && value.obj.deep.k == "v" && value["obj"].deep.k == "v"`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.obj.n == null && value.obj.a == "b"`, want: val{k: kBool, n: 1}, native: true},
		{src: `value.s.x == 1 || value.s == "paid"`, want: val{k: kBool, n: 1}, native: true},
		// CEL only
		{src: `headers["h"]`, want: val{k: kString, s: "2"}}, // last value wins
		{src: `headers["nope"]`, want: val{}},
		{src: `"ord-" + value.s`, want: val{k: kString, s: "ord-paid"}},
		{src: `value.?obj.missing.orValue("d")`, want: val{k: kString, s: "d"}},
		{src: `size(value.items)`, want: val{k: kInt, n: 2}},
		{src: `value.items.map(i, i.sku)`, want: val{k: kOther, a: []any{"a", "b"}}},
		{src: `value.s.upperAscii()`, want: val{k: kString, s: "PAID"}},
		{src: `money.minor("1.005", value.cur) + 1`, want: val{k: kInt, n: 102}},
		{src: `value.n / 0`, err: "division by zero"},
	}
	for _, tt := range tests {
		got, err, native := evalBoth(t, tt.src)
		if native != tt.native {
			t.Errorf("%s: native = %v, want %v", tt.src, native, tt.native)
		}
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error = %v, want containing %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %+v, %v; want %+v", tt.src, got, err, tt.want)
		}
	}
}
