// This file is compiled into a private copy of package bbolt (see gohelper.py), never into
// bbolt's own source tree: it reaches bbolt's unexported freelist and meta page so that the
// project's tests can replay traces on bbolt's own allocators and read what bbolt read.

package bbolt

import (
	"fmt"
	"time"
)

// InteropOp is one operation of a trace: Code is 'A', 'F', 'D' or 'C'.
type InteropOp struct {
	Code byte
	A, B uint64
}

// InteropReplayResult is what InteropReplay measured.
type InteropReplayResult struct {
	FinalHWM uint64
	Grown    int
	WallNs   int64
	FreeIDs  []uint64
	Pending  int
}

// InteropReplay replays ops on a new bbolt freelist (array, or hashmap when hashmap is set),
// holding the sorted initial free ids, with the trace format's semantics: the first txid
// is 2; 'A n' allocates n pages and grows at the high-water mark when the freelist has
// none; 'F k' frees allocation k; 'D s n' frees the run [s, s+n); 'C' releases every
// pending page and increments the txid. The wall time is read once around the loop.
func InteropReplay(hwm uint64, freeIDs []uint64, ops []InteropOp, hashmap bool) (res InteropReplayResult, err error) {
	typ := FreelistArrayType
	if hashmap {
		typ = FreelistMapType
	}
	f := newFreelist(typ)
	ids := make([]pgid, len(freeIDs))
	for i, id := range freeIDs {
		ids[i] = pgid(id)
	}
	f.readIDs(ids)
	starts := make([]pgid, 0, 1024)
	sizes := make([]uint32, 0, 1024)
	grown := 0
	tx := txid(2)
	high := pgid(hwm)
	i := 0
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("operation #%d: bbolt panicked: %v", i, r)
		}
	}()
	var pg page
	begin := time.Now()
	for i = range ops {
		op := &ops[i]
		switch op.Code {
		case 'A':
			n := int(op.A)
			s := f.allocate(tx, n)
			if s == 0 {
				s = high
				high += pgid(n)
				grown++
			}
			starts = append(starts, s)
			sizes = append(sizes, uint32(n))
		case 'F':
			pg.id = starts[op.A]
			pg.overflow = sizes[op.A] - 1
			f.free(tx, &pg)
		case 'D':
			pg.id = pgid(op.A)
			pg.overflow = uint32(op.B - 1)
			f.free(tx, &pg)
		default:
			f.release(tx)
			tx++
		}
	}
	wall := time.Since(begin).Nanoseconds()
	free := f.getFreePageIDs()
	out := make([]uint64, len(free))
	for j, id := range free {
		out[j] = uint64(id)
	}
	return InteropReplayResult{FinalHWM: uint64(high), Grown: grown, WallNs: wall, FreeIDs: out, Pending: f.pending_count()}, nil
}

// InteropMeta returns what the transaction's meta page says: the freelist page id (0 when
// the freelist is not synced), the high-water mark and the transaction id.
func InteropMeta(t *Tx) (freelist uint64, synced bool, hwm uint64, id uint64) {
	m := t.meta
	return uint64(m.freelist), m.freelist != pgidNoFreelist, uint64(m.pgid), uint64(m.txid)
}
