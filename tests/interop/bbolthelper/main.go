// bbolthelper asks bbolt itself what it thinks of a file or a trace, for the freelist
// project's interop tests and benchmarks. It is built by tests/interop/gohelper.py against
// a private copy of package bbolt that also holds inbbolt/interop_export.go.
//
//	bbolthelper make    -path P [-page-size N] [-seed S] [-nosync] [-freelist array|map]
//	                    [-size small|medium|large] [-target-bytes N] [-free-fraction F]
//	bbolthelper dump    -path P [-writable] [-churn N]
//	bbolthelper compact -src P -dst Q [-tx-max-size N] [-page-size N] [-no-sync]
//	bbolthelper replay  -trace T [-freelist array|hashmap] [-validate]
//
// Every subcommand prints one JSON object on stdout; errors go to stderr with exit status 1,
// except that dump reports a file bbolt refuses as {"open_error": "..."} (exit status 0).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: bbolthelper make|dump|compact|replay [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "make":
		err = cmdMake(os.Args[2:])
	case "dump":
		err = cmdDump(os.Args[2:])
	case "compact":
		err = cmdCompact(os.Args[2:])
	case "replay":
		err = cmdReplay(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bbolthelper:", err)
	os.Exit(1)
}

func emit(v interface{}) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}

// ---------------------------------------------------------------- make

type maker struct {
	rng  *rand.Rand
	ps   int
	junk []byte // random bytes values are sliced from
}

func (m *maker) value(n int) []byte {
	off := m.rng.Intn(len(m.junk) - n + 1)
	return m.junk[off : off+n]
}

