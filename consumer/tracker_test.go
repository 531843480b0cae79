package consumer

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestTrackerSettledPrefix(t *testing.T) {
	tr := newTracker("t", 0)
	r10 := tr.add(10, 1, 0, 2)
	r11 := tr.add(11, 1, 0, 1)
	tr.add(13, 1, 0, 0) // filtered record, gap in offsets (compaction)
	r14 := tr.add(14, 2, 0, 1)

	check := func(wantOff int64, wantUnsettled int) {
		t.Helper()
		off, _, uns, _ := tr.state()
		if off != wantOff || uns != wantUnsettled {
			t.Fatalf("committable=%d unsettled=%d, want %d %d", off, uns, wantOff, wantUnsettled)
		}
	}
	check(-1, 4)
	r11.settle() // later record settles first: nothing committable
	check(-1, 4)
	r10.settle() // one of two events
	check(-1, 4)
	r10.settle()
	check(14, 1) // 10, 11, 13 settled → commit 14
	r14.addPending(1)
	r14.settle()
	check(14, 1)
	r14.settle()
	check(15, 0)
	if _, ep, _, _ := tr.state(); ep != 2 {
		t.Fatalf("epoch %d", ep)
	}
}

// Concurrent random settlement: the committable offset never passes an
// unsettled record and ends after the last one.
func TestTrackerConcurrent(t *testing.T) {
	tr := newTracker("t", 0)
	const n = 20000
	refs := make([]ref, n)
	settled := make([]bool, n)
	var mu sync.Mutex
	for i := range refs {
		refs[i] = tr.add(int64(i), 0, 0, 1)
	}
	perm := rand.Perm(n)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for j := w; j < n; j += 4 {
				i := perm[j]
				mu.Lock()
				settled[i] = true
				mu.Unlock()
				refs[i].settle()
				off, _, _, _ := tr.state()
				mu.Lock()
				for k := int64(0); k < off; k++ {
					if !settled[k] {
						mu.Unlock()
						t.Errorf("committable %d passes unsettled offset %d", off, k)
						return
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if off, _, uns, _ := tr.state(); off != n || uns != 0 {
		t.Fatalf("end: committable %d unsettled %d", off, uns)
	}
}

func TestTrackerCompacts(t *testing.T) {
	tr := newTracker("t", 0)
	for i := 0; i < 100000; i++ {
		tr.add(int64(i), 0, 0, 1).settle()
	}
	if cap(tr.entries) > 1024 {
		t.Fatalf("settled history not reclaimed: cap %d", cap(tr.entries))
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Group: "g", Topics: []string{"t"}, DeadLetterTopic: "dlq"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Topics: []string{"dlq"}, DeadLetterTopic: "dlq", MaxBatchEvents: 1001, MapWorkers: -1, Linger: -1}
	err := bad.Validate()
	for _, want := range []string{"group id", "also the dead-letter topic", "max batch events", "map workers", "linger"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	redrive := Config{Group: "g", Topics: []string{"dlq"}, DeadLetterTopic: "dlq", AllowDeadLetterSource: true}
	if err := redrive.Validate(); err != nil {
		t.Fatalf("redrive config: %v", err)
	}
}
