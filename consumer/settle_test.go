package consumer

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// settleProbe is a tracker with hooks that record what it reports.
type settleProbe struct {
	tr         *partitionTracker
	released   int64 // bytes given back
	settled    int   // records given back
	violations []error
}

func newSettleProbe(t *testing.T) *settleProbe {
	t.Helper()
	p := &settleProbe{}
	p.tr = newTracker("t", 0, func(b int64) { p.released += b; p.settled++ }, func(err error) { p.violations = append(p.violations, err) })
	return p
}

func (p *settleProbe) check(t *testing.T, wantOff int64, wantUnsettled int) {
	t.Helper()
	off, _, uns, _ := p.tr.state()
	if off != wantOff || uns != wantUnsettled {
		t.Fatalf("committable=%d unsettled=%d, want %d %d", off, uns, wantOff, wantUnsettled)
	}
}

func TestSettleSettledPrefix(t *testing.T) {
	p := newSettleProbe(t)
	tr := p.tr
	m10 := first(tr.track(10, 1, 0, 100))
	m11 := first(tr.track(11, 1, 0, 10))
	tr.skip(13, 1) // a transaction marker, gap in offsets
	m14 := first(tr.track(14, 2, 0, 1))

	p.check(t, -1, 4)
	m11.done() // a later record settles first: nothing committable
	p.check(t, -1, 4)
	e10 := m10.split(2, nil) // the mapping becomes two events
	p.check(t, -1, 4)
	e10[0].done()
	p.check(t, -1, 4)
	e10[1].done()
	p.check(t, 14, 1) // 10, 11, 13 settled → commit 14
	if p.settled != 2 || p.released != 110 {
		t.Fatalf("released %d records, %d bytes; want 2, 110", p.settled, p.released)
	}
	none := m14.split(0, nil) // a record that produced no event
	if len(none) != 0 {
		t.Fatalf("split(0) gave %d tokens", len(none))
	}
	p.check(t, 15, 0)
	if _, ep, _, _ := tr.state(); ep != 2 {
		t.Fatalf("epoch %d", ep)
	}
	if len(p.violations) != 0 {
		t.Fatalf("violations: %v", p.violations)
	}
}

// TestSettleDoubleDoneDoesNotCommitPastPendingEvent: the bug the token type
// exists for. With a count, one extra settle of a two-event record settled
// it while its second event was still in flight, and the commit passed it.
func TestSettleDoubleDoneDoesNotCommitPastPendingEvent(t *testing.T) {
	for _, misuse := range []struct {
		name string
		use  func(k token)
	}{
		{"done", func(k token) { k.done() }},
		{"split", func(k token) { k.split(2, nil) }},
		{"abandon", func(k token) { k.abandon() }},
	} {
		t.Run(misuse.name, func(t *testing.T) {
			p := newSettleProbe(t)
			evs := first(p.tr.track(0, 0, 0, 1)).split(2, nil)
			evs[0].done()
			misuse.use(evs[0]) // the first event settled twice
			p.check(t, -1, 1)
			if len(p.violations) != 1 {
				t.Fatalf("violations %v, want 1", p.violations)
			}
			if _, _, ok := p.tr.toCommit(); ok {
				t.Fatal("committable while the second event is in flight")
			}
			evs[1].done()
			p.check(t, 1, 0)
			evs[1].done() // after the record settled in full
			if len(p.violations) != 2 || p.settled != 1 {
				t.Fatalf("violations %v, records released %d; want 2 violations, 1 record", p.violations, p.settled)
			}
		})
	}
}

func TestSettleAbandonNeedsRevocation(t *testing.T) {
	p := newSettleProbe(t)
	k := first(p.tr.track(5, 0, 0, 7))
	k.abandon()
	if len(p.violations) != 1 {
		t.Fatalf("abandon on an owned partition: violations %v, want 1", p.violations)
	}
	p.check(t, -1, 1)
	p.tr.revoke()
	k.abandon()
	if len(p.violations) != 1 || p.released != 7 {
		t.Fatalf("abandon after revoke: violations %v, released %d", p.violations, p.released)
	}
	if _, _, ok := p.tr.toCommit(); ok {
		t.Fatal("a revoked tracker offers a commit")
	}
}

