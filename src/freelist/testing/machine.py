"""The conformance state machine: a freelist driven beside a page-level model.

The model knows pages only one at a time:

* ``free``: the set of free pages;
* ``pending``: page -> ``(freeing txid F, allocating txid A, first page of the
  freed run)``, A = 0 when the allocator of the page is unknown;
* ``in_use``: pages neither free nor pending, with ``records``: first page of
  a run the freelist allocated -> the txid that allocated it (what bbolt keeps
  in ``allocs`` and hands to the pending entry when that page is freed).

Transactions behave as in bbolt: one writer at a time with txid ``tx``, which
advances at commit; readers see a committed snapshot.  Because txids only grow,
a page is always allocated no later than it is freed (A <= F), which is what
bbolt's release rules assume.

Release rules, from bbolt's ReleasePendingPages/releaseRange (written out in
:mod:`freelist.testing.model`):

* ``release(t)``: pages with F <= t;
* ``release_range(b, e)``: pages with b <= F <= e and b <= A <= e;
* ``release_pending()`` with readers r1 < ... < rk: pages with F < r1, and
  pages whose A and F lie in one gap ``[ri + 1, ri+1 - 1]`` or ``[rk + 1, max]``
  (A != 0), that is, pages no reader r with A <= r <= F can see; with no
  reader open, every page (F <= 2**64-2).

The rules allocate, free (runs the freelist allocated, pages it never saw, and
runs it must refuse), commit (opening a reader on the new snapshot or not, and
beginning the next writer at once or not), release in each of the three ways,
open and close readers, roll back, probe ``freed()``, reload, and pass values
outside their domain that must be refused.  Each allocation is checked against
the machine's allocation rule
(:attr:`FreelistMachine.choice`), and after every step the freelist's views
(:func:`~freelist.testing.model.check`) and the model must agree.
"""

from __future__ import annotations

import unittest
from collections.abc import Callable
from typing import Any, ClassVar

from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from .._shared import SharedFreelist
from ..errors import DoubleFreeError, InvalidArgumentError, MetaPageError
from ..protocol import Freelist
from .model import (
    CHOICES,
    Choice,
    allowed_starts,
    check,
    kept_by_release_pending,
    observe,
    released_by_range,
)
from .strategies import free_id_lists, run_lengths

__all__ = ["HWM", "FreelistMachine"]

#: Pages ``2 .. HWM-1`` exist when the machine starts; allocations the freelist
#: cannot serve grow the file above it.
HWM = 64

#: The members a freelist must have (those of the Freelist protocol).
_PROTOCOL = sorted(m for m in vars(Freelist) if not m.startswith("_"))

#: Builds a freelist from a sorted list of free page ids.
Factory = Callable[[list[int]], Freelist]


def _short(value: object) -> str:
    """A call's argument as the failing program shows it (long lists cut)."""
    if isinstance(value, list) and len(value) > 8:
        return f"[{', '.join(map(str, value[:8]))}, ... {len(value)} ids]"
    return repr(value)


def _refuses(
    error: type[Exception],
    fl: Freelist,
    call: Callable[[], object],
    what: str,
    log: list[str] | None = None,
) -> None:
    """``call()`` raises ``error`` and leaves everything ``fl`` shows unchanged;
    the call goes to ``log`` (the failing program's comments)."""
    prior = observe(fl)
    if log is not None:
        log.append(f"{what} refused")
    try:
        call()
    except error:
        pass
    else:
        raise AssertionError(f"{what} was accepted; it must raise {error.__name__}")
    after = observe(fl)
    changed = sorted(k for k in prior if prior[k] != after.get(k))
    assert not changed, f"{what} raised {error.__name__} but changed {', '.join(changed)}"


