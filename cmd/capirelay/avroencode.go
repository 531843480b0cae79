package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/capirelay/capirelay/schemas"
)

// encodeAvro encodes a natural value tree (as JSON would carry it: RFC 3339
// timestamps, decimal strings) with schema s in the Confluent wire format
// under schema id. The demo and the tests produce Avro records with it.
func encodeAvro(s *schemas.Schema, id int, natural any) ([]byte, error) {
	b, err := json.Marshal(natural)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	native, err := avroNative(s.Avro, tree, "value")
	if err != nil {
		return nil, err
	}
	return schemas.Encode(id, s.Avro, native)
}

// orderV2 turns a demo order (money as decimal strings, schema v1's shape)
// into schema v2's shape: money as long cents, and an optional coupon.
func orderV2(o map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(o)+1)
	for k, v := range o {
		out[k] = v
	}
	cents := func(s any) (int64, error) {
		str, _ := s.(string)
		whole, frac, _ := strings.Cut(str, ".")
		frac = (frac + "00")[:2]
		return strconv.ParseInt(whole+frac, 10, 64)
	}
	total, err := cents(o["total"])
	if err != nil {
		return nil, fmt.Errorf("order total: %w", err)
	}
	delete(out, "total")
	out["total_cents"] = total
	var items []map[string]any
	for _, it := range o["items"].([]map[string]any) {
		c := make(map[string]any, len(it))
		for k, v := range it {
			c[k] = v
		}
		p, err := cents(it["unit_price"])
		if err != nil {
			return nil, fmt.Errorf("item price: %w", err)
		}
		delete(c, "unit_price")
		c["unit_price_cents"] = p
		items = append(items, c)
	}
	out["items"] = items
	out["coupon"] = "WELCOME10"
	return out, nil
}
