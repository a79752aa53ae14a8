"""A conformance suite for any freelist: does it keep bbolt's semantics?

:func:`assert_conforms` drives a freelist of yours (anything satisfying the
:class:`~freelist.Freelist` protocol, built by ``factory(ids)`` from sorted free
page ids) with Hypothesis, beside a page-level model of bbolt's transaction
rules, and raises :class:`AssertionError` with the shortest failing sequence of
calls Hypothesis finds when the freelist hands a page out twice, reuses a
pending page a reader can still see, releases too much or too little, loses
pages on rollback, shows views that disagree with each other (free ids, spans,
pending ids, the sorted id array, the counts), or changes state in a call it
refuses::

    from freelist.testing import assert_conforms
    assert_conforms(MyFreelist, choice="first-fit")

The library's own freelists are tested with this same suite.  Also here:

* :class:`FreelistMachine`, the Hypothesis state machine, to extend with rules
  of your own or to run under pytest with your own settings
  (:meth:`FreelistMachine.for_factory`);
* :mod:`freelist.testing.model`, the page-level model;
* :mod:`freelist.testing.strategies`, the Hypothesis strategies (free id
  lists, run lengths, call sequences);
* :data:`BUILTIN_CHOICES`, the allocation rule of every built-in freelist.

Hypothesis is needed only here: ``pip install 'freelist[testing]'``.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as _e:  # pragma: no cover - exercised with hypothesis hidden
    from ..errors import MissingExtraError

    raise MissingExtraError(
        "freelist.testing needs Hypothesis, which is not installed: "
        "pip install 'freelist[testing]'",
        name="hypothesis",
    ) from _e

from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test

from ..errors import InvalidArgumentError
from .machine import HWM, Factory, FreelistMachine
from .model import CHOICES, Choice, allowed_starts, check, observe

__all__ = [
    "BUILTIN_CHOICES",
    "CHOICES",
    "HWM",
    "Choice",
    "Factory",
    "FreelistMachine",
    "allowed_starts",
    "assert_conforms",
    "check",
    "observe",
]

#: The allocation rule of every built-in freelist spec
#: (:func:`freelist.registry.builtin_specs`), checked by the library's own tests.
BUILTIN_CHOICES: dict[str, Choice] = {
    "array": "first-fit",
    "hashmap:best-fit": "best-fit",
    "hashmap:bbolt": "exact-fit",
    "hashmap:first-fit": "first-fit",
}


def _positive(value: object, name: str) -> int:
    if type(value) is not int or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    return value


def assert_conforms(
    factory: Factory,
    *,
    choice: Choice = "any",
    max_examples: int = 200,
    stateful_step_count: int = 50,
    derandomize: bool = False,
) -> None:
    """Check that the freelists ``factory(ids)`` builds keep bbolt's semantics.

    Runs :class:`FreelistMachine` for ``max_examples`` random programs of up
    to ``stateful_step_count`` calls each, each on a new freelist built from
    sorted free ids in ``[2, 64)``, and checks after every call the views and
    the model (see :mod:`freelist.testing.machine`), and at every ``allocate``
    the allocation rule ``choice`` (one of :data:`CHOICES`: ``"any"`` accepts
    any run of ``n`` free pages, ``"first-fit"`` wants the lowest-starting one,
    ``"best-fit"`` the start of the shortest free run that fits, lowest start
    on ties, ``"exact-fit"`` bbolt's hashmap rule).  Refused calls must raise
    the library's errors (:class:`~freelist.DoubleFreeError`,
    :class:`~freelist.MetaPageError`, :class:`~freelist.InvalidArgumentError`)
    and leave everything the freelist shows unchanged.

    The freelist need not derive from the library's classes; its ``_check()``
    method, if it has one, runs after every call, and its ``readers``
    property, if it has one, is compared with the open readers.  Failing
    examples are not saved between runs; ``derandomize=True`` makes the run
    repeat exactly.

    :raises AssertionError: the freelist broke a rule: the message gives the
        first failure and Hypothesis's shortest failing program, one call a
        line (``state.allocate(n=2)`` and so on), and chains the original
        exception.  Any exception the freelist raises where none is expected
        counts as a failure too.
    :raises InvalidArgumentError: a bad ``choice``, a ``factory`` that is not
        callable, or a count that is not a positive int.

    Runtime complexity: O(max_examples x stateful_step_count) calls, each
    followed by the checks (O(pages) on 64 or so pages), plus the shrinking
    of a failure.
    """
    machine = FreelistMachine.bind(factory, choice=choice)
    settings = hypothesis_settings(
        max_examples=_positive(max_examples, "max_examples"),
        stateful_step_count=_positive(stateful_step_count, "stateful_step_count"),
        derandomize=bool(derandomize),
        deadline=None,
        database=None,
        print_blob=False,
        report_multiple_bugs=False,
        # Phase.explain re-runs the failure many times for a note of little use here.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    label = getattr(factory, "__qualname__", None) or repr(factory)
    try:
        run_state_machine_as_test(machine, settings=settings)
    except Exception as e:
        raise AssertionError(_report(label, choice, e)) from e


def _report(label: str, choice: str, error: BaseException) -> str:
    notes: list[str] = list(getattr(error, "__notes__", []))
    lines = [
        f"{label} does not conform (choice={choice!r}): {type(error).__name__}: {error}",
        *notes,
    ]
    return "\n".join(lines)
