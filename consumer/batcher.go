package consumer

// batcher.go: per-pixel batches. It owns the batches being filled (pending)
// and hands full or lingering ones to the senders (sendq). Lock: Relay.bmu
// guards pending; a batch belongs to the batcher until it is on sendq, then
// to the sender that takes it.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/capirelay/capirelay/capi"
)

type batchKey struct {
	pixel        string
	validateOnly bool
}

// batch is a request being assembled: the encoded events, back to back, and
// for each its unit of work.
type batch struct {
	key     batchKey
	buf     []byte
	ends    []int
	events  []eventRef
	created time.Time
}

// eventRef is one event of a record on its way: its unit of work (settled
// when the event is accepted, dead-lettered or expired), the record (to
// dead-letter), its rule and its time.
type eventRef struct {
	tok  token
	rec  *kgo.Record
	rule string
	tsMS int64 // the event's timestamp_ms, to re-check the window before each send
}

// add appends an encoded event to its batch, flushing the batch first when
// the event would not fit.
func (r *Relay) add(key batchKey, enc []byte, ev eventRef) {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	b := r.pending[key]
	if b != nil && (len(b.ends)+1 > r.cfg.MaxBatchEvents ||
		capi.RequestSize(len(b.buf)+len(enc), len(b.ends)+1, key.validateOnly, "") > r.cfg.MaxBatchBytes-128) {
		r.flushLocked(b)
		b = nil
	}
	if b == nil {
		b = &batch{key: key, created: time.Now(), buf: make([]byte, 0, 64<<10)}
		r.pending[key] = b
	}
	b.buf = append(b.buf, enc...)
	b.ends = append(b.ends, len(b.buf))
	b.events = append(b.events, ev)
}

// flushLocked hands b to the senders; it blocks while every sender is busy
// (back-pressure on the mapping workers).
func (r *Relay) flushLocked(b *batch) {
	delete(r.pending, b.key)
	r.inflight.Add(1)
	r.sendq <- b
}

func (r *Relay) flushAll() {
	r.bmu.Lock()
	defer r.bmu.Unlock()
	for _, b := range r.pending {
		r.flushLocked(b)
	}
}

// requestFlush asks the linger loop to flush every pending batch without
// waiting for it: the batch lock can be held for as long as an API outage
// keeps sendq full (by the linger loop itself or a mapping worker), and the
// callers, revocation and SetTopics, must keep to RevokeTimeout.
func (r *Relay) requestFlush() {
	select {
	case r.flushNow <- struct{}{}:
	default: // a request is pending already
	}
}

func (r *Relay) lingerLoop(ctx context.Context) {
	tick := time.NewTicker(max(r.cfg.Linger/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.flushNow:
			r.flushAll()
		case now := <-tick.C:
			r.bmu.Lock()
			for _, b := range r.pending {
				if now.Sub(b.created) >= r.cfg.Linger {
					r.flushLocked(b)
				}
			}
			r.bmu.Unlock()
		}
	}
}
