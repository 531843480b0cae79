package schemas

import (
	"context"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Schema ids the test registry serves.
const (
	idOrderV1 = 11
	idOrderV2 = 12
	idSignup  = 21
)

var created = time.Date(2026, 3, 19, 4, 0, 0, 0, time.UTC)

// orderV1 is the paid order of deploy/examples/web-shop/fixtures/orders.yaml
// as a v1 Avro record (hamba's encoding input). The second item's unit price
// is 15.00 here: decimal(12,2) cannot hold the fixture's 14.995.
func orderV1() map[string]any {
	return map[string]any{
		"order_id":     "ord_1001",
		"status":       "paid",
		"created_at":   created,
		"currency":     "USD",
		"total":        big.NewRat(12998, 100),
		"checkout_url": "https://shop.example.com/checkout/confirmation?session=abc123&utm_source=ads#top",
		"customer": map[string]any{
			"id": "cust_42", "email": " User@Example.com ", "phone": "+1 (415) 555-2671", "country": "US",
		},
		"items": []any{
			map[string]any{"sku": "sku_123", "title": "Starter bundle", "qty": 1, "unit_price": big.NewRat(9999, 100)},
			map[string]any{"sku": "sku_456", "title": "Refill pack", "qty": 2, "unit_price": big.NewRat(1500, 100)},
		},
		"attribution": map[string]any{"com.example.shop.Attribution": map[string]any{"oppref": "oppref_abc"}},
		"client":      map[string]any{"com.example.shop.Client": map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}},
	}
}

// wantOrderV1 is what Decode gives for orderV1.
func wantOrderV1() map[string]any {
	return map[string]any{
		"order_id":     "ord_1001",
		"status":       "paid",
		"created_at":   created,
		"currency":     "USD",
		"total":        "129.98",
		"checkout_url": "https://shop.example.com/checkout/confirmation?session=abc123&utm_source=ads#top",
		"customer": map[string]any{
			"id": "cust_42", "email": " User@Example.com ", "phone": "+1 (415) 555-2671", "country": "US",
		},
		"items": []any{
			map[string]any{"sku": "sku_123", "title": "Starter bundle", "qty": int64(1), "unit_price": "99.99"},
			map[string]any{"sku": "sku_456", "title": "Refill pack", "qty": int64(2), "unit_price": "15.00"},
		},
		"attribution": map[string]any{"oppref": "oppref_abc"},
		"client":      map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
	}
}

// orderV2 is a v2 order with no phone, country, attribution or client, and
// a coupon.
func orderV2() map[string]any {
	return map[string]any{
		"order_id":     "ord_2002",
		"status":       "paid",
		"created_at":   created.Add(time.Second),
		"currency":     "EUR",
		"total_cents":  int64(2500),
		"checkout_url": "https://shop.example.com/checkout",
		"customer":     map[string]any{"id": "cust_7", "email": "a@example.com", "phone": nil, "country": nil},
		"items": []any{
			map[string]any{"sku": "sku_9", "title": "Mug", "qty": 1, "unit_price_cents": int64(2500)},
		},
		"attribution": nil,
		"client":      nil,
		"coupon":      "SPRING",
	}
}

func wantOrderV2() map[string]any {
	return map[string]any{
		"order_id":     "ord_2002",
		"status":       "paid",
		"created_at":   created.Add(time.Second),
		"currency":     "EUR",
		"total_cents":  int64(2500),
		"checkout_url": "https://shop.example.com/checkout",
		"customer":     map[string]any{"id": "cust_7", "email": "a@example.com"},
		"items": []any{
			map[string]any{"sku": "sku_9", "title": "Mug", "qty": int64(1), "unit_price_cents": int64(2500)},
		},
		"coupon": "SPRING",
	}
}

func signup() map[string]any {
	return map[string]any{
		"user_id": int64(12345), "email": "Ada@Example.com", "first_name": "Ada", "last_name": nil,
		"country": "GB", "platform": "web", "landing_url": "https://app.example.com/signup?ref=newsletter",
		"signed_up_at": time.UnixMilli(1773892800250), "marketing_opt_in": true,
	}
}

func wantSignup() map[string]any {
	return map[string]any{
		"user_id": int64(12345), "email": "Ada@Example.com", "first_name": "Ada",
		"country": "GB", "platform": "web", "landing_url": "https://app.example.com/signup?ref=newsletter",
		"signed_up_at": time.UnixMilli(1773892800250).UTC(), "marketing_opt_in": true,
	}
}

// testRegistry is an srfake registry seeded with the example schemas that
// counts GET /schemas/ids/{id} requests per id.
type testRegistry struct {
	*srfake.Registry
	mu     sync.Mutex
	byID   map[string]int
	total  atomic.Int64
	delay  atomic.Int64 // nanoseconds to sleep in every request
	status atomic.Int64 // if not 0, answer every request with this status
}

func newTestRegistry(t testing.TB, opts ...srfake.Option) *testRegistry {
	t.Helper()
	reg := &testRegistry{Registry: srfake.New(opts...), byID: map[string]int{}}
	t.Cleanup(reg.Close)
	for _, s := range []struct {
		subject     string
		version, id int
		file        string
	}{
		{"shop.orders-value", 1, idOrderV1, OrderV1},
		{"shop.orders-value", 2, idOrderV2, OrderV2},
		{"accounts.signups-value", 1, idSignup, Signup},
	} {
		text, err := Embedded(s.file)
		if err != nil {
			t.Fatal(err)
		}
		reg.SeedSchema(s.subject, s.version, s.id, sr.Schema{Schema: text, Type: sr.TypeAvro})
	}
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		reg.total.Add(1)
		if id, ok := strings.CutPrefix(r.URL.Path, "/schemas/ids/"); ok {
			reg.mu.Lock()
			reg.byID[id]++
			reg.mu.Unlock()
		}
		if d := reg.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if st := reg.status.Load(); st != 0 {
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(int(st))
			if st == http.StatusNotFound {
				return true // a bare 404, as from a proxy: no registry error code
			}
			_, _ = w.Write([]byte(`{"error_code":` + itoa(int(st)) + `01,"message":"injected"}`))
			return true
		}
		return false
	})
	return reg
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func (r *testRegistry) requests(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *testRegistry) decoder(t testing.TB, opts ...Option) *Decoder {
	t.Helper()
	d, err := NewDecoder(RegistryConfig{URLs: []string{r.URL()}, Timeout: 5 * time.Second}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// encode encodes v with the embedded schema file under id.
func encode(t testing.TB, id int, file string, v any) []byte {
	t.Helper()
	s, err := ParseEmbedded(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(id, s.Avro, v)
	if err != nil {
		t.Fatalf("encode %s: %v", file, err)
	}
	return b
}

func mustParse(t testing.TB, text string) *Schema {
	t.Helper()
	s, err := ParseSchema(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var bg = context.Background()