// TestSettleManyUnits: a record with more units than the bit set holds.
func TestSettleManyUnits(t *testing.T) {
	p := newSettleProbe(t)
	toks := first(p.tr.track(0, 0, 0, 1)).split(200, nil)
	for i, k := range toks {
		p.check(t, -1, 1)
		k.done()
		if i == 70 {
			k.done() // twice, past the bit set
		}
	}
	p.check(t, 1, 0)
	if len(p.violations) != 1 {
		t.Fatalf("violations %v, want 1", p.violations)
	}
}

// TestSettleModel drives random interleavings of the protocol's operations —
// records read (and transaction markers), mappings split into events, events
// settled, units handed to a dead-letter write that fails and is retried
// before it settles, misuse (a unit used twice), revocation with abandoned
// units and reassignment, and commits — against a model of the settle rule.
// After every step the tracker's committable offset, unsettled count and
// released budget equal the model's, and no commit ever passes a record
// with a pending unit.
func TestSettleModel(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runSettleModel(t, seed) })
	}
}

type modelRecord struct {
	offset  int64
	bytes   int64
	pending map[int]bool // model unit ids pending
	control bool
}

type modelUnit struct {
	tok    token
	rec    int // index into records
	used   bool
	failed int // dead-letter attempts that failed (held, not settled)
}

func runSettleModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5e771e))
	p := newSettleProbe(t)
	var (
		records   []modelRecord
		units     []modelUnit
		offset    int64
		committed int64 = -1
		released  int64
		viol      int
	)
	live := func() []int {
		var out []int
		for i, u := range units {
			if !u.used {
				out = append(out, i)
			}
		}
		return out
	}
	newUnit := func(rec int, k token) {
		units = append(units, modelUnit{tok: k, rec: rec})
		records[rec].pending[len(units)-1] = true
	}
	finish := func(i int) {
		u := &units[i]
		u.used = true
		r := &records[u.rec]
		delete(r.pending, i)
		if len(r.pending) == 0 && !r.control {
			released += r.bytes
		}
	}
	expect := func() (committable int64, unsettled int, firstPending int64) {
		committable, firstPending = -1, -1
		i := 0
		for ; i < len(records) && len(records[i].pending) == 0; i++ {
			committable = records[i].offset + 1
		}
		if i < len(records) {
			firstPending = records[i].offset
		}
		return committable, len(records) - i, firstPending
	}
	for step := range 400 {
		op := rng.IntN(100)
		switch {
		case op < 22: // a record is read
			offset += 1 + int64(rng.IntN(3))
			b := int64(1 + rng.IntN(1000))
			records = append(records, modelRecord{offset: offset, bytes: b, pending: map[int]bool{}})
			newUnit(len(records)-1, first(p.tr.track(offset, 0, 0, b)))
		case op < 25: // a transaction marker
			offset++
			records = append(records, modelRecord{offset: offset, pending: map[int]bool{}, control: true})
			p.tr.skip(offset, 0)
		case op < 40: // a mapping (or any unit) becomes n units
			if l := live(); len(l) > 0 {
				i := l[rng.IntN(len(l))]
				n := rng.IntN(4)
				rec := units[i].rec
				toks := units[i].tok.split(n, nil)
				finish(i)
				if n > 0 {
					// the record cannot settle in between: re-add the pending units
					if len(records[rec].pending) == 0 {
						released -= records[rec].bytes
					}
				}
				for _, k := range toks {
					newUnit(rec, k)
				}
			}
		case op < 60: // a unit is done (accepted, or its dead-letter write acknowledged)
			if l := live(); len(l) > 0 {
				i := l[rng.IntN(len(l))]
				units[i].tok.done()
				finish(i)
			}
		case op < 68: // a dead-letter write of a unit fails: held, nothing moves
			if l := live(); len(l) > 0 {
				units[l[rng.IntN(len(l))]].failed++
			}
		case op < 76: // misuse: a finished unit is used again
			var used []int
			for i, u := range units {
				if u.used {
					used = append(used, i)
				}
			}
			if len(used) > 0 {
				k := units[used[rng.IntN(len(used))]].tok
				switch rng.IntN(3) {
				case 0:
					k.done()
				case 1:
					k.split(1+rng.IntN(2), nil)
				default:
					k.abandon()
				}
				viol++
			}
		case op < 78: // revocation: the partition is given up and assigned again
			p.tr.revoke()
			if _, _, ok := p.tr.toCommit(); ok {
				t.Fatalf("step %d: a revoked tracker offers a commit", step)
			}
			for _, i := range live() { // parked units are abandoned; in-flight ones settle later
				if rng.IntN(2) == 0 {
					units[i].tok.abandon()
				} else {
					units[i].tok.done()
				}
				finish(i)
			}
			if got, want := p.released, released; got != want {
				t.Fatalf("step %d: released %d bytes after revocation, want %d", step, got, want)
			}
			// The next owner starts from the committed offset with a new tracker.
			p = &settleProbe{released: p.released, settled: p.settled, violations: p.violations}
			p.tr = newTracker("t", 0, func(b int64) { p.released += b; p.settled++ }, func(err error) { p.violations = append(p.violations, err) })
			records, units = nil, nil
			if committed >= 0 {
				offset = committed - 1
			}
		default: // a commit
			off, _, ok := p.tr.toCommit()
			want, _, firstPending := expect()
			if ok {
				if off != want {
					t.Fatalf("step %d: commit offered %d, model says %d", step, off, want)
				}
				if firstPending >= 0 && off > firstPending {
					t.Fatalf("step %d: commit %d passes the pending record at %d", step, off, firstPending)
				}
				p.tr.committedTo(off)
				committed = off
			} else if want > committed && want >= 0 && !p.tr.isRevoked() {
				t.Fatalf("step %d: no commit offered, model says %d (committed %d)", step, want, committed)
			}
		}
		want, unsettled, _ := expect()
		off, _, uns, _ := p.tr.state()
		if off != want || uns != unsettled {
			t.Fatalf("step %d (op %d): committable %d unsettled %d, model %d %d", step, op, off, uns, want, unsettled)
		}
		if p.released != released {
			t.Fatalf("step %d: released %d bytes, model %d", step, p.released, released)
		}
		if len(p.violations) != viol {
			t.Fatalf("step %d: %d violations reported, %d made", step, len(p.violations), viol)
		}
	}
}