class FreelistMachine(RuleBasedStateMachine):
    """One freelist and its page-level model, in lockstep.

    Subclass it and set :attr:`factory` (and :attr:`choice`), or let
    :meth:`for_factory` do it; add rules or invariants of your own in the
    subclass.  ``self.fl`` is the freelist; the model is ``self.free``,
    ``self.pending``, ``self.in_use``, ``self.records``, ``self.readers`` and
    ``self.tx`` (the writer's txid).
    """

    #: Builds the freelist under test from sorted free page ids.
    factory: ClassVar[Factory | None] = None
    #: The allocation rule checked at every ``allocate`` (see :data:`~freelist.testing.CHOICES`).
    choice: ClassVar[str] = "any"

    @classmethod
    def for_factory(
        cls,
        factory: Factory,
        *,
        choice: Choice = "any",
        settings: hypothesis_settings | None = None,
        name: str | None = None,
    ) -> type[unittest.TestCase]:
        """A :class:`unittest.TestCase` class (which pytest collects too) that
        runs this machine on freelists built by ``factory``, checking the
        allocation rule ``choice``.  Assign it to a module-level name starting
        with ``Test``.  ``settings`` (a :class:`hypothesis.settings`) replaces
        the machine's default: the loaded Hypothesis profile, no deadline.

        :raises InvalidArgumentError: ``choice`` is not one of
            :data:`~freelist.testing.CHOICES`, or ``factory`` is not callable.

        Runtime complexity: O(1); running the test costs ``max_examples``
        runs of at most ``stateful_step_count`` steps each.
        """
        machine = cls.bind(factory, choice=choice, name=name)
        case: type[unittest.TestCase] = machine.TestCase
        if settings is not None:
            case.settings = settings  # type: ignore[attr-defined]
        case.__name__ = case.__qualname__ = f"Test{machine.__name__}"
        return case

    @classmethod
    def bind(
        cls, factory: Factory, *, choice: Choice = "any", name: str | None = None
    ) -> type[FreelistMachine]:
        """A subclass of this machine bound to ``factory`` and ``choice``,
        named ``name`` (default: from the factory's name).

        :raises InvalidArgumentError: ``choice`` is not one of
            :data:`~freelist.testing.CHOICES`, or ``factory`` is not callable.

        Runtime complexity: O(1).
        """
        if choice not in CHOICES:
            raise InvalidArgumentError(
                f"choice must be one of {', '.join(CHOICES)}, got {choice!r}"
            )
        if not callable(factory):
            raise InvalidArgumentError(
                f"factory must be callable (ids -> freelist), not {type(factory).__name__}"
            )
        label = name or getattr(factory, "__name__", None) or type(factory).__name__
        attrs: dict[str, Any] = {"factory": staticmethod(factory), "choice": choice}
        return type(f"{label}Machine", (cls,), attrs)

    # -- start --------------------------------------------------------------

    @initialize(ids=free_id_lists(max_page=HWM, min_runs=4))
    def build(self, ids: list[int]) -> None:
        """Build the freelist from ``ids`` and the model beside it."""
        factory = type(self).factory
        if factory is None:
            raise InvalidArgumentError(
                f"{type(self).__name__}.factory is not set: use FreelistMachine.for_factory()"
            )
        self.calls = []
        self.fl: Freelist = factory(list(ids))
        assert isinstance(self.fl, Freelist), (
            f"the factory returned a {type(self.fl).__name__!r}, which lacks members of the "
            "Freelist protocol: " + ", ".join(m for m in _PROTOCOL if not hasattr(self.fl, m))
        )
        self.free: set[int] = set(ids)
        self.pending: dict[int, tuple[int, int, int]] = {}  # page -> (F, A, run start)
        self.in_use: set[int] = set(range(2, HWM)) - self.free
        self.records: dict[int, int] = {}
        self.hwm = HWM
        self.tx = 2  # the writer's txid; snapshot tx - 1 is the last committed
        self.writer_runs: list[tuple[int, int]] = []  # allocated by the freelist at tx
        self.readers: list[int] = []
        #: runs the freelist allocated that are still wholly in use: (start, n)
        self.allocated: list[tuple[int, int]] = []
        self.calls.append(f"writer txid {self.tx}")

    # -- the calls of each step ---------------------------------------------

    #: The freelist calls of the current step, as text: the failing program
    #: Hypothesis prints shows them after each step (``# allocate(3, 2) -> 5``),
    #: so every call's txid is on the page.
    calls: list[str]

    def call(self, name: str, *args: object) -> Any:
        """Call ``self.fl.name(*args)`` and log the call and its result for the
        failing program (see :attr:`calls`); rules of your own can use it too.

        Runtime complexity: that of the call.
        """
        text = f"{name}({', '.join(map(_short, args))})"
        try:
            out = getattr(self.fl, name)(*args)
        except Exception as e:
            self.calls.append(f"{text} raised {type(e).__name__}")
            raise
        self.calls.append(text if out is None else f"{text} -> {out!r}")
        return out

    def _repr_step(self, rule: Any, data: Any, result: Any) -> str:
        # Hypothesis's line for a step, with the step's freelist calls as a comment.
        line: str = super()._repr_step(rule, data, result)
        calls = getattr(self, "calls", None)
        if calls:
            line += "  # " + "; ".join(calls)
            calls.clear()
        return line

    # -- model helpers ------------------------------------------------------

    def allowed_starts(self, n: int) -> set[int]:
        """The starts ``allocate(tx, n)`` may return now (0: none); override to
        check a rule of your own."""
        return allowed_starts(self.choice, self.free, n)

    def release_where(self, released: Callable[[int, int], bool]) -> None:
        """Model of a release: free every pending page whose ``(F, A)`` is ``released``."""
        for p, (f, a, _) in list(self.pending.items()):
            if released(f, a):
                del self.pending[p]
                self.free.add(p)

    def release_pending_model(self) -> None:
        """Model of ``release_pending()`` with the open readers."""
        self.release_where(lambda f, a: not kept_by_release_pending(a, f, self.readers))

    def take_free(self, start: int, k: int) -> None:
        """Model of ``free(self.tx, start, k)`` on in-use pages."""
        a = self.records.pop(start, 0)
        for p in range(start, start + k):
            self.in_use.remove(p)
            self.pending[p] = (self.tx, a, start)
        # Runs the free touched leave the list of allocated runs; a part before
        # `start` keeps its first page, hence its record, and stays listed.
        kept = []
        for s, n in self.allocated:
            if s + n <= start or s >= start + k:
                kept.append((s, n))
            elif s < start:
                kept.append((s, start - s))
        self.allocated = kept

    # -- rules --------------------------------------------------------------

    @rule(n=run_lengths)
    def allocate(self, n: int) -> None:
        """Allocate ``n`` pages: a run of free pages by the rule, else 0 (and
        the file grows, as in bbolt)."""
        allowed = self.allowed_starts(n)
        got = self.call("allocate", self.tx, n)
        assert got in allowed, (
            f"allocate({self.tx}, {n}) gave {got}; allowed by {self.choice!r}: {sorted(allowed)}"
        )
        if got == 0:
            # bbolt grows the file; the freelist never hears of these pages.
            self.in_use.update(range(self.hwm, self.hwm + n))
            self.hwm += n
            return
        run = set(range(got, got + n))
        assert run <= self.free, f"allocate gave pages that are not free: {sorted(run - self.free)}"
        self.free -= run
        self.in_use |= run
        self.records[got] = self.tx
        self.writer_runs.append((got, n))
        self.allocated.append((got, n))

    @precondition(lambda self: self.allocated)
    @rule(pick=st.integers(0, 10**6), skip=st.integers(0, 3), n=st.integers(0, 9))
    def free_an_allocated_run(self, pick: int, skip: int, n: int) -> None:
        """Free a run the freelist allocated (in this or an earlier transaction):
        whole (``n == 0``) or part of it, from its first page or further in."""
        s, length = self.allocated[pick % len(self.allocated)]
        if n == 0:
            start, k = s, length
        else:
            start = s + min(skip, length - 1)
            k = min(n, s + length - start)
        self.call("free", self.tx, start, k)
        self.take_free(start, k)

    @precondition(lambda self: self.in_use)
    @rule(pick=st.integers(0, 10**6), n=run_lengths)
    def free_in_use_pages(self, pick: int, n: int) -> None:
        """Free any run of in-use pages: pages the freelist never saw (in use
        from the start, or grown above the high-water mark), parts of allocated
        runs, or runs spanning both."""
        used = sorted(self.in_use)
        start = used[pick % len(used)]
        k = 1
        while k < n and start + k in self.in_use:
            k += 1
        self.call("free", self.tx, start, k)
        self.take_free(start, k)

    @rule(pick=st.integers(0, 10**6), before=st.integers(0, 3), n=run_lengths)
    def refused_free(self, pick: int, before: int, n: int) -> None:
        """A run touching a free or pending page, or a meta page: refused
        (:class:`~freelist.DoubleFreeError`, :class:`~freelist.MetaPageError`),
        and nothing changes."""
        known = sorted(self.free | set(self.pending))
        if known and pick % 5:
            page = known[pick % len(known)]
            start = max(2, page - before)
            n = max(n, page - start + 1)  # the run covers `page`
            error: type[Exception] = DoubleFreeError
        else:
            start, error = pick % 2, MetaPageError
        _refuses(
            error,
            self.fl,
            lambda: self.fl.free(self.tx, start, n),
            f"free({self.tx}, {start}, {n})",
            self.calls,
        )

    @rule(which=st.integers(0, 4), n=run_lengths)
    def refused_argument(self, which: int, n: int) -> None:
        """A value outside its domain (a run of 0 pages, txid 0, a negative
        page id or txid): refused with :class:`~freelist.InvalidArgumentError`
        (or a subclass), and nothing changes."""
        fl, tx = self.fl, self.tx
        calls: list[tuple[Callable[[], object], str]] = [
            (lambda: fl.allocate(tx, 0), f"allocate({tx}, 0)"),
            (lambda: fl.allocate(0, n), f"allocate(0, {n})"),
            (lambda: fl.free(tx, self.hwm, 0), f"free({tx}, {self.hwm}, 0)"),
            (lambda: fl.free(0, self.hwm, n), f"free(0, {self.hwm}, {n})"),
            (lambda: fl.release(-n), f"release({-n})"),
        ]
        call, what = calls[which]
        _refuses(InvalidArgumentError, fl, call, what, self.calls)

    @rule(reader=st.booleans(), begin_next=st.booleans())
    def commit(self, reader: bool, begin_next: bool) -> None:
        """The writer commits.  A reader may open on the new snapshot at once
        (``reader``), and bbolt releases pending pages when the next writer
        begins, which may be at once or after more readers opened."""
        self.tx += 1
        self.writer_runs = []
        self.calls.append(f"txid {self.tx - 1} commits")
        if reader:
            self.call("add_reader", self.tx - 1)
            self.readers.append(self.tx - 1)
        if begin_next:
            self.call("release_pending")
            self.release_pending_model()
        self.calls.append(f"writer txid {self.tx}")

    @rule()
    def release_pending(self) -> None:
        """Release what no open reader can see."""
        self.call("release_pending")
        self.release_pending_model()

    @rule(back=st.integers(0, 6))
    def release(self, back: int) -> None:
        """Release the pages pending for a txid up to ``tx - back``."""
        t = max(0, self.tx - back)
        self.call("release", t)
        self.release_where(lambda f, _a: f <= t)

    @rule(b=st.integers(0, 8), e=st.integers(-1, 8))
    def release_range(self, b: int, e: int) -> None:
        """Release the pages allocated and freed within a range of txids."""
        begin = max(0, self.tx - b)
        end = max(0, self.tx - e)
        self.call("release_range", begin, end)
        self.release_where(lambda f, a: released_by_range(a, f, begin, end))

    @rule(back=st.integers(0, 4))
    def open_reader(self, back: int) -> None:
        """Open a reader on a recent snapshot."""
        r = max(0, self.tx - 1 - back)
        self.call("add_reader", r)
        self.readers.append(r)

    @rule(pick=st.integers(0, 10**6))
    def close_reader(self, pick: int) -> None:
        """Close an open reader; or close one that is not open, which is
        refused (:class:`~freelist.InvalidArgumentError`) and changes nothing."""
        if not self.readers or pick % 7 == 0:
            r = self.tx + pick % 3  # no reader is this new: refused, nothing changes
            _refuses(
                InvalidArgumentError,
                self.fl,
                lambda: self.fl.remove_reader(r),
                f"remove_reader({r}) with no such reader open",
                self.calls,
            )
            return
        r = self.readers.pop(pick % len(self.readers))
        self.call("remove_reader", r)

    @rule()
    def rollback(self) -> None:
        """The writer rolls back: what it freed is in use again, each freed run
        with the allocation record it had; what it allocated is free again."""
        tx = self.tx
        self.call("rollback", tx)
        restored: dict[int, int] = {}
        for p, (f, a, first) in list(self.pending.items()):
            if f == tx:
                del self.pending[p]
                self.in_use.add(p)
                if a and a != tx:
                    self.records[first] = a
                    restored[first] = restored.get(first, 0) + 1
        for s, n in self.writer_runs:
            if self.records.get(s) == tx:
                del self.records[s]
            for p in range(s, s + n):
                if p in self.in_use:
                    self.in_use.remove(p)
                    self.free.add(p)
        self.writer_runs = []
        self.allocated = [
            (s, n)
            for s, n in [*self.allocated, *restored.items()]
            if all(p in self.in_use for p in range(s, s + n))
        ]

    @rule(pick=st.integers(0, 10**6))
    def probe(self, pick: int) -> None:
        """``freed(p)`` is true exactly for free and pending pages."""
        p = pick % (self.hwm + 4)
        got = self.call("freed", p)
        assert got == (p in self.free or p in self.pending), f"freed({p}) is {got}"

    @rule(drop=st.sets(st.integers(0, 10**6), max_size=4))
    def reload(self, drop: set[int]) -> None:
        """Re-read a freelist that lists every pending page and some of the free
        ones (pages a page walk found in use): pending pages stay pending."""
        free = sorted(self.free)
        gone = {free[i % len(free)] for i in drop} if free else set()
        self.call("reload", sorted((self.free - gone) | set(self.pending)))
        self.free -= gone
        self.in_use |= gone

    # -- invariants ---------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        """The views agree (:func:`~freelist.testing.model.check`, which also
        reads the sorted id array, patched since the last step), and match the
        model: free ids, pending ids by txid, counts, the id array, and the
        open readers when the freelist exposes ``readers``."""
        self.calls.clear()  # the step's line was printed (or not: a run not shown)
        fl = check(self.fl)
        free = fl.free_page_ids()
        want = sorted(self.free)
        if free != want:
            lost = sorted(set(want) - set(free))
            extra = sorted(set(free) - set(want))
            raise AssertionError(f"free ids: missing {lost}, not free but listed {extra}")
        by_tx: dict[int, list[int]] = {}
        for p, (f, _, _) in sorted(self.pending.items()):
            by_tx.setdefault(f, []).append(p)
        pending = fl.pending_page_ids()
        assert pending == by_tx, f"pending ids {pending}; the model has {by_tx}"
        assert fl.free_count == len(self.free), f"free_count {fl.free_count}"
        assert fl.pending_count == len(self.pending), f"pending_count {fl.pending_count}"
        assert fl.count == len(self.free) + len(self.pending), f"count {fl.count}"
        assert fl.page_id_array().tolist() == sorted(self.free | set(self.pending))
        readers = getattr(fl, "readers", None)
        if readers is not None:
            assert list(readers) == sorted(self.readers), f"readers {readers}"
        if isinstance(fl, SharedFreelist):
            assert fl._allocs == self.records
        assert self.free.isdisjoint(self.in_use)
        assert self.in_use.isdisjoint(self.pending)