// bucketAt opens (creating as needed) the bucket at path.
func bucketAt(tx *bolt.Tx, path []string) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists([]byte(path[0]))
	if err != nil {
		return nil, err
	}
	for _, name := range path[1:] {
		if b, err = b.CreateBucketIfNotExists([]byte(name)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func cmdMake(args []string) error {
	fs := flag.NewFlagSet("make", flag.ExitOnError)
	path := fs.String("path", "", "database file to create (must not exist)")
	pageSize := fs.Int("page-size", 4096, "page size in bytes")
	seed := fs.Int64("seed", 0, "workload seed")
	nosync := fs.Bool("nosync", false, "NoFreelistSync: do not write the freelist")
	freelist := fs.String("freelist", "array", "array or map")
	size := fs.String("size", "small", "small, medium or large (a bloated file)")
	target := fs.Int64("target-bytes", 64<<20, "large: file size to reach before deleting")
	freeFraction := fs.Float64("free-fraction", 0.9, "large: fraction of the keys to delete")
	_ = fs.Parse(args)
	if *path == "" {
		return errors.New("make: -path is required")
	}
	if _, err := os.Stat(*path); err == nil {
		return fmt.Errorf("make: %s exists", *path)
	}
	opts := &bolt.Options{PageSize: *pageSize, NoFreelistSync: *nosync, NoSync: true, NoGrowSync: true}
	switch *freelist {
	case "array":
		opts.FreelistType = bolt.FreelistArrayType
	case "map":
		opts.FreelistType = bolt.FreelistMapType
	default:
		return fmt.Errorf("make: -freelist %q: want array or map", *freelist)
	}
	db, err := bolt.Open(*path, 0o644, opts)
	if err != nil {
		return err
	}
	m := &maker{rng: rand.New(rand.NewSource(*seed)), ps: *pageSize}
	m.junk = make([]byte, 8**pageSize+4096)
	m.rng.Read(m.junk)
	switch *size {
	case "small":
		err = m.churn(db, 15, 200)
	case "medium":
		err = m.churn(db, 40, 1000)
	case "large":
		err = m.bloat(db, *target, *freeFraction)
	default:
		err = fmt.Errorf("make: -size %q: want small, medium or large", *size)
	}
	if err != nil {
		_ = db.Close()
		return err
	}
	if err := db.Sync(); err != nil {
		_ = db.Close()
		return err
	}
	return db.Close()
}

// churn runs txs write transactions of about perTx operations each: puts of small values,
// a few values of one to three pages (overflow pages), deletes of existing keys, inline
// buckets (a handful of tiny keys, no sub-bucket) made and dropped, and a nested bucket
// dropped with its contents and remade now and then.
func (m *maker) churn(db *bolt.DB, txs, perTx int) error {
	paths := [][]string{
		{"alpha"}, {"alpha", "nest"}, {"alpha", "nest", "deep"},
		{"beta"}, {"beta", "nest"}, {"gamma"}, {"delta", "one", "two", "three"},
	}
	keys := make([][][]byte, len(paths))
	inline := 0
	for t := 0; t < txs; t++ {
		err := db.Update(func(tx *bolt.Tx) error {
			for j := 0; j < perTx; j++ {
				pi := m.rng.Intn(len(paths))
				b, err := bucketAt(tx, paths[pi])
				if err != nil {
					return err
				}
				r := m.rng.Intn(100)
				switch {
				case r < 30 && len(keys[pi]) > 0:
					k := m.rng.Intn(len(keys[pi]))
					if err := b.Delete(keys[pi][k]); err != nil {
						return err
					}
					keys[pi][k] = keys[pi][len(keys[pi])-1]
					keys[pi] = keys[pi][:len(keys[pi])-1]
				default:
					k := []byte(fmt.Sprintf("k%07d", m.rng.Intn(1<<20)))
					n := 1 + m.rng.Intn(200)
					if r == 99 {
						n = m.ps + m.rng.Intn(2*m.ps)
					}
					if err := b.Put(k, m.value(n)); err != nil {
						return err
					}
					keys[pi] = append(keys[pi], k)
				}
			}
			// Inline buckets: tiny buckets, stored inside their parent's leaf.
			root, err := bucketAt(tx, []string{"inline"})
			if err != nil {
				return err
			}
			for j := 0; j < 3; j++ {
				ib, err := root.CreateBucket([]byte(fmt.Sprintf("i%05d", inline)))
				if err != nil {
					return err
				}
				inline++
				for k := 0; k < 1+m.rng.Intn(3); k++ {
					if err := ib.Put([]byte{byte('a' + k)}, m.value(1+m.rng.Intn(8))); err != nil {
						return err
					}
				}
			}
			if inline > 6 && m.rng.Intn(2) == 0 {
				if err := root.DeleteBucket([]byte(fmt.Sprintf("i%05d", m.rng.Intn(inline)))); err != nil && err != bolt.ErrBucketNotFound {
					return err
				}
			}
			if t%5 == 4 {
				// Drop a nested bucket with everything in it; it comes back empty.
				nest, err := bucketAt(tx, []string{"beta"})
				if err != nil {
					return err
				}
				if err := nest.DeleteBucket([]byte("nest")); err != nil && err != bolt.ErrBucketNotFound {
					return err
				}
				keys[4] = nil
				b, err := bucketAt(tx, []string{"gamma"})
				if err != nil {
					return err
				}
				_, err = b.NextSequence()
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// bloat fills the file with keys in four buckets (two nested) until it reaches target bytes,
// then deletes the fraction ff of the keys, chosen at random across the whole file.
func (m *maker) bloat(db *bolt.DB, target int64, ff float64) error {
	paths := [][]string{{"bulk0"}, {"bulk1"}, {"bulk1", "inner"}, {"bulk2", "inner", "most"}}
	counts := make([]int, len(paths))
	const txBytes = 8 << 20
	done := false
	for !done {
		err := db.Update(func(tx *bolt.Tx) error {
			written := 0
			for written < txBytes {
				pi := m.rng.Intn(len(paths))
				b, err := bucketAt(tx, paths[pi])
				if err != nil {
					return err
				}
				b.FillPercent = 0.95
				n := 16 + m.rng.Intn(m.ps/2)
				if m.rng.Intn(4) == 0 {
					n = m.ps/2 + m.rng.Intn(3*m.ps)
				}
				k := []byte(fmt.Sprintf("%012d", counts[pi]))
				counts[pi]++
				if err := b.Put(k, m.value(n)); err != nil {
					return err
				}
				written += n + len(k) + 16
			}
			if tx.Size() >= target {
				done = true
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Delete in batches, each transaction a slice of every bucket's key range.
	const batches = 16
	for part := 0; part < batches; part++ {
		err := db.Update(func(tx *bolt.Tx) error {
			for pi, path := range paths {
				b, err := bucketAt(tx, path)
				if err != nil {
					return err
				}
				lo, hi := counts[pi]*part/batches, counts[pi]*(part+1)/batches
				for i := lo; i < hi; i++ {
					if m.rng.Float64() < ff {
						if err := b.Delete([]byte(fmt.Sprintf("%012d", i))); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------- dump

type dumpOut struct {
	CheckErrors    []string `json:"check_errors"`
	Hash           string   `json:"hash"`
	Free           int      `json:"free"`
	Pending        int      `json:"pending"`
	HWM            uint64   `json:"hwm"`
	PageSize       int      `json:"page_size"`
	FreelistSynced bool     `json:"freelist_synced"`
	FreelistPage   uint64   `json:"freelist_page"`
	Txid           uint64   `json:"txid"`
	Buckets        int      `json:"buckets"`
	Keys           int      `json:"keys"`
	FileSize       int64    `json:"file_size"`
	Tree           treeOut  `json:"tree"`
}

// treeOut is the root bucket's Stats: page objects of the tree (overflow pages apart).
type treeOut struct {
	Branch         int `json:"branch"`
	BranchOverflow int `json:"branch_overflow"`
	Leaf           int `json:"leaf"`
	LeafOverflow   int `json:"leaf_overflow"`
	InlineBuckets  int `json:"inline_buckets"`
	Depth          int `json:"depth"`
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// walk feeds every bucket (path, sequence) and key/value under b to h, in key order.
func walk(h hash.Hash, b *bolt.Bucket, path [][]byte, out *dumpOut) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			child := b.Bucket(k)
			if child != nil {
				out.Buckets++
				sub := append(append([][]byte{}, path...), k)
				h.Write([]byte{'B'})
				writeField(h, []byte(strconv.Itoa(len(sub))))
				for _, p := range sub {
					writeField(h, p)
				}
				writeField(h, []byte(strconv.FormatUint(child.Sequence(), 10)))
				return walk(h, child, sub, out)
			}
		}
		out.Keys++
		h.Write([]byte{'K'})
		writeField(h, []byte(strconv.Itoa(len(path))))
		for _, p := range path {
			writeField(h, p)
		}
		writeField(h, k)
		writeField(h, v)
		return nil
	})
}

// inspect fills out from a view of db: Check's errors, the meta, the content hash, Stats.
func inspect(db *bolt.DB, out *dumpOut) error {
	out.CheckErrors = []string{}
	out.PageSize = db.Info().PageSize
	out.Buckets, out.Keys = 0, 0
	err := db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			out.CheckErrors = append(out.CheckErrors, e.Error())
		}
		out.FreelistPage, out.FreelistSynced, out.HWM, out.Txid = bolt.InteropMeta(tx)
		rs := bolt.InteropRootStats(tx)
		out.Tree = treeOut{rs.BranchPageN, rs.BranchOverflowN, rs.LeafPageN, rs.LeafOverflowN, rs.InlineBucketN, rs.Depth}
		h := sha256.New()
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			out.Buckets++
			h.Write([]byte{'B'})
			writeField(h, []byte("1"))
			writeField(h, name)
			writeField(h, []byte(strconv.FormatUint(b.Sequence(), 10)))
			return walk(h, b, [][]byte{name}, out)
		})
		out.Hash = hex.EncodeToString(h.Sum(nil))
		return err
	})
	if err != nil {
		return err
	}
	st := db.Stats()
	out.Free, out.Pending = st.FreePageN, st.PendingPageN
	return nil
}

type churnOut struct {
	dumpOut
	Commits int `json:"commits"`
}

type dumpResult struct {
	dumpOut
	// After churn: bbolt's own write transactions on the file, then the same report.
	Churn *churnOut `json:"churn,omitempty"`
}

// churn opens db writable in its own freelist mode and runs n write transactions in a
// scratch bucket (puts of small and overflow values, deletes), dropping the bucket in the
// last one, so the file's contents hash as before.
func churn(path string, synced bool, n int, ps int) (*churnOut, error) {
	db, err := bolt.Open(path, 0o644, &bolt.Options{NoFreelistSync: !synced, Timeout: 5 * time.Second, NoSync: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	m := &maker{rng: rand.New(rand.NewSource(int64(n))), ps: ps}
	m.junk = make([]byte, 4*ps+4096)
	m.rng.Read(m.junk)
	name := []byte("__interop_churn__")
	var keys [][]byte
	for t := 0; t < n; t++ {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			for j := 0; j < 40; j++ {
				k := []byte(fmt.Sprintf("c%06d", m.rng.Intn(1<<16)))
				size := 1 + m.rng.Intn(100)
				if j%13 == 0 {
					size = ps + m.rng.Intn(2*ps)
				}
				if err := b.Put(k, m.value(size)); err != nil {
					return err
				}
				keys = append(keys, k)
			}
			for j := 0; j < 20 && len(keys) > 0; j++ {
				i := m.rng.Intn(len(keys))
				if err := b.Delete(keys[i]); err != nil {
					return err
				}
				keys[i] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
			}
			if t == n-1 {
				return tx.DeleteBucket(name)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := &churnOut{Commits: n}
	if err := inspect(db, &out.dumpOut); err != nil {
		return nil, err
	}
	return out, nil
}

func cmdDump(args []string) error {
	fs := flag.NewFlagSet("dump", flag.ExitOnError)
	path := fs.String("path", "", "database file")
	writable := fs.Bool("writable", false, "open read-write (NoFreelistSync, so the open writes nothing)")
	churnN := fs.Int("churn", 0, "then run this many bbolt write transactions on the file and report again")
	_ = fs.Parse(args)
	info, err := os.Stat(*path)
	if err != nil {
		return err
	}
	opts := &bolt.Options{ReadOnly: !*writable, NoFreelistSync: *writable, Timeout: 5 * time.Second}
	db, err := bolt.Open(*path, 0o644, opts)
	if err != nil {
		return emit(map[string]string{"open_error": err.Error()})
	}
	out := dumpResult{}
	out.FileSize = info.Size()
	err = inspect(db, &out.dumpOut)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if *churnN > 0 {
		if out.Churn, err = churn(*path, out.FreelistSynced, *churnN, out.PageSize); err != nil {
			return err
		}
		if info, err = os.Stat(*path); err != nil {
			return err
		}
		out.Churn.FileSize = info.Size()
	}
	return emit(out)
}

// ---------------------------------------------------------------- compact

func cmdCompact(args []string) error {
	fs := flag.NewFlagSet("compact", flag.ExitOnError)
	src := fs.String("src", "", "database to compact (read only)")
	dst := fs.String("dst", "", "new database (must not exist)")
	txMax := fs.Int64("tx-max-size", 65536, "bytes of keys and values per transaction (0: one)")
	pageSize := fs.Int("page-size", 0, "page size of the new file (0: the source's)")
	noSync := fs.Bool("no-sync", false, "skip fdatasync on the new file's commits")
	_ = fs.Parse(args)
	if _, err := os.Stat(*dst); err == nil {
		return fmt.Errorf("compact: %s exists", *dst)
	}
	sdb, err := bolt.Open(*src, 0o444, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer sdb.Close()
	ps := *pageSize
	if ps == 0 {
		ps = sdb.Info().PageSize
	}
	ddb, err := bolt.Open(*dst, 0o644, &bolt.Options{PageSize: ps, NoSync: *noSync})
	if err != nil {
		return err
	}
	begin := time.Now()
	err = bolt.Compact(ddb, sdb, *txMax)
	wall := time.Since(begin).Nanoseconds()
	if cerr := ddb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	si, err := os.Stat(*src)
	if err != nil {
		return err
	}
	di, err := os.Stat(*dst)
	if err != nil {
		return err
	}
	return emit(map[string]int64{"wall_ns": wall, "src_size": si.Size(), "dst_size": di.Size()})
}

// ---------------------------------------------------------------- replay

func parseTrace(path string) (uint64, []uint64, []bolt.InteropOp, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, nil, err
	}
	defer f.Close()
	var hwm uint64
	var free []uint64
	var ops []bolt.InteropOp
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		nums := make([]uint64, len(fields)-1)
		for i, s := range fields[1:] {
			if nums[i], err = strconv.ParseUint(s, 10, 64); err != nil {
				return 0, nil, nil, fmt.Errorf("%s:%d: %v", path, line, err)
			}
		}
		want := map[string]int{"H": 1, "S": 2, "A": 1, "F": 1, "D": 2, "C": 0}[fields[0]]
		if _, ok := map[string]bool{"H": true, "S": true, "A": true, "F": true, "D": true, "C": true}[fields[0]]; !ok || len(nums) != want {
			return 0, nil, nil, fmt.Errorf("%s:%d: bad line %q", path, line, sc.Text())
		}
		switch fields[0] {
		case "H":
			hwm = nums[0]
		case "S":
			for id := nums[0]; id < nums[0]+nums[1]; id++ {
				free = append(free, id)
			}
		case "A":
			ops = append(ops, bolt.InteropOp{Code: 'A', A: nums[0]})
		case "F":
			ops = append(ops, bolt.InteropOp{Code: 'F', A: nums[0]})
		case "D":
			ops = append(ops, bolt.InteropOp{Code: 'D', A: nums[0], B: nums[1]})
		default:
			ops = append(ops, bolt.InteropOp{Code: 'C'})
		}
	}
	return hwm, free, ops, sc.Err()
}

func cmdReplay(args []string) error {
	fs := flag.NewFlagSet("replay", flag.ExitOnError)
	path := fs.String("trace", "", "trace file in the freelist project's format")
	freelist := fs.String("freelist", "array", "array or hashmap")
	validate := fs.Bool("validate", false, "check every step against a model of the free pages (slower; wall_ns then includes the checks)")
	_ = fs.Parse(args)
	if *freelist != "array" && *freelist != "hashmap" {
		return fmt.Errorf("replay: -freelist %q: want array or hashmap", *freelist)
	}
	hwm, free, ops, err := parseTrace(*path)
	if err != nil {
		return err
	}
	run := bolt.InteropReplay
	if *validate {
		run = bolt.InteropValidate
	}
	res, err := run(hwm, free, ops, *freelist == "hashmap")
	if err != nil {
		return fmt.Errorf("%s: %v", *path, err)
	}
	h := sha256.New()
	w := bufio.NewWriter(h)
	for _, id := range res.FreeIDs {
		w.WriteString(strconv.FormatUint(id, 10))
		w.WriteByte('\n')
	}
	w.Flush()
	return emit(map[string]interface{}{
		"freelist":    *freelist,
		"ops":         len(ops),
		"final_hwm":   res.FinalHWM,
		"grown":       res.Grown,
		"free_count":  len(res.FreeIDs),
		"free_sha256": hex.EncodeToString(h.Sum(nil)),
		"pending":     res.Pending,
		"wall_ns":     res.WallNs,
	})
}
