"""A small writer of bbolt B+trees through :class:`~freelist.PageFile`, for the interop tests.

:class:`TreeWriter` keeps a tree of buckets in Python and, at each commit, writes
the buckets it changed (and their ancestors) copy-on-write into pages the
transaction allocates, freeing the pages they replace, then points the meta's
root at the new root leaf.  Every bucket is one leaf page (with overflow pages
when its elements need them), or inline in its parent's leaf when small and
childless.  After every commit the file is a valid bbolt database whose pages
are exactly the tree's and the free or pending ones, so bbolt's ``tx.Check``
must be clean and its content hash (:func:`gohelper.content_hash`) must equal
the tree's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from freelist import Transaction
from tests.bboltfile import BUCKET_FLAG, bucket, leaf_body, page
from tests.interop.gohelper import Tree


@dataclass(eq=False)
class Bucket:
    """A bucket: its keys, its sub-buckets, and where it was last written."""

    keys: dict[bytes, bytes] = field(default_factory=dict)
    subs: dict[bytes, Bucket] = field(default_factory=dict)
    inline_ok: bool = False
    run: tuple[int, int] | None = None  # its leaf pages; None: inline or not written yet
    inline: bytes = b""  # its inline page, when written inline
    dirty: bool = True

    def as_tree(self) -> Tree:
        out: Tree = dict(self.keys)
        for name, sub in self.subs.items():
            out[name] = sub.as_tree()
        return out


class TreeWriter:
    """Random bucket churn over a :class:`~freelist.PageFile` of ``page_size`` pages."""

    def __init__(self, page_size: int, seed: int = 0) -> None:
        self.ps = page_size
        self.rng = random.Random(seed)
        self.root = Bucket()
        self.named = 0
        self.to_free: list[tuple[int, int]] = []

    def tree(self) -> Tree:
        """The tree as :func:`gohelper.content_hash` takes it."""
        return self.root.as_tree()

    # -- changes to the model ------------------------------------------------

    def _path(self) -> list[Bucket]:
        """A random path from the root to some bucket (the root excluded from picks)."""
        path = [self.root]
        while path[-1].subs and (len(path) == 1 or self.rng.random() < 0.4):
            path.append(self.rng.choice(list(path[-1].subs.values())))
        return path

    def _value(self) -> bytes:
        n = self.rng.randint(1, 60)
        if self.rng.random() < 0.08:
            n = self.rng.randint(self.ps // 2, 3 * self.ps)  # the leaf takes overflow pages
        return self.rng.randbytes(n)

    def _drop(self, b: Bucket) -> None:
        if b.run is not None:
            self.to_free.append(b.run)
        for sub in b.subs.values():
            self._drop(sub)

    def mutate(self) -> None:
        """Some random changes: buckets made (nested, inline) and dropped, keys put
        and deleted; every changed bucket and its ancestors are marked dirty."""
        for _ in range(self.rng.randint(2, 5)):
            path = self._path()
            b = path[-1]
            r = self.rng.random()
            if r < 0.25 or b is self.root:
                self.named += 1
                tiny = self.rng.random() < 0.3 and b is not self.root
                new = Bucket(inline_ok=tiny)
                for _ in range(self.rng.randint(0, 2 if tiny else 12)):
                    new.keys[b"k%05d" % self.rng.randrange(10**5)] = (
                        self.rng.randbytes(4) if tiny else self._value()
                    )
                b.subs[b"s%05d" % self.named] = new
            elif r < 0.35 and (len(path) > 2 or len(self.root.subs) > 3):
                parent = path[-2]
                name = next(k for k, v in parent.subs.items() if v is b)
                self._drop(parent.subs.pop(name))
                path.pop()
            elif r < 0.55 and b.keys:
                for k in self.rng.sample(sorted(b.keys), k=min(len(b.keys), 3)):
                    del b.keys[k]
            elif b.inline_ok:
                b.keys[b"k%05d" % self.rng.randrange(10**5)] = self.rng.randbytes(4)
            else:
                for _ in range(self.rng.randint(1, 8)):
                    b.keys[b"k%05d" % self.rng.randrange(10**5)] = self._value()
            for p in path:
                p.dirty = True

    # -- writing -----------------------------------------------------------------

    def _write(self, tx: Transaction, b: Bucket, is_root: bool) -> None:
        for sub in b.subs.values():
            if sub.dirty:
                self._write(tx, sub, False)
        items = [(0, k, v) for k, v in b.keys.items()]
        for name, sub in b.subs.items():
            value = bucket(0, sub.inline) if sub.run is None else bucket(sub.run[0])
            items.append((BUCKET_FLAG, name, value))
        items.sort(key=lambda it: it[1])
        body = leaf_body(items)
        if b.run is not None:
            self.to_free.append(b.run)
            b.run = None
        if not is_root and b.inline_ok and not b.subs and len(body) <= self.ps // 4:
            b.inline = body
        else:
            n = -(-len(body) // self.ps)
            start = tx.allocate(n)
            tx.write(start, page(body, start, self.ps))
            b.run = (start, n)
        b.dirty = False

    def flush(self, tx: Transaction) -> None:
        """Write what changed, free what it replaced, set the root; plus a scratch
        run allocated, written and freed in the same transaction."""
        self._write(tx, self.root, True)
        assert self.root.run is not None
        tx.root = self.root.run[0]
        for start, n in self.to_free:
            tx.free(start, n)
        self.to_free.clear()
        n = self.rng.randint(1, 4)
        start = tx.allocate(n)
        tx.write(start, self.rng.randbytes(n * self.ps))
        tx.free(start, n)
