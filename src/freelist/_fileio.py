"""The page file's operating-system side: descriptor, lock, map, growth, I/O.

bbolt keeps these in ``db.go`` and ``bolt_unix.go``; here :class:`FileIO` holds
them, and nothing else in the package calls ``os`` or ``mmap`` on the file.
Every failure is a :class:`~freelist.FileIOError` (or another
:class:`~freelist.PageFileError`) naming the file.

The map is read-only and shared; readers copy bytes out of it under the page
file's lock, so no buffer export outlives a call.  That is what lets growth
replace the map, and :meth:`FileIO.close` close it at once: Python's ``mmap``
holds a duplicate of the descriptor, and with it the ``flock``, until the map
is closed, so a map left to the garbage collector (say, referenced from a
traceback) would keep the file locked.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import time
import weakref
from contextlib import suppress
from typing import Any, TypeVar

from .errors import (
    FileIOError,
    FileLockedError,
    MissingFileError,
    PageFileArgumentError,
    PageFileError,
)

__all__ = ["FileIO", "grown_size", "kept_size", "shrink_limit"]

_MAX_STEP = 1 << 30  # grow by doubling up to 1 GiB, then in 1 GiB steps
_MIN_SIZE = 1 << 15
_MIN_SLACK = 1 << 15  # a shrunk file keeps at least 32 KiB past its pages in use
_MAX_FILE = (1 << 63) - 1  # the largest offset the OS takes

E = TypeVar("E", bound=PageFileError)


def _close_fd(fd: int) -> None:
    """Close ``fd`` (dropping its flock); run once, by :meth:`FileIO.close` or
    when the :class:`FileIO` is garbage collected."""
    with suppress(OSError):
        os.close(fd)


def grown_size(need: int) -> int:
    """bbolt's mmap steps: the power of two >= ``need`` bytes from 32 KiB up to
    1 GiB, then the next multiple of 1 GiB (a whole number of pages of every
    page size up to 1 GiB).

    Runtime complexity: O(1).
    """
    if need <= _MAX_STEP:
        return max(_MIN_SIZE, 1 << (need - 1).bit_length())
    return -(-need // _MAX_STEP) * _MAX_STEP


def kept_size(used: int, page_size: int) -> int:
    """The size a shrinking file is cut to when ``used`` bytes are in use: an
    eighth more (at least 32 KiB more), in whole pages.  The slack lets the
    file take new pages for a while before it grows again.

    Runtime complexity: O(1).
    """
    want = used + max(used >> 3, _MIN_SLACK)
    return -(-want // page_size) * page_size


def shrink_limit(used: int, page_size: int) -> int:
    """The largest file size left alone when ``used`` bytes are in use; a
    longer file is cut to :func:`kept_size`.

    The limit is the larger of the size growth gives for ``used``
    (:func:`grown_size`) and :func:`kept_size` plus an eighth of it (at least
    32 KiB).  That is the hysteresis: a cut gives back at least a growth step
    (under 1 GiB, about half the file; past it, 1 GiB) and at least an eighth
    of what the file keeps, so a file near a boundary is neither cut by a page
    at a time nor cut and regrown on alternate commits: growth never makes a
    file longer than this limit, and after a cut the pages in use must fall by
    about half (under 1 GiB) or a ninth (past it) before the next one.

    Runtime complexity: O(1).
    """
    kept = kept_size(used, page_size)
    return max(grown_size(used), kept + max(kept >> 3, _MIN_SLACK))


class FileIO:
    """One open page file at the OS level: fd, flock, read-only map, pread/pwrite/fsync."""

    path: str
    readonly: bool
    _fd: int
    _mm: mmap.mmap | None
    _size: int
    _finalizer: weakref.finalize[Any, Any]

    def __init__(self, path: str, *, readonly: bool, create: bool) -> None:
        """Open ``path`` (``O_NONBLOCK``, so a FIFO is refused, not waited on).

        :raises MissingFileError: no file and it may not be created.
        :raises FileIOError: the OS refused, or the path is not a regular file.
        :raises PageFileArgumentError: the path holds a NUL byte.

        Runtime complexity: O(1).
        """
        self.path = path
        self.readonly = readonly
        self._mm = None
        self._fd = -1
        self._size = -1
        flags = os.O_RDONLY if readonly else os.O_RDWR
        if create and not readonly:
            flags |= os.O_CREAT
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError as e:
            why = (
                "no such file or directory"
                if create and not readonly
                else "no such file (create=False or read-only)"
            )
            raise MissingFileError(path, why) from e
        except OSError as e:
            raise FileIOError(path, f"cannot open: {e.strerror}") from e
        except ValueError as e:  # an embedded NUL byte
            raise PageFileArgumentError(repr(path), f"bad path: {e}") from e
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close_fd, fd)
        try:
            mode = os.fstat(fd).st_mode
        except OSError as e:
            self.close()
            raise FileIOError(path, f"cannot stat: {e.strerror}") from e
        if not stat.S_ISREG(mode):
            self.close()
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise FileIOError(path, f"cannot open: {what}")

    def error(self, cls: type[E], message: str) -> E:
        """An exception of ``cls`` naming this file (see :class:`~freelist.PageFileError`)."""
        return cls(self.path, message)

    def lock(self, timeout: float | None) -> None:
        """Take the flock: shared when read-only, else exclusive.  ``timeout``
        in seconds (None: forever, inf too).

        :raises FileLockedError: not granted in time.
        :raises FileIOError: the OS refused the lock.

        Runtime complexity: O(1) plus the wait.
        """
        how = (fcntl.LOCK_SH if self.readonly else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, how)
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise FileIOError(self.path, f"cannot lock: {e.strerror}") from e
            if deadline is not None and time.monotonic() >= deadline:
                raise FileLockedError(self.path, f"locked by another process (waited {timeout} s)")
            time.sleep(0.005)

    def size(self) -> int:
        """The file's size in bytes.

        :raises FileIOError: fstat failed.

        Runtime complexity: O(1).
        """
        try:
            self._size = os.fstat(self._fd).st_size
        except OSError as e:
            raise FileIOError(self.path, f"cannot stat: {e.strerror}") from e
        return self._size

    def held(self) -> int:
        """The bytes the file really holds on disk: its allocated blocks
        (``st_blocks`` * 512), which a sparse file's holes do not count in;
        its size where the system reports no blocks.

        :raises FileIOError: fstat failed.

        Runtime complexity: O(1).
        """
        try:
            st = os.fstat(self._fd)
        except OSError as e:
            raise FileIOError(self.path, f"cannot stat: {e.strerror}") from e
        blocks = getattr(st, "st_blocks", 0)
        return blocks * 512 if blocks else st.st_size

    def size_hint(self) -> int:
        """The file's size as this object last saw or set it (no system call):
        a hint, since another process may have resized the file since.

        :raises FileIOError: fstat failed (when no size is known yet).

        Runtime complexity: O(1).
        """
        return self._size if self._size >= 0 else self.size()

    def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer at the end of the file).

        :raises FileIOError: the read failed.

        Runtime complexity: O(n).
        """
        try:
            return os.pread(self._fd, n, offset)
        except OSError as e:
            raise FileIOError(self.path, f"cannot read: {e.strerror}") from e

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset``.

        :raises FileIOError: the write failed.

        Runtime complexity: O(len(data)).
        """
        try:
            view = memoryview(data).cast("B")
            while view:
                done = os.pwrite(self._fd, view, offset)
                view = view[done:]
                offset += done
        except OSError as e:
            raise FileIOError(self.path, f"cannot write: {e.strerror}") from e

    def sync(self) -> None:
        """``fdatasync`` (``fsync`` where there is none).

        :raises FileIOError: the sync failed.

        Runtime complexity: O(1) plus the device's flush.
        """
        try:
            (getattr(os, "fdatasync", None) or os.fsync)(self._fd)
        except OSError as e:
            raise FileIOError(self.path, f"cannot sync: {e.strerror}") from e

    def truncate(self, size: int) -> None:
        """Set the file's size.

        :raises FileIOError: the OS refused.

        Runtime complexity: O(1).
        """
        self._size = -1
        try:
            os.ftruncate(self._fd, size)
        except OSError as e:
            raise FileIOError(self.path, f"cannot resize to {size} bytes: {e.strerror}") from e
        self._size = size

    def map(self, size: int) -> None:
        """Map the first ``size`` bytes (nothing for 0), replacing and closing
        the old map; on failure the old map stays.

        :raises FileIOError: the map failed.

        Runtime complexity: O(1).
        """
        try:
            mm = mmap.mmap(self._fd, size, prot=mmap.PROT_READ) if size else None
        except (OSError, ValueError, OverflowError) as e:
            raise FileIOError(self.path, f"cannot map {size} bytes: {e}") from e
        old, self._mm = self._mm, mm
        self._close_map(old)

    @staticmethod
    def _close_map(mm: mmap.mmap | None) -> None:
        if mm is not None:
            with suppress(BufferError, ValueError):
                mm.close()

    def mapped(self) -> int:
        """The bytes mapped now."""
        return 0 if self._mm is None else len(self._mm)

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` copied out of the map, remapping first when
        the file has grown past it.

        :raises FileIOError: the bytes are past the end of the file, or the
            map failed.

        Runtime complexity: O(n).
        """
        end = offset + n
        if self._mm is None or len(self._mm) < end:
            size = self.size()
            if size < end:
                raise FileIOError(
                    self.path, f"cannot read bytes {offset}..{end}: file ends at {size}"
                )
            self.map(size)
        assert self._mm is not None
        return self._mm[offset:end]

    def buffer(self) -> mmap.mmap | bytes:
        """The map itself, for reads that parse in place (under the page
        file's lock; never kept past the call)."""
        return b"" if self._mm is None else self._mm

    def ensure_size(self, size: int) -> None:
        """Grow the file (and its map) to at least ``size`` bytes, in bbolt's
        steps (see :func:`grown_size`).  On failure the file keeps its size and
        its map.

        :raises FileIOError: the file could not grow or be mapped.

        Runtime complexity: O(1) plus the OS's work.
        """
        have = self.size()
        if size <= have:
            if self.mapped() < have:
                self.map(have)
            return
        new = grown_size(size)
        if new > _MAX_FILE:
            raise FileIOError(self.path, f"cannot grow to {size} bytes: past the largest file size")
        self._size = -1
        try:
            os.ftruncate(self._fd, new)
        except OSError as e:
            raise FileIOError(self.path, f"cannot grow to {new} bytes: {e.strerror}") from e
        try:
            self.map(new)
        except BaseException:
            with suppress(OSError):
                os.ftruncate(self._fd, have)
            raise
        self._size = new

    def shrink(self, size: int) -> None:
        """Cut the file to ``size`` bytes (smaller than it is): the map first
        (so no mapped byte lies past the end of the file), then the file.  On
        failure the file keeps its size (the map may be the smaller one; reads
        remap as needed).

        :raises FileIOError: the map or the truncation failed.

        Runtime complexity: O(1) plus the OS's work.
        """
        if self.mapped() > size:
            self.map(size)
        self.truncate(size)

    def close(self) -> None:
        """Close the map and the descriptor, dropping the lock.  Harmless twice.

        Runtime complexity: O(1).
        """
        mm, self._mm = self._mm, None
        self._close_map(mm)
        self._fd = -1
        self._finalizer()