// TestSettleConcurrent: the units of many records, each split into two
// events, are finished by several goroutines in random order while another
// samples the committable offset: it never passes a record with a pending
// unit, and ends after the last record.
func TestSettleConcurrent(t *testing.T) {
	const n = 20000
	var violations atomic.Int64
	tr := newTracker("t", 0, nil, func(error) { violations.Add(1) })
	var events []token
	pending := make([]atomic.Int32, n)
	for i := range n {
		events = first(tr.track(int64(i), 0, 0, 1)).split(2, events)
		pending[i].Store(2)
	}
	perm := rand.Perm(len(events))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var failed atomic.Value
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			off, _, _, _ := tr.state()
			for k := int64(0); k < off; k++ {
				if pending[k].Load() > 0 {
					failed.Store(fmt.Sprintf("committable %d passes record %d with a pending unit", off, k))
					return
				}
			}
		}
	})
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Go(func() {
			for j := w; j < len(perm); j += 4 {
				i := perm[j]
				pending[i/2].Add(-1) // before done: the sampler may only see it settled after
				events[i].done()
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		t.Fatal(msg)
	}
	if off, _, uns, _ := tr.state(); off != n || uns != 0 {
		t.Fatalf("end: committable %d unsettled %d", off, uns)
	}
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d violations", v)
	}
}

func TestSettleTrackerCompacts(t *testing.T) {
	tr := newTracker("t", 0, nil, nil)
	for i := range 100000 {
		first(tr.track(int64(i), 0, 0, 1)).done()
	}
	if cap(tr.entries) > 1024 {
		t.Fatalf("settled history not reclaimed: cap %d", cap(tr.entries))
	}
}

// first drops the window that track also returns.
func first(k token, _ int) token { return k }
