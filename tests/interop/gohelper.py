"""Build and run the bbolt Go helper (``tests/interop/bbolthelper``).

The helper links a private copy of package bbolt (the ``.go`` files of the
machine's bbolt source, Debian's ``golang-github-coreos-bbolt-dev``, copied into
a temporary GOPATH at build time, never into the project) plus
``bbolthelper/inbbolt/*.go``, which reach bbolt's unexported freelist.  It is
built once and cached under ``$XDG_CACHE_HOME/freelist-bbolthelper/<hash>/``
(``~/.cache`` without XDG_CACHE_HOME; the project's ``.cache/`` when neither is
writable), keyed by the SHA-256 of the helper's sources, bbolt's sources and
``go version``.

Every function runs the helper as a subprocess and returns what it printed
(one JSON object) as a dict.  On a machine without Go or bbolt's source,
:func:`binary` returns ``None`` and the tests skip with :data:`MISSING`; when the
environment variable ``CI`` is ``true`` that is an error instead, and so is a
failed build anywhere.

Environment: ``FREELIST_GO`` (the ``go`` command), ``FREELIST_BBOLT_SRC`` (the
directory of package ``go.etcd.io/bbolt``; its GOPATH root, three levels up,
also provides ``golang.org/x/sys``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "MISSING",
    "BboltOpenError",
    "GoHelperError",
    "binary",
    "compact",
    "content_hash",
    "dump",
    "make",
    "replay",
]

#: The one line a test skips with when Go or bbolt's source is missing.
MISSING = (
    "bbolt interop tier needs Go and bbolt's source: "
    "apt-get install golang-go golang-github-coreos-bbolt-dev"
)

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "bbolthelper"
PROJECT = HERE.parent.parent
BBOLT_SRC = Path(os.environ.get("FREELIST_BBOLT_SRC", "/usr/share/gocode/src/go.etcd.io/bbolt"))


class GoHelperError(RuntimeError):
    """The helper could not be built, or a run of it failed."""


class BboltOpenError(GoHelperError):
    """bbolt refused to open a file; ``message`` is bbolt's error text."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(f"bbolt refused {path}: {message}")
        self.message = message


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _go() -> str | None:
    go = os.environ.get("FREELIST_GO") or shutil.which("go")
    if go is not None and not Path(go).is_file():
        go = shutil.which(go)
    if go is None and Path("/usr/lib/go/bin/go").exists():
        go = "/usr/lib/go/bin/go"
    return go


def _sources() -> list[Path]:
    mine = sorted(SOURCE.rglob("*.go"))
    theirs = sorted(p for p in BBOLT_SRC.glob("*.go") if not p.name.endswith("_test.go"))
    return mine + theirs


def _cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates = [Path(xdg)] if xdg else []
    candidates += [Path.home() / ".cache", PROJECT / ".cache"]
    for c in candidates:
        root = c / "freelist-bbolthelper"
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK):
            return root
    raise GoHelperError("no writable cache directory for the bbolt helper")


