"""Child process of the crash test: commit forever, report each commit that returned.

Usage: python crash_writer.py PATH FREELIST FORMAT SEED [SHRINK] (FORMAT: bbolt, log or none)

Each transaction frees the data runs the root lists, allocates new runs of
random sizes, fills each with its txid, writes a new root page listing
(start, n) of every run and the txid, commits, and only then prints the txid.
With SHRINK=1 every third transaction also allocates a run of 100 to 400
pages, which the next one frees: the file grows, and commits cut it back.
"""

from __future__ import annotations

import random
import struct
import sys

from freelist import PageFile


def root_walk(pf: PageFile) -> list[tuple[int, int]]:
    """Runs in use: the root page and the data runs it lists."""
    root = pf.meta.root
    if not root:
        return []
    tx = pf.begin(False)
    try:
        raw = tx.read(root)
    finally:
        tx.rollback()
    _txid, count = struct.unpack_from("<QI", raw)
    return [(root, 1)] + [struct.unpack_from("<QQ", raw, 12 + 16 * i) for i in range(count)]


def main() -> None:
    path, kind, fmt, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    shrink = sys.argv[5:] == ["1"]
    r = random.Random(seed)
    pf = PageFile.open(
        path, freelist=kind, freelist_format=fmt, reachable=root_walk, page_size=1024
    )
    while True:
        with pf.update() as tx:
            old = root_walk(pf)
            for start, n in old:
                tx.free(start, n)
            runs = []
            sizes = [r.choice([1, 1, 1, 2, 3, 8]) for _ in range(r.randint(1, 6))]
            if shrink and tx.txid % 3 == 0:
                sizes.append(r.randint(100, 400))
            for n in sizes:
                start = tx.allocate(n)
                tx.write(start, struct.pack("<Q", tx.txid) * (n * 1024 // 8))
                runs.append((start, n))
            root = tx.allocate(1)
            body = struct.pack("<QI", tx.txid, len(runs))
            body += b"".join(struct.pack("<QQ", s, n) for s, n in runs)
            tx.write(root, body)
            tx.root = root
            txid = tx.txid
        print(txid, flush=True)


if __name__ == "__main__":
    main()
