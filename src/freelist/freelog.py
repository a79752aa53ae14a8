"""Pages of the freelist log: the encoding now lives with the log format in
:mod:`freelist.persist.log`; this module keeps its names importable."""

from __future__ import annotations

from .persist.log import (
    CHECKPOINT,
    FREE,
    HEADER_SIZE,
    RECORD,
    RECORDS,
    TAKE,
    LogRun,
    encode_records,
    ids_payload,
    pack_run,
    pages_for,
    records_size,
    unpack_run,
)

__all__ = [
    "CHECKPOINT",
    "FREE",
    "HEADER_SIZE",
    "RECORD",
    "RECORDS",
    "TAKE",
    "LogRun",
    "encode_records",
    "ids_payload",
    "pack_run",
    "pages_for",
    "records_size",
    "unpack_run",
]