def _build(go: str) -> str:
    env = {**os.environ, "GO111MODULE": "off", "CGO_ENABLED": "0", "GOFLAGS": ""}
    version = subprocess.run(
        [go, "version"], capture_output=True, text=True, check=False, env=env
    ).stdout
    h = hashlib.sha256(version.encode())
    for p in _sources():
        h.update(f"{p.name}\0{p.stat().st_size}\0".encode())
        h.update(p.read_bytes())
    root = _cache_root()
    out = root / h.hexdigest()[:32] / "bbolthelper"
    if out.exists():
        return str(out)
    gopath_root = BBOLT_SRC.parents[2]  # .../gocode for .../gocode/src/go.etcd.io/bbolt
    with tempfile.TemporaryDirectory(prefix="bbolthelper-") as tmp:
        pkg = Path(tmp, "src", "go.etcd.io", "bbolt")
        main = Path(tmp, "src", "bbolthelper")
        pkg.mkdir(parents=True)
        main.mkdir(parents=True)
        for p in _sources():
            if p.parent == SOURCE:
                shutil.copy(p, main / p.name)
            else:
                shutil.copy(p, pkg / p.name)
        env["GOPATH"] = f"{tmp}{os.pathsep}{gopath_root}"
        env.setdefault("GOCACHE", str(root / "go-build"))
        built = Path(tmp, "bbolthelper")
        run = subprocess.run(
            [go, "build", "-o", str(built), "."],
            cwd=main,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if run.returncode != 0:
            raise GoHelperError(f"building the bbolt helper failed:\n{run.stderr}")
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = out.parent / f".bbolthelper.{os.getpid()}"
        shutil.copy(built, staged)
        os.replace(staged, out)  # atomic: parallel test workers may build at once
    return str(out)


@functools.cache
def binary() -> str | None:
    """Path of the built helper; build it first if its cache entry is missing.

    :returns: ``None`` when Go or bbolt's source is missing (outside CI).
    :raises GoHelperError: the build failed, or (``CI=true``) Go or bbolt is missing.

    Runtime complexity: O(size of the sources) to hash them; a build takes a
    few seconds the first time.
    """
    go = _go()
    if go is None or not (BBOLT_SRC / "db.go").is_file():
        if _on_ci():
            raise GoHelperError(MISSING)
        return None
    return _build(go)


def _run(*args: str) -> dict[str, Any]:
    exe = binary()
    if exe is None:
        raise GoHelperError(MISSING)
    run = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise GoHelperError(f"bbolthelper {' '.join(args)}: {run.stderr.strip()}")
    out: dict[str, Any] = json.loads(run.stdout)
    return out


def make(
    path: str | os.PathLike[str],
    *,
    page_size: int = 4096,
    seed: int = 0,
    nosync: bool = False,
    freelist: str = "array",
    size: str = "small",
    target_bytes: int | None = None,
    free_fraction: float | None = None,
) -> None:
    """Have bbolt build a new database at ``path`` from a seeded workload.

    ``small`` and ``medium`` run 15 and 40 write transactions of puts (small
    values, and values of one to three pages that take overflow pages),
    deletes, nested buckets, inline buckets made and dropped, and a nested
    bucket dropped with its contents.  ``large`` is a bloated file: filled to
    ``target_bytes`` (default 64 MiB) then ``free_fraction`` (default 0.9) of
    its keys deleted, chosen across the whole file.  ``nosync`` is bbolt's
    ``NoFreelistSync``; ``freelist`` is ``"array"`` or ``"map"``.

    :raises GoHelperError: bad arguments, ``path`` exists, or bbolt failed.

    Runtime complexity: O(workload); a small file takes a few tens of ms.
    """
    args = ["make", "-path", os.fspath(path), "-page-size", str(page_size), "-seed", str(seed)]
    args += ["-freelist", freelist, "-size", size]
    if nosync:
        args.append("-nosync")
    if target_bytes is not None:
        args += ["-target-bytes", str(target_bytes)]
    if free_fraction is not None:
        args += ["-free-fraction", str(free_fraction)]
    exe = binary()
    if exe is None:
        raise GoHelperError(MISSING)
    run = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise GoHelperError(f"bbolthelper make: {run.stderr.strip()}")


def dump(path: str | os.PathLike[str], *, writable: bool = False, churn: int = 0) -> dict[str, Any]:
    """Open ``path`` with bbolt and report what it sees.

    Keys: ``check_errors`` (``tx.Check()``'s errors), ``hash`` (SHA-256 over
    every bucket path and sequence, key and value in order, see
    :func:`content_hash`), ``free`` and ``pending`` (``db.Stats()``:
    FreePageN, PendingPageN, after Check loaded the freelist), ``hwm``,
    ``page_size``, ``freelist_synced``, ``freelist_page``, ``txid``,
    ``buckets``, ``keys``, ``file_size``.

    The open is read-only, or read-write with ``writable`` (with
    NoFreelistSync, so that the open itself writes nothing either way).  With
    ``churn``, bbolt then runs that many write transactions of its own on the
    file (in its own freelist mode: a scratch bucket of small and overflow
    values, put and deleted, dropped in the last one) and reports again under
    ``churn`` (same keys plus ``commits``): the file changes.

    :raises BboltOpenError: bbolt refused to open the file (its message kept).
    :raises GoHelperError: the helper failed otherwise.

    Runtime complexity: O(file).
    """
    args = ["dump", "-path", os.fspath(path)]
    if writable:
        args.append("-writable")
    if churn:
        args += ["-churn", str(churn)]
    out = _run(*args)
    if "open_error" in out:
        raise BboltOpenError(path, str(out["open_error"]))
    return out


Tree = dict[bytes, "bytes | Tree"]


def content_hash(root: Tree) -> str:
    """The ``hash`` :func:`dump` reports, computed from a tree given in Python:
    ``root`` maps bucket names to buckets, a bucket maps keys to values (bytes)
    or to nested buckets (dicts); every bucket's sequence is taken as 0.

    Runtime complexity: O(size of the tree).
    """
    h = hashlib.sha256()

    def field(b: bytes) -> None:
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)

    def bucket(path: list[bytes], b: Tree) -> None:
        for k in sorted(b):
            v = b[k]
            if isinstance(v, dict):
                sub = [*path, k]
                h.update(b"B")
                field(str(len(sub)).encode())
                for p in sub:
                    field(p)
                field(b"0")
                bucket(sub, v)
            else:
                h.update(b"K")
                field(str(len(path)).encode())
                for p in path:
                    field(p)
                field(k)
                field(v)

    for name in sorted(root):
        top = root[name]
        if not isinstance(top, dict):
            raise GoHelperError(f"the root bucket holds buckets only, not the key {name!r}")
        h.update(b"B")
        field(b"1")
        field(name)
        field(b"0")
        bucket([name], top)
    return h.hexdigest()


