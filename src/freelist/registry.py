"""One registry of freelists by name, used by PageFile, traces and the CLI.

A *freelist spec* is a string that names a freelist and, optionally, its
allocation policy:

``array``
    :class:`~freelist.ArrayFreelist`, bbolt's legacy first-fit array;
``hashmap`` or ``hashmap:POLICY``
    :class:`~freelist.HashmapFreelist` with one of
    :data:`~freelist.POLICIES` (default ``best-fit``);
``package.module:Name``
    any importable callable (usually a class) that builds an object satisfying
    the :class:`~freelist.Freelist` protocol from a sorted list of free page
    ids, for example a freelist of your own.

:func:`resolve` turns a spec into a :class:`FreelistSpec` (a label and a
factory); :func:`make` builds a freelist from one.  :func:`builtin_specs`
lists every built-in spec, one per class and policy.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .array import ArrayFreelist
from .errors import InvalidArgumentError, InvalidTypeError
from .hashmap import POLICIES, HashmapFreelist
from .protocol import Freelist

__all__ = [
    "DEFAULT_SPECS",
    "FreelistSpec",
    "builtin_specs",
    "imports_from_cwd",
    "make",
    "resolve",
]

#: What ``freelist compare`` puts side by side unless told otherwise.
DEFAULT_SPECS = ("array", "hashmap")

#: A factory: builds a freelist from sorted free page ids.
Factory = Callable[[list[int]], Freelist]


@dataclass(frozen=True, slots=True)
class FreelistSpec:
    """A resolved freelist spec.

    ``label`` is the canonical spec (``"hashmap:best-fit"``, ``"array"``,
    ``"mypkg.bitmap:BitmapFreelist"``), ``kind`` the registered name or import
    path without the policy, ``policy`` the policy or None, and ``factory``
    builds a new freelist from a sorted list of free page ids.
    """

    label: str
    kind: str
    policy: str | None
    factory: Factory

    def make(self, ids: Iterable[int] = ()) -> Freelist:
        """Build a new freelist holding the sorted free page ``ids``.

        :raises InvalidArgumentError: a user factory raised or returned
            something that is not a :class:`~freelist.Freelist`.
        :raises InvalidPageIdsError: the ids are unsorted, repeat or name a
            meta page (built-in freelists).

        Runtime complexity: that of the freelist's constructor, O(F) for the
        built-in ones (O(F + S log S) for the hashmap).
        """
        lst = list(ids)
        if self.kind in _BUILTIN:
            return self.factory(lst)
        try:
            fl = self.factory(lst)
        except (Exception, SystemExit) as e:  # ``sys:exit`` is a callable too
            raise InvalidArgumentError(
                f"freelist {self.label!r}: building it from {len(lst)} free ids raised "
                f"{type(e).__name__}: {e}"
            ) from e
        if not isinstance(fl, Freelist):
            raise InvalidArgumentError(
                f"freelist {self.label!r}: the factory returned a {type(fl).__name__}, "
                "which does not satisfy the Freelist protocol"
            )
        return fl


def _array(_policy: str | None) -> Factory:
    return ArrayFreelist


def _hashmap(policy: str | None) -> Factory:
    def build(ids: list[int]) -> Freelist:
        return HashmapFreelist(ids, policy=policy)  # type: ignore[arg-type]

    return build


#: Registered names: name -> (policies, default policy, builder). The builder
#: takes the chosen policy (None for a name with no policies) and returns the
#: factory.
_BUILTIN: dict[str, tuple[tuple[str, ...], str | None, Callable[[str | None], Factory]]] = {
    "array": ((), None, _array),
    "hashmap": (POLICIES, "best-fit", _hashmap),
}


def builtin_specs() -> list[str]:
    """Every built-in spec, one per class and policy, e.g. ``["array",
    "hashmap:best-fit", "hashmap:bbolt", ...]``.

    Runtime complexity: O(number of classes and policies).
    """
    out: list[str] = []
    for name, (policies, _, _build) in _BUILTIN.items():
        out.extend([f"{name}:{p}" for p in policies] or [name])
    return out


#: Whether import-path specs resolve from the current folder too (see
#: :func:`imports_from_cwd`).
_FROM_CWD: ContextVar[bool] = ContextVar("freelist_imports_from_cwd", default=False)


@contextmanager
def imports_from_cwd() -> Iterator[None]:
    """Within the block, an import-path spec (``package.module:Name``) also
    resolves from the current folder, searched after the installed packages
    (as ``python -m`` finds a module beside the user).  The folder is on
    ``sys.path`` only while such a spec's module (and what it imports) is
    imported, and taken off again afterwards, so no other import (an optional
    dependency missing from the environment, say) is looked for there.  The
    change to ``sys.path`` is process-wide while it lasts.  The ``freelist`` command
    line runs every command in this block.

    Runtime complexity: O(1).
    """
    token = _FROM_CWD.set(True)
    try:
        yield
    finally:
        _FROM_CWD.reset(token)


def _import_module(name: str) -> object:
    """``importlib.import_module(name)``, with the current folder searched last
    while it runs when :func:`imports_from_cwd` is in force."""
    if not _FROM_CWD.get():
        return importlib.import_module(name)
    cwd = os.getcwd()
    if cwd in sys.path or "" in sys.path:
        return importlib.import_module(name)
    sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    finally:
        for i in range(len(sys.path) - 1, -1, -1):
            if sys.path[i] is cwd:
                del sys.path[i]
                break


def _import(path: str, spec: str) -> Factory:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(f"freelist {spec!r}: an import path is 'package.module:Name'")
    try:
        module = _import_module(module_name)
    except (Exception, SystemExit) as e:  # ImportError, or whatever the module raised
        raise InvalidArgumentError(
            f"freelist {spec!r}: cannot import {module_name!r}: {type(e).__name__}: {e}"
        ) from e
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidArgumentError(
                f"freelist {spec!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(obj):
        raise InvalidArgumentError(f"freelist {spec!r}: {attr!r} is not callable")
    return obj


def resolve(spec: str, *, policy: str | None = None) -> FreelistSpec:
    """Resolve a freelist spec (see the module docs) to a :class:`FreelistSpec`.

    ``policy``, when given, is the policy for a registered name that supports
    policies and names none itself (``resolve("hashmap", policy="bbolt")``); a
    spec that names its own policy keeps it.

    :raises InvalidTypeError: ``spec`` is not a str.
    :raises InvalidArgumentError: an unknown name or policy, a policy given
        to a freelist that takes none, or an import path that does not import.

    Runtime complexity: O(1) for a registered name; an import path costs an
    import the first time.
    """
    if not isinstance(spec, str):
        raise InvalidTypeError(f"a freelist spec must be a str, not {type(spec).__name__}")
    text = spec.strip()
    name, sep, rest = text.partition(":")
    if name in _BUILTIN:
        policies, default, build = _BUILTIN[name]
        if not policies:
            if sep:
                raise InvalidArgumentError(f"freelist {spec!r}: {name!r} takes no policy")
            return FreelistSpec(name, name, None, build(None))
        chosen = (rest if sep else policy) or default
        if chosen not in policies:
            raise InvalidArgumentError(
                f"freelist {spec!r}: policy must be one of {', '.join(policies)}, got {chosen!r}"
            )
        return FreelistSpec(f"{name}:{chosen}", name, chosen, build(chosen))
    if not sep:
        known = ", ".join(builtin_specs())
        raise InvalidArgumentError(
            f"unknown freelist {spec!r}: use one of {known}, or an import path "
            "'package.module:Name'"
        )
    return FreelistSpec(text, text, None, _import(text, spec))


def make(spec: str, ids: Iterable[int] = (), *, policy: str | None = None) -> Freelist:
    """Build a new freelist from a spec and sorted free page ``ids``.

    Shorthand for ``resolve(spec, policy=policy).make(ids)``.

    :raises InvalidTypeError: ``spec`` is not a str, or an id is not an int.
    :raises InvalidArgumentError: see :func:`resolve`.
    :raises InvalidPageIdsError: the ids are unsorted, repeat or name a meta page.

    Runtime complexity: that of the freelist's constructor.
    """
    return resolve(spec, policy=policy).make(ids)
