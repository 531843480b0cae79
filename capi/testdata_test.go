package capi

import "time"

// testNow is the fixed clock of the tests: 2026-03-19T04:00:00Z.
var testNow = time.UnixMilli(1773892800000)

func fixedClock() time.Time { return testNow }

// orderEvent returns the typical event of the benchmarks and tests: a web shop
// order with two items and a user with hashed email and phone.
func orderEvent() Event {
	return Event{
		ID:           "order_12345",
		Type:         OrderCreated,
		TimestampMS:  testNow.Add(-time.Hour).UnixMilli(),
		ActionSource: SourceWeb,
		SourceURL:    "https://shop.example.com/checkout/confirmation",
		OppRef:       "oppref_abc",
		User: User{
			EmailsSHA256:       []string{"b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"},
			PhoneNumbersSHA256: []string{"758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0"},
			Countries:          []string{"US"},
			IPAddress:          "203.0.113.7",
			UserAgent:          "Mozilla/5.0 (X11; Linux x86_64)",
		},
		Data: Data{
			Type:     DataContents,
			Amount:   Int64(2599),
			Currency: "USD",
			Contents: []Content{
				{ID: "sku_123", Name: "Starter bundle", ContentType: "product", Quantity: Int64(1), Amount: Int64(1999)},
				{ID: "sku_456", Name: "Gift wrap \"deluxe\"", ContentType: "product", Quantity: Int64(2), Amount: Int64(300)},
			},
		},
	}
}
