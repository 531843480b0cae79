package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/capirelay/capirelay/internal/capisim"
)

// newTestSim starts the Conversions API simulator, with the tests' key and
// pixel (opts' own are replaced), behind an HTTP server; both are closed
// when the test ends. It returns the simulator and the server's URL.
func newTestSim(tb testing.TB, opts capisim.Options) (*capisim.Server, string) {
	tb.Helper()
	opts.APIKey, opts.Pixels = binKey, []string{binPixel}
	sim, err := capisim.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	tb.Cleanup(sim.Close)
	return sim, srv.URL
}

// committedOffsets returns the offsets group has committed for topic, by
// partition: nil while the group does not exist yet or its coordinator is
// still loading.
func committedOffsets(tb testing.TB, adm *kadm.Client, group, topic string) map[int32]int64 {
	tb.Helper()
	offs, err := adm.FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) || kerr.IsRetriable(err) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// sumOffsets adds up the committed offsets of every partition (the number of
// records committed when the topic starts at offset 0).
func sumOffsets(offs map[int32]int64) int64 {
	var n int64
	for _, o := range offs {
		if o > 0 {
			n += o
		}
	}
	return n
}