def replay(
    trace_path: str | os.PathLike[str], freelist: str = "array", *, validate: bool = False
) -> dict[str, Any]:
    """Replay a trace (this library's format) on bbolt's own ``"array"`` or ``"hashmap"`` freelist.

    Keys: ``final_hwm``, ``free_count``, ``free_sha256`` (as
    :func:`freelist.replay.free_sha256`), ``grown``, ``pending``, ``ops`` and
    ``wall_ns`` (one clock read around the whole loop; parsing is outside).
    bbolt 1.3.6's hashmap picks among larger runs in Go's map order, which is
    random: its results vary from run to run.  With ``validate`` every step is
    checked against a model of the free pages (each allocation's pages free,
    the file grown only when no run fits, the final free set the model's);
    ``wall_ns`` then includes the checks.

    :raises GoHelperError: the trace is malformed, bbolt panicked on it, or
        (``validate``) a step broke the model; the message says which.

    Runtime complexity: O(trace) to parse plus bbolt's replay.
    """
    args = ["replay", "-trace", os.fspath(trace_path), "-freelist", freelist]
    return _run(*args, *(["-validate"] if validate else []))


def compact(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    tx_max_size: int = 65536,
    *,
    page_size: int | None = None,
    no_sync: bool = False,
) -> dict[str, Any]:
    """Copy ``src`` into a new file ``dst`` with bbolt's own ``bbolt.Compact``.

    ``dst`` gets ``src``'s page size unless ``page_size`` is given; ``no_sync``
    skips fdatasync on its commits.  Keys: ``wall_ns`` (around ``Compact``
    alone), ``src_size``, ``dst_size``.

    :raises GoHelperError: ``dst`` exists, or bbolt failed.

    Runtime complexity: O(live data of src).
    """
    args = ["compact", "-src", os.fspath(src), "-dst", os.fspath(dst)]
    args += ["-tx-max-size", str(tx_max_size), "-page-size", str(page_size or 0)]
    if no_sync:
        args.append("-no-sync")
    return _run(*args)
