// This file is compiled into a private copy of package bbolt (see gohelper.py), never into
// bbolt's own source tree: it reaches bbolt's unexported freelist and meta page so that the
// project's tests can replay traces on bbolt's own allocators and read what bbolt read.

package bbolt

import (
	"fmt"
	"sort"
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
	return interopReplay(hwm, freeIDs, ops, hashmap, nil)
}

// InteropValidate replays ops as InteropReplay does and checks every step against a model
// of the free pages: each allocation is of pages free at that moment, an allocation fails
// only when no run of n free pages exists, and the final free set is the model's.
func InteropValidate(hwm uint64, freeIDs []uint64, ops []InteropOp, hashmap bool) (res InteropReplayResult, err error) {
	m := &model{free: make(map[pgid]bool, len(freeIDs))}
	for _, id := range freeIDs {
		m.free[pgid(id)] = true
	}
	res, err = interopReplay(hwm, freeIDs, ops, hashmap, m)
	if err != nil || m.err != nil {
		if err == nil {
			err = m.err
		}
		return res, err
	}
	if len(res.FreeIDs) != len(m.free) {
		return res, fmt.Errorf("final free set: bbolt holds %d pages, the model %d", len(res.FreeIDs), len(m.free))
	}
	for _, id := range res.FreeIDs {
		if !m.free[pgid(id)] {
			return res, fmt.Errorf("final free set: page %d is free in bbolt, not in the model", id)
		}
	}
	return res, nil
}

type model struct {
	free    map[pgid]bool
	pending []pgid
	err     error
}

func (m *model) hasRun(n int) bool {
	ids := make([]pgid, 0, len(m.free))
	for id := range m.free {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	run := 0
	for i, id := range ids {
		if i > 0 && id == ids[i-1]+1 {
			run++
		} else {
			run = 1
		}
		if run >= n {
			return true
		}
	}
	return false
}

func (m *model) allocated(op int, s pgid, n int) {
	if m.err != nil {
		return
	}
	if s == 0 {
		if m.hasRun(n) {
			m.err = fmt.Errorf("operation #%d: A %d grew the file though a run of %d free pages exists", op, n, n)
		}
		return
	}
	for i := pgid(0); i < pgid(n); i++ {
		if !m.free[s+i] {
			m.err = fmt.Errorf("operation #%d: A %d returned %d, but page %d is not free", op, n, s, s+i)
			return
		}
		delete(m.free, s+i)
	}
}

func interopReplay(hwm uint64, freeIDs []uint64, ops []InteropOp, hashmap bool, m *model) (res InteropReplayResult, err error) {
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
			if m != nil {
				m.allocated(i, s, n)
			}
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
			if m != nil {
				for j := pgid(0); j <= pgid(pg.overflow); j++ {
					m.pending = append(m.pending, pg.id+j)
				}
			}
		case 'D':
			pg.id = pgid(op.A)
			pg.overflow = uint32(op.B - 1)
			f.free(tx, &pg)
			if m != nil {
				for j := pgid(0); j <= pgid(pg.overflow); j++ {
					m.pending = append(m.pending, pg.id+j)
				}
			}
		default:
			f.release(tx)
			tx++
			if m != nil {
				for _, id := range m.pending {
					m.free[id] = true
				}
				m.pending = m.pending[:0]
			}
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

// InteropRootStats returns bbolt's page statistics of the whole tree: the root bucket's
// Stats, which takes in every bucket below it.
func InteropRootStats(t *Tx) BucketStats {
	return t.root.Stats()
}
