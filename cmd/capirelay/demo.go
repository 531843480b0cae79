package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.yaml.in/yaml/v3"

	"github.com/capirelay/capirelay/consumer"
	"github.com/capirelay/capirelay/deploy/examples"
	"github.com/capirelay/capirelay/internal/capisim"
	"github.com/capirelay/capirelay/schemas"
)

func init() {
	commands = append(commands, command{"demo", "run the whole pipeline on an embedded Kafka, registry and API simulator", runDemo})
}

const (
	demoOrders   = "shop.orders"
	demoSignups  = "accounts.signups"
	demoAvro     = "shop.orders.avro"
	demoDLQ      = "capirelay.dlq"
	demoPixel    = "px_demo"
	demoKeyEnv   = "CAPIRELAY_DEMO_API_KEY"
	demoMaxItems = 50 // the simulator's stand-in for an undocumented API limit
)

// demoReport is the demo's summary; --report writes it as JSON.
type demoReport struct {
	Records        int64            `json:"records"`
	RecordsByTopic map[string]int64 `json:"records_by_topic"`
	EventsExpected int64            `json:"events_expected"`
	EventsAccepted int64            `json:"events_accepted"`
	Filtered       int64            `json:"filtered"`
	DeadLettered   int64            `json:"dead_lettered"`
	DeadByClass    map[string]int64 `json:"dead_lettered_by_class"`
	Duplicates     int64            `json:"duplicates"`
	Lost           int64            `json:"lost"`
	LostDetail     []string         `json:"lost_detail,omitempty"`
	APIRequests    map[string]int64 `json:"api_requests_by_status"`
	Seconds        float64          `json:"seconds"`
	EventsPerSec   float64          `json:"events_per_second"`
}

