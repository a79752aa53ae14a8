"""How the freelist is persisted: one component, one reader/validator.

A :class:`FreelistFormat` reads the free pages a meta names (:meth:`~FreelistFormat.read`,
which validates as it reads, for the open path and for ``check`` alike),
writes them at commit (:meth:`~FreelistFormat.write`), and says which pages it
occupies.  Three formats exist:

* ``"bbolt"`` (:class:`PageFormat`): the sorted free and pending ids on a
  freelist page with overflow pages, named by the meta's freelist field;
* ``"none"`` (:class:`NoFormat`): bbolt's ``NoFreelistSync``; the meta's
  freelist field is all ones and the free pages are rebuilt from a walk of the
  pages in use;
* ``"log"`` (:class:`LogFormat`): a chain of checksummed pages named by the
  meta's freelist field, a checkpoint of the full set followed by the changes
  of each commit since (see :mod:`freelist.persist.log` and the file-format docs);
  its metas carry version 3 and the freelist-log flag.

The package's modules: :mod:`~freelist.persist.base` (the interface and the
table), :mod:`~freelist.persist.page` (bbolt's page, and none),
:mod:`~freelist.persist.log` (the log and its page encoding) and
:mod:`~freelist.persist.freemap` (the free map the log replays onto).

Each format registers itself (:func:`register`) in one table,
:data:`FORMATS`, and owns its identity there: its name, its meta version and
flags, :meth:`~FreelistFormat.reads` (was a meta written with it), whether a
damaged stored freelist falls back to the older meta, and how it resumes from
what the open read.  :func:`reading` picks the format a meta was written
with, :func:`writing` the one commits use, and the meta validation
(:func:`freelist.meta.validate`) accepts the versions and flags of the
registered formats.  The page file, the transaction and the check only speak
to this interface; adding a format is its own class and its registration.
"""

from __future__ import annotations

from . import base, freemap, log, page
from .base import (
    FORMATS,
    Commit,
    FreelistFormat,
    Run,
    Stored,
    Written,
    describe,
    known,
    load_into,
    reading,
    register,
    versions,
    writing,
)
from .freemap import FreeMap, free_map_fits
from .log import CHECKPOINT_RATIO, LogChain, LogFormat
from .page import NoFormat, PageFormat

__all__ = [
    "CHECKPOINT_RATIO",
    "FORMATS",
    "Commit",
    "FreeMap",
    "FreelistFormat",
    "LogChain",
    "LogFormat",
    "NoFormat",
    "PageFormat",
    "Run",
    "Stored",
    "Written",
    "base",
    "describe",
    "free_map_fits",
    "freemap",
    "known",
    "load_into",
    "log",
    "page",
    "reading",
    "register",
    "versions",
    "writing",
]
