package schemas

import (
	"slices"
	"strings"
)

// FieldSet names the fields DecodeFields builds; every other field is skipped
// over in the payload without building its value, which is where most of the
// decoding time goes. Build one per topic (from the paths its rules read),
// once, and reuse it: a Decoder compiles and caches one program per schema id
// and FieldSet key.
//
// A path is a dot-separated list of field names from the top-level record:
//
//   - "order_id" keeps one top-level field;
//   - "customer.email" keeps the email of the customer record (and the
//     customer map itself, holding only the requested fields);
//   - "customer" keeps the whole customer subtree;
//   - a path goes through arrays and unions transparently: "items.sku" keeps
//     the sku of every item, "attribution.oppref" the oppref of the
//     attribution record when the union holds one;
//   - a map is kept whole ("attrs" and "attrs.x" both keep all of it): map
//     keys are data, not schema;
//   - a name the schema does not have is ignored (the key is then absent, as
//     it would be with Decode): checking rules against schemas is the job of
//     `capirelay check`.
//
// The zero FieldSet (and a nil *FieldSet) keeps every field: DecodeFields
// then returns what Decode returns. The output of DecodeFields is exactly the
// output of Decode with the unrequested keys removed.
type FieldSet struct {
	root *fieldNode
	key  string
}

type fieldNode struct {
	all      bool
	children map[string]*fieldNode
}

// NewFieldSet returns the FieldSet of paths. Empty paths are ignored; with no
// path at all the set keeps nothing but the (empty) top-level map.
func NewFieldSet(paths ...string) *FieldSet {
	root := &fieldNode{children: map[string]*fieldNode{}}
	var norm []string
	for _, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		norm = append(norm, p)
		n := root
		for name := range strings.SplitSeq(p, ".") {
			if n.all {
				break
			}
			c := n.children[name]
			if c == nil {
				c = &fieldNode{children: map[string]*fieldNode{}}
				n.children[name] = c
			}
			n = c
		}
		n.all, n.children = true, nil // a prefix keeps its whole subtree
	}
	slices.Sort(norm)
	norm = slices.Compact(norm)
	return &FieldSet{root: root, key: "\x00" + strings.Join(norm, "\x00")}
}

// Key identifies the set: two FieldSets with the same paths have the same
// Key.
func (f *FieldSet) Key() string {
	if f == nil || f.root == nil {
		return ""
	}
	return f.key
}

// Paths returns the set's paths, sorted (nil for the keep-all set).
func (f *FieldSet) Paths() []string {
	if f == nil || f.root == nil || f.key == "\x00" {
		return nil
	}
	return strings.Split(f.key[1:], "\x00")
}

func (f *FieldSet) tree() *fieldNode {
	if f == nil {
		return nil
	}
	return f.root
}