// expectation is what the demo knows about a record it produced.
type expectation struct {
	events []string // "type/id" of the events it must produce
	class  string   // dead-letter class it must get ("" for a good record)
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	orders := fs.Int("orders", 50000, "orders to produce")
	signups := fs.Int("signups", 10000, "signups to produce")
	avroOrders := fs.Int("avro-orders", 10000, "Avro orders to produce (schema versions 1 and 2, through the in-process Schema Registry)")
	report := fs.String("report", "", "write the summary as JSON to this file")
	latency := fs.Duration("latency", 0, "simulated API latency per request")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up if the backlog is not settled by then")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: capirelay demo [flags]

Runs the real pipeline on an embedded default: an in-process Kafka (kfake), an
in-process Schema Registry (srfake), an in-process Conversions API simulator,
the example rules of deploy/examples (web-shop, signups and avro-orders),
realistic orders, signups and Avro orders (two schema versions interleaved)
with a few bad records
among them, live progress, and a summary that reconciles what was produced
with what the simulator accepted and what was dead-lettered ("lost: 0").

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demo(*orders, *signups, *avroOrders, *latency, *timeout, *report, stdout); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

func demo(nOrders, nSignups, nAvro int, latency, timeout time.Duration, reportPath string, out io.Writer) error {
	ctx := context.Background()
	// 1. In-process Kafka.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(6, demoOrders), kfake.SeedTopics(3, demoSignups), kfake.SeedTopics(3, demoAvro), kfake.SeedTopics(1, demoDLQ))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	// 2. In-process API simulator on a loopback port, with a fresh key.
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	key := "sk-demo-" + hex.EncodeToString(keyBytes)
	sim, err := capisim.New(capisim.Options{APIKey: key, Pixels: []string{demoPixel}, Latency: latency, MaxContents: demoMaxItems})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	defer sim.Close()

	// 3. The config: the example rules plus sections pointing at the above.
	dir, err := os.MkdirTemp("", "capirelay-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "config.yaml")
	// 3b. In-process Schema Registry with both versions of the Avro order.
	reg := srfake.New()
	defer reg.Close()
	avro, err := registerDemoSchemas(reg, demoAvro+"-value")
	if err != nil {
		return err
	}
	if err := writeDemoConfig(cfgPath, brokers, "http://"+ln.Addr().String(), reg.URL()); err != nil {
		return err
	}
	os.Setenv(demoKeyEnv, key)
	s, err := loadSetup(cfgPath, nil)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	// 4. Produce the records.
	fmt.Fprintf(out, "capirelay demo: in-process Kafka %s, API simulator %s\n", brokers[0], ln.Addr())
	fmt.Fprintf(out, "producing %d orders to %s, %d signups to %s and %d Avro orders (schema v1 and v2) to %s, with a few bad records...\n",
		nOrders, demoOrders, nSignups, demoSignups, nAvro, demoAvro)
	expect, byTopic, err := produceDemo(ctx, brokers, nOrders, nSignups, nAvro, avro)
	if err != nil {
		return err
	}
	total := int64(len(expect))

	// 5. Run the real pipeline.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	relay, _, err := s.newRelay(logger, nil)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- relay.Run(runCtx, nil) }()
	tty := isTerminal(out)
	deadline := time.After(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	lastLog := time.Now()
wait:
	for {
		select {
		case <-deadline:
			stop()
			<-done
			return fmt.Errorf("backlog not settled within %v (progress %+v)", timeout, relay.Progress())
		case err := <-done:
			stop()
			return fmt.Errorf("relay stopped early: %v", err)
		case <-tick.C:
			p := relay.Progress()
			line := progressLine(p, total, time.Since(start))
			if tty {
				fmt.Fprintf(out, "\r%s\x1b[K", line)
			} else if time.Since(lastLog) >= 2*time.Second {
				fmt.Fprintln(out, line)
				lastLog = time.Now()
			}
			if p.Settled >= total {
				if tty {
					fmt.Fprintln(out)
				}
				break wait
			}
		}
	}
	elapsed := time.Since(start)
	stop()
	if err := <-done; err != nil {
		return err
	}

	// 6. Reconcile.
	rep, err := reconcile(ctx, brokers, sim, expect, byTopic, elapsed)
	if err != nil {
		return err
	}
	rep.Filtered = relay.Progress().Filtered
	printDemoSummary(out, rep)
	if reportPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(reportPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "report written to %s\n", reportPath)
	}
	if rep.Lost != 0 {
		return fmt.Errorf("lost %d: %v", rep.Lost, rep.LostDetail)
	}
	return nil
}

func progressLine(p consumer.Progress, total int64, el time.Duration) string {
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(p.Settled) / float64(total)
	}
	rate := float64(p.Accepted) / max(el.Seconds(), 0.001)
	return fmt.Sprintf("records %d/%d settled (%.0f%%)  events accepted %d  dead-lettered %d  filtered %d  %.0f events/s",
		p.Settled, total, pct, p.Accepted, p.DeadLettered, p.Filtered, rate)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// writeDemoConfig writes a config whose topics are the web-shop and signups
// examples' and whose other sections point at the in-process services.
func writeDemoConfig(path string, brokers []string, apiURL, registryURL string) error {
	var topics []*yaml.Node
	for _, name := range []string{"web-shop", "signups", "avro-orders"} {
		b, err := examples.FS.ReadFile(name + "/config.yaml")
		if err != nil {
			return err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("example %s: %w", name, err)
		}
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value != "topics" {
				continue
			}
			for _, t := range root.Content[i+1].Content {
				if name == "avro-orders" {
					retopicAvro(t, demoAvro, demoAvro+"-value")
				}
				topics = append(topics, t)
			}
		}
	}
	tb, err := yaml.Marshal(&yaml.Node{Kind: yaml.SequenceNode, Content: topics})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by capirelay demo.\nkafka:\n  brokers: [%s]\n  group: capirelay-demo\n  dead_letter_topic: %s\n", strings.Join(brokers, ", "), demoDLQ)
	fmt.Fprintf(&b, "api:\n  base_url: %s\n  key_env: %s\n  pixel: %s\n  initial_backoff: 50ms\n  max_backoff: 1s\n", apiURL, demoKeyEnv, demoPixel)
	fmt.Fprintf(&b, "relay:\n  linger: 50ms\n  commit_interval: 200ms\n  listen: \"off\"\n")
	fmt.Fprintf(&b, "schema_registry:\n  urls: [%s]\n", registryURL)
	b.WriteString("topics:\n")
	for _, line := range strings.Split(strings.TrimRight(string(tb), "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// retopicAvro points an avro topic entry at topic and subject, drops its
// local schema files (the relay reads each record's schema by id from the
// registry) and suffixes its rule names with "-avro" (rule names are unique
// in a file, and the JSON web-shop example uses the same ones).
func retopicAvro(t *yaml.Node, topic, subject string) {
	var keep []*yaml.Node
	for i := 0; i+1 < len(t.Content); i += 2 {
		k, v := t.Content[i], t.Content[i+1]
		switch k.Value {
		case "schema":
			continue
		case "topic":
			v.Value = topic
		case "subject":
			v.Value = subject
		case "rules":
			for _, r := range v.Content {
				for j := 0; j+1 < len(r.Content); j += 2 {
					if r.Content[j].Value == "name" {
						r.Content[j+1].Value += "-avro"
					}
				}
			}
		}
		keep = append(keep, k, v)
	}
	t.Content = keep
}

type tpo struct {
	topic     string
	partition int32
	offset    int64
}

// produceDemo produces the demo records and returns what each must become.
func produceDemo(ctx context.Context, brokers []string, nOrders, nSignups, nAvro int, avro *demoSchemas) (map[tpo]expectation, map[string]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	rng := mrand.New(mrand.NewPCG(1, 2))
	now := time.Now().UTC()
	type pending struct {
		rec *kgo.Record
		exp expectation
	}
	var recs []pending
	add := func(topic, key string, v any, exp expectation) {
		var b []byte
		switch x := v.(type) {
		case []byte:
			b = x
		default:
			b, _ = json.Marshal(v)
		}
		recs = append(recs, pending{&kgo.Record{Topic: topic, Key: []byte(key), Value: b,
			Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("demo")}}}, exp})
	}
	bad := map[int]string{nOrders / 5: "decode", nOrders / 3: "mapping", nOrders / 2: "expired", (2 * nOrders) / 3: "rejected"}
	for i := 0; i < nOrders; i++ {
		id := fmt.Sprintf("ord_%06d", i)
		created := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
		nItems := 1 + rng.IntN(3)
		if bad[i] == "rejected" {
			nItems = demoMaxItems + 10
		}
		order := demoOrder(rng, id, created, nItems)
		status := order["status"]
		exp := expectation{}
		if status == "paid" {
			exp.events = []string{"order_created/" + id}
		}
		switch bad[i] {
		case "decode":
			add(demoOrders, id, []byte(`{"order_id": "`+id+`", "status": "paid", `), expectation{class: consumer.ClassDecode})
			continue
		case "mapping":
			delete(order, "order_id")
			order["status"] = "paid"
			exp = expectation{class: consumer.ClassMapping}
		case "expired":
			order["status"] = "paid"
			order["created_at"] = now.Add(-8 * 24 * time.Hour).Format(time.RFC3339)
			exp = expectation{class: consumer.ClassExpired}
		case "rejected":
			order["status"] = "paid"
			exp = expectation{class: consumer.ClassRejected}
		}
		add(demoOrders, id, order, exp)
	}
	for i := 0; i < nSignups; i++ {
		uid := 100000 + i
		optIn := rng.IntN(3) == 0
		platform := "web"
		if rng.IntN(4) == 0 {
			platform = "android"
		}
		v := map[string]any{"user_id": uid, "email": fmt.Sprintf("user%d@example.com", uid), "first_name": "Ada", "last_name": "Lovelace",
			"country": "GB", "platform": platform, "landing_url": "https://app.example.com/signup?ref=ads",
			"signed_up_at": now.Add(-time.Duration(rng.IntN(7200)) * time.Second).Unix(), "marketing_opt_in": optIn}
		exp := expectation{events: []string{"registration_completed/" + strconv.Itoa(uid)}}
		if optIn {
			exp.events = append(exp.events, "lead_created/lead-"+strconv.Itoa(uid))
		}
		add(demoSignups, strconv.Itoa(uid), v, exp)
	}
	for i := 0; i < nAvro; i++ {
		id := fmt.Sprintf("avro_%06d", i)
		o := demoOrder(rng, id, now.Add(-time.Duration(rng.IntN(3600))*time.Second), 1+rng.IntN(3))
		exp := expectation{}
		if o["status"] == "paid" {
			exp.events = []string{"order_created/" + id}
		}
		var b []byte
		var err error
		switch {
		case i == nAvro/2:
			// A schema id the registry does not know: a bad record.
			b, err = encodeAvro(avro.v1, 424242, o)
			exp = expectation{class: consumer.ClassDecode}
		case i%2 == 0:
			b, err = encodeAvro(avro.v1, avro.id1, o)
		default:
			var o2 map[string]any
			if o2, err = orderV2(o); err == nil {
				b, err = encodeAvro(avro.v2, avro.id2, o2)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("encode avro order: %w", err)
		}
		add(demoAvro, id, b, exp)
	}
	rs := make([]*kgo.Record, len(recs))
	for i := range recs {
		rs[i] = recs[i].rec
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return nil, nil, fmt.Errorf("produce: %w", err)
	}
	expect := make(map[tpo]expectation, len(recs))
	byTopic := map[string]int64{}
	for _, p := range recs {
		expect[tpo{p.rec.Topic, p.rec.Partition, p.rec.Offset}] = p.exp
		byTopic[p.rec.Topic]++
	}
	return expect, byTopic, nil
}

var demoSKUs = []struct{ sku, title, price string }{
	{"sku_100", "Starter bundle", "99.99"}, {"sku_200", "Refill pack", "14.95"},
	{"sku_300", "Travel case", "24.50"}, {"sku_400", "Gift card", "50.00"},
}

// demoOrder returns a realistic web-shop order (the shape the web-shop
// example rules read): decimal-string money, nested customer, items, a
// checkout URL with a query string. One order in 20 is "pending" (no rule
// matches it).
func demoOrder(rng *mrand.Rand, id string, created time.Time, nItems int) map[string]any {
	var items []map[string]any
	totalCents := 0
	for j := 0; j < nItems; j++ {
		s := demoSKUs[rng.IntN(len(demoSKUs))]
		qty := 1 + rng.IntN(3)
		items = append(items, map[string]any{"sku": s.sku, "title": s.title, "qty": qty, "unit_price": s.price})
		cents, _ := strconv.Atoi(strings.ReplaceAll(s.price, ".", ""))
		totalCents += cents * qty
	}
	status := "paid"
	if rng.IntN(20) == 0 {
		status = "pending"
	}
	return map[string]any{
		"order_id": id, "status": status, "created_at": created.UTC().Format(time.RFC3339),
		"currency": "USD", "total": fmt.Sprintf("%d.%02d", totalCents/100, totalCents%100),
		"checkout_url": "https://shop.example.com/checkout/confirmation?session=" + strconv.Itoa(rng.IntN(1e9)),
		"attribution":  map[string]any{"oppref": "oppref_" + strconv.Itoa(rng.IntN(1e6))},
		"customer": map[string]any{"id": fmt.Sprintf("cust_%d", rng.IntN(5000)), "email": fmt.Sprintf("Customer%d@Example.com", rng.IntN(5000)),
			"phone": fmt.Sprintf("+1 (415) 555-%04d", rng.IntN(10000)), "country": "US"},
		"client": map[string]any{"ip": fmt.Sprintf("203.0.113.%d", rng.IntN(250)+1), "user_agent": "Mozilla/5.0"},
		"items":  items,
	}
}

// demoSchemas are the Avro order schemas registered for the demo.
type demoSchemas struct {
	v1, v2   *schemas.Schema
	id1, id2 int
}

func registerDemoSchemas(reg *srfake.Registry, subject string) (*demoSchemas, error) {
	d := &demoSchemas{}
	for i, name := range []string{schemas.OrderV1, schemas.OrderV2} {
		text, err := schemas.Embedded(name)
		if err != nil {
			return nil, err
		}
		id, _, err := reg.RegisterSchema(subject, sr.Schema{Schema: text, Type: sr.TypeAvro})
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
		s, err := schemas.ParseSchema(text)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			d.v1, d.id1 = s, id
		} else {
			d.v2, d.id2 = s, id
		}
	}
	return d, nil
}

// reconcile checks every produced record against the simulator's accepted
// events and the dead-letter topic.
func reconcile(ctx context.Context, brokers []string, sim *capisim.Server, expect map[tpo]expectation, byTopic map[string]int64, el time.Duration) (*demoReport, error) {
	accepted := map[string]bool{}
	for _, e := range sim.Events() {
		accepted[e.Type+"/"+e.ID] = true
	}
	st := sim.Stats()
	dead := map[tpo]string{}
	byClass := map[string]int64{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(demoDLQ), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	bad := countBad(expect)
	for {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			t, _ := consumer.HeaderValue(r, consumer.HeaderSourceTopic)
			p, _ := consumer.HeaderValue(r, consumer.HeaderSourcePartition)
			o, _ := consumer.HeaderValue(r, consumer.HeaderSourceOffset)
			c, _ := consumer.HeaderValue(r, consumer.HeaderClass)
			pi, _ := strconv.Atoi(p)
			oi, _ := strconv.ParseInt(o, 10, 64)
			dead[tpo{t, int32(pi), oi}] = c
			byClass[c]++
		})
		if len(dead) >= bad {
			break
		}
	}
	rep := &demoReport{RecordsByTopic: byTopic, DeadByClass: byClass, Duplicates: st.DuplicatesIgnored,
		EventsAccepted: st.EventsAccepted, APIRequests: map[string]int64{}, Seconds: el.Seconds()}
	for code, n := range st.RequestsByStatus {
		rep.APIRequests[strconv.Itoa(code)] = n
	}
	for k, e := range expect {
		rep.Records++
		rep.EventsExpected += int64(len(e.events))
		if e.class != "" {
			if got, ok := dead[k]; !ok || got != e.class {
				rep.Lost++
				rep.LostDetail = append(rep.LostDetail, fmt.Sprintf("%s/%d@%d: want dead-letter class %s, got %q", k.topic, k.partition, k.offset, e.class, got))
			}
			continue
		}
		for _, ev := range e.events {
			if !accepted[ev] {
				rep.Lost++
				rep.LostDetail = append(rep.LostDetail, fmt.Sprintf("%s/%d@%d: event %s not accepted", k.topic, k.partition, k.offset, ev))
			}
		}
	}
	for _, n := range byClass {
		rep.DeadLettered += n
	}
	slices.Sort(rep.LostDetail)
	if len(rep.LostDetail) > 20 {
		rep.LostDetail = rep.LostDetail[:20]
	}
	rep.EventsPerSec = float64(rep.EventsAccepted) / max(el.Seconds(), 0.001)
	return rep, nil
}

func countBad(expect map[tpo]expectation) int {
	n := 0
	for _, e := range expect {
		if e.class != "" {
			n++
		}
	}
	return n
}

func printDemoSummary(w io.Writer, r *demoReport) {
	fmt.Fprintf(w, "\nsummary (%.1fs)\n", r.Seconds)
	fmt.Fprintf(w, "  records            %d", r.Records)
	for _, t := range slices.Sorted(maps.Keys(r.RecordsByTopic)) {
		fmt.Fprintf(w, "  (%s %d)", t, r.RecordsByTopic[t])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  events expected    %d\n", r.EventsExpected)
	fmt.Fprintf(w, "  events accepted    %d  (%.0f events/s)\n", r.EventsAccepted, r.EventsPerSec)
	fmt.Fprintf(w, "  filtered records   %d  (no rule matched: pending orders)\n", r.Filtered)
	fmt.Fprintf(w, "  dead-lettered      %d", r.DeadLettered)
	for _, c := range slices.Sorted(maps.Keys(r.DeadByClass)) {
		fmt.Fprintf(w, "  %s=%d", c, r.DeadByClass[c])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  duplicates         %d  (ignored by the API's dedup)\n", r.Duplicates)
	fmt.Fprintf(w, "  API requests      ")
	for _, c := range slices.Sorted(maps.Keys(r.APIRequests)) {
		fmt.Fprintf(w, " %s=%d", c, r.APIRequests[c])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  lost               %d\n", r.Lost)
	for _, d := range r.LostDetail {
		fmt.Fprintf(w, "    %s\n", d)
	}
}
