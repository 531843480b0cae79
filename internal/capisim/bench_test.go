package capisim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchBatch returns a batch of n typical orders whose ids start with prefix.
func benchBatch(prefix string, n int) []byte {
	evs := make([]obj, n)
	for i := range evs {
		evs[i] = orderEvent(fmt.Sprintf("%s-%06d", prefix, i))
	}
	return batchOf(evs...)
}

// validateOnly turns a batch from benchBatch into a validate_only request.
func validateOnly(body []byte) []byte {
	return bytes.Replace(body, []byte(`{"events":`), []byte(`{"validate_only":true,"events":`), 1)
}

func reportPerEvent(b *testing.B, events int) {
	b.Helper()
	perEvent := float64(b.Elapsed().Nanoseconds()) / float64(b.N*events)
	b.ReportMetric(perEvent, "ns/event")
	b.ReportMetric(1e9/perEvent, "events/s")
}

// BenchmarkServeValidBatch validates and stores a 1000-event batch of
// typical orders (two items, hashed email and phone, IP, user agent) in
// process, without the network. Every iteration rewrites the id prefix so
// no event is a duplicate; the store is reset every 256 iterations to bound
// memory.
func BenchmarkServeValidBatch(b *testing.B) {
	s := newSim(b, nil)
	body := benchBatch("g0000000", 1000)
	marker := []byte(`"g0000000-`)
	var offsets []int
	for i := 0; ; {
		j := bytes.Index(body[i:], marker)
		if j < 0 {
			break
		}
		offsets = append(offsets, i+j+2)
		i += j + len(marker)
	}
	if len(offsets) != 1000 {
		b.Fatalf("found %d ids", len(offsets))
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%256 == 255 {
			b.StopTimer()
			s.Reset()
			b.StartTimer()
		}
		gen := fmt.Appendf(nil, "%07d", i)
		for _, off := range offsets {
			copy(body[off:], gen)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req(body))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.StopTimer()
	if st := s.Stats(); st.DuplicatesIgnored != 0 {
		b.Fatalf("%d duplicates", st.DuplicatesIgnored)
	}
	reportPerEvent(b, 1000)
}

// BenchmarkServeValidBatchParallel is BenchmarkServeValidBatch from
// GOMAXPROCS goroutines (validate_only, so the store does not grow).
func BenchmarkServeValidBatchParallel(b *testing.B) {
	s := newSim(b, nil)
	body := validateOnly(benchBatch("order", 1000))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req(body))
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	reportPerEvent(b, 1000)
}

// BenchmarkNullSinkHTTP posts 1000-event batches over loopback HTTP from
// GOMAXPROCS goroutines to a NullSink server: the end-to-end ceiling a
// client can reach against the simulator.
func BenchmarkNullSinkHTTP(b *testing.B) {
	benchHTTP(b, func(o *Options) { o.NullSink = true }, benchBatch("order", 1000))
}

// BenchmarkValidateHTTP is BenchmarkNullSinkHTTP with full validation
// (validate_only, so memory stays flat).
func BenchmarkValidateHTTP(b *testing.B) {
	benchHTTP(b, nil, validateOnly(benchBatch("order", 1000)))
}

// benchHTTP posts body, a 1000-event batch, over loopback HTTP from
// GOMAXPROCS goroutines to a server whose options mod adjusts.
func benchHTTP(b *testing.B, mod func(*Options), body []byte) {
	s := newSim(b, mod)
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Do(clientReq(srv.URL, body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	reportPerEvent(b, 1000)
}
