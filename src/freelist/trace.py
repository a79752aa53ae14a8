"""Allocation traces: one workload format for every tool.

This module gathers the trace tools under one name; each lives in its own
module:

* :mod:`freelist.traceformat`: the text format (:class:`Trace`, :func:`parse`,
  :func:`read`, :meth:`Trace.write`) and its limits;
* :mod:`freelist.replay`: running a trace on a freelist and what it measured
  (:func:`replay`, :func:`run_ops`, :class:`ReplayResult`, :class:`LoopTimes`,
  :func:`free_sha256`, :func:`make_freelist`);
* :mod:`freelist.scenarios`: workload generators (:data:`SCENARIOS`,
  :func:`generate`, :func:`generate_from`).
"""

from __future__ import annotations

from .replay import LoopTimes, ReplayResult, free_sha256, make_freelist, replay, run_ops
from .scenarios import SCENARIOS, generate, generate_from
from .traceformat import MAX_TRACE_PAGES, Op, Trace, parse, read

__all__ = [
    "MAX_TRACE_PAGES",
    "SCENARIOS",
    "LoopTimes",
    "Op",
    "ReplayResult",
    "Trace",
    "free_sha256",
    "generate",
    "generate_from",
    "make_freelist",
    "parse",
    "read",
    "replay",
    "run_ops",
]
