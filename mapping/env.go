package mapping

import (
	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"

	"github.com/capirelay/capirelay/capi"
)

// Record variables every expression can use.
const (
	varValue     = "value"
	varKey       = "key"
	varHeaders   = "headers"
	varTopic     = "topic"
	varPartition = "partition"
	varOffset    = "offset"
	varTimestamp = "timestamp"
)

// helperNames are the functions capirelay adds to CEL.
var helperNames = []string{"money.minor", "time.rfc3339", "time.epoch_seconds", "time.epoch_millis", "time.epoch_micros", "url.origin_path", "sha256"}

func celErr(err error) ref.Val { return types.NewErrFromString(err.Error()) }

// argVal converts a helper argument; a missing key arrives as an error and is
// passed on so that the field becomes absent.
func argVal(v ref.Val) (val, ref.Val) {
	x, err := fromRef(v)
	if err != nil {
		return val{}, celErr(err)
	}
	return x, nil
}

// newEnv returns the CEL environment of record expressions.
func newEnv() (*cel.Env, error) { return newEnvFor(cel.DynType, nil) }

// newEnvFor returns the CEL environment of record expressions with value of
// type valueType (dyn at run time; an Avro record's object type when the
// rules are type-checked against a schema, see schemacheck.go), with the
// type provider p (nil: CEL's default).
func newEnvFor(valueType *cel.Type, p types.Provider) (*cel.Env, error) {
	var opts []cel.EnvOption
	if p != nil {
		opts = append(opts, cel.CustomTypeProvider(p)) // must come first
	}
	opts = append(opts,
		cel.Variable(varValue, valueType),
		cel.Variable(varKey, cel.StringType),
		cel.Variable(varHeaders, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(varTopic, cel.StringType),
		cel.Variable(varPartition, cel.IntType),
		cel.Variable(varOffset, cel.IntType),
		cel.Variable(varTimestamp, cel.TimestampType),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Encoders(),
		cel.Function("money.minor",
			cel.Overload("money_minor_dyn_dyn", []*cel.Type{cel.DynType, cel.DynType}, cel.IntType,
				cel.BinaryBinding(func(a, c ref.Val) ref.Val {
					amount, e := argVal(a)
					if e != nil {
						return e
					}
					cur, ok := c.(types.String)
					if !ok {
						if c.Type() == types.NullType {
							return types.NewErrFromString("no such key: currency is null")
						}
						return types.NewErrFromString("money.minor: currency must be a string, got " + c.Type().TypeName())
					}
					if amount.missing() {
						return types.NewErrFromString("no such key: amount is null")
					}
					n, err := moneyMinor(amount, string(cur))
					if err != nil {
						return celErr(err)
					}
					return types.Int(n)
				}))),
		cel.Function("time.rfc3339",
			cel.Overload("time_rfc3339_string", []*cel.Type{cel.StringType}, cel.TimestampType,
				cel.UnaryBinding(func(s ref.Val) ref.Val {
					t, err := parseRFC3339(string(s.(types.String)))
					if err != nil {
						return celErr(err)
					}
					return types.Timestamp{Time: t}
				})),
			// A timestamp (an Avro timestamp-millis field) is returned as
			// is, so that one rule reads a JSON string and an Avro
			// timestamp alike.
			cel.Overload("time_rfc3339_timestamp", []*cel.Type{cel.TimestampType}, cel.TimestampType,
				cel.UnaryBinding(func(t ref.Val) ref.Val { return t }))),
		epochFunc("time.epoch_seconds", 1),
		epochFunc("time.epoch_millis", 1e3),
		epochFunc("time.epoch_micros", 1e6),
		cel.Function("url.origin_path",
			cel.Overload("url_origin_path_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val {
					u, err := originPath(string(s.(types.String)))
					if err != nil {
						return celErr(err)
					}
					return types.String(u)
				}))),
		cel.Function("sha256",
			cel.Overload("sha256_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val {
					return types.String(capi.SHA256Hex(string(s.(types.String))))
				}))),
	)
	return cel.NewEnv(opts...)
}

func epochFunc(name string, perSecond int64) cel.EnvOption {
	return cel.Function(name,
		cel.Overload(name+"_dyn", []*cel.Type{cel.DynType}, cel.TimestampType,
			cel.UnaryBinding(func(x ref.Val) ref.Val {
				v, e := argVal(x)
				if e != nil {
					return e
				}
				if v.missing() {
					return types.NewErrFromString("no such key: " + name + " argument is null")
				}
				if ts, ok := x.(types.Timestamp); ok {
					return ts // already a timestamp (Avro): returned as is
				}
				t, err := epochTime(name, v, perSecond)
				if err != nil {
					return celErr(err)
				}
				return types.Timestamp{Time: t}
			})))
}

// nativeHelper evaluates helper fn over already evaluated arguments; ok false
// means fn has no native implementation. An absent argument makes the result
// absent, as a missing key does in CEL.
func nativeHelper(fn string) (func(a0, a1 val) (val, error), int, bool) {
	switch fn {
	case "money.minor":
		return func(a0, a1 val) (val, error) {
			if a0.missing() || a1.missing() {
				return val{}, nil
			}
			if a1.k != kString {
				return val{}, errorString("money.minor: currency must be a string, got " + a1.typeName())
			}
			n, err := moneyMinor(a0, a1.s)
			return val{k: kInt, n: n}, err
		}, 2, true
	case "time.rfc3339":
		return func(a0, a1 val) (val, error) {
			switch a0.k {
			case kAbsent, kNull:
				return val{}, nil
			case kString:
				t, err := parseRFC3339(a0.s)
				return val{k: kTime, n: t.UnixMilli()}, err
			case kTime:
				return a0, nil
			}
			return val{}, errorString("time.rfc3339: want a string (or a timestamp), got " + a0.typeName())
		}, 1, true
	case "time.epoch_seconds", "time.epoch_millis", "time.epoch_micros":
		per := map[string]int64{"time.epoch_seconds": 1, "time.epoch_millis": 1e3, "time.epoch_micros": 1e6}[fn]
		return func(a0, a1 val) (val, error) {
			if a0.missing() {
				return val{}, nil
			}
			if a0.k == kTime {
				return a0, nil // already a timestamp (Avro): returned as is
			}
			t, err := epochTime(fn, a0, per)
			return val{k: kTime, n: t.UnixMilli()}, err
		}, 1, true
	case "url.origin_path":
		return func(a0, a1 val) (val, error) {
			switch a0.k {
			case kAbsent, kNull:
				return val{}, nil
			case kString:
				u, err := originPath(a0.s)
				if u == "" {
					return val{}, err
				}
				return val{k: kString, s: u}, err
			}
			return val{}, errorString("url.origin_path: want a string, got " + a0.typeName())
		}, 1, true
	case "sha256":
		return func(a0, a1 val) (val, error) {
			switch a0.k {
			case kAbsent, kNull:
				return val{}, nil
			case kString:
				return val{k: kString, s: capi.SHA256Hex(a0.s)}, nil
			}
			return val{}, errorString("sha256: want a string, got " + a0.typeName())
		}, 1, true
	}
	return nil, 0, false
}

type errorString string

func (e errorString) Error() string { return string(e) }
