"""The trusted side's on-disk cache: reference runs and GPU-target compile records that outlive a process.

Every ``kernel-env eval`` builds a fresh evaluator; without this cache each call would run the task's
reference again (seconds on the CPU, much more for big tasks). Entries live under one folder (see
:func:`cache_dir`), one file per entry in a folder per namespace (``references/``, ``compiles/``).

- Written atomically: a temporary file in the same folder, then ``os.replace``; a reader sees the old
  entry, the new one or none, never half of one, whatever other processes do at the same time.
- Checked on read: a header with a magic, the format version, the payload length and its sha256. A
  corrupt, truncated or foreign file is a miss and is removed; nothing here raises into the caller.
- Bounded: a byte budget; the least recently used entries (by mtime, touched on read) go first,
  under an ``flock`` so that concurrent evictions do not fight.
- Private: the folder is 0700, the files 0600, and a folder another user owns is refused.

The sha256 guards against accidents (a crash mid-write, a full disk), not against an attacker: anyone
who can write here can compute it. So nothing read from here is trusted to be harmless: payloads
are plain JSON or ``torch.load(weights_only=True)`` containers, never a pickle of arbitrary objects,
and the cache is refused where a candidate could reach it (no bubblewrap, or a folder the sandbox
shows: :func:`open_trusted_cache`).

The folder also holds the persistent seed secret (:meth:`DiskCache.secret`): secret seed sets would
make every stored reference useless to the next process unless the secret persists too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import re
import secrets
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("kernel_env")

ENV_DIR = "KERNEL_ENV_CACHE_DIR"
ENV_BYTES = "KERNEL_ENV_CACHE_BYTES"
ENV_SWITCH = "KERNEL_ENV_DISK_CACHE"
DEFAULT_BUDGET = 2 << 30  # 2 GiB: a few dozen full-size references, thousands of small ones
NAMESPACES = ("references", "compiles")
FORMAT_VERSION = 1
MAGIC = b"KENVCACH"
_HEADER = struct.Struct("<8sIQ32s")  # magic, format version, payload length, sha256 of the payload
_SUFFIX = ".entry"
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_S = 3600.0  # a temporary file this old belongs to a writer that died
#: A full size scan after every large write (a reference: the scan costs nothing next to the run that
#: made it) and after every ``_RESCAN_EVERY`` small ones (compile records); in between, this
#: process's estimate (the last scan plus its own writes) decides, so other processes' small writes
#: can overshoot the budget a little until the next scan.
_LARGE, _RESCAN_EVERY = 1 << 20, 64
_NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_SECRET = re.compile(r"[0-9a-f]{32}")
_OFF = ("0", "false", "no", "off")


def cache_dir() -> Path:
    """``$KERNEL_ENV_CACHE_DIR``, else ``$XDG_CACHE_HOME/kernel-env``, else ``~/.cache/kernel-env``."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kernel-env"


def parse_bytes(text: str) -> int:
    """``"2147483648"``, ``"512M"``, ``"2G"``, ``"1.5GiB"`` as a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a size in bytes: {text!r} (examples: 2147483648, 512M, 2G)")
    scale = 1 << (10 * " KMGT".index(match.group(2).upper() or " "))
    return int(float(match.group(1)) * scale)


def default_budget() -> int:
    """``$KERNEL_ENV_CACHE_BYTES`` when set and readable, else :data:`DEFAULT_BUDGET`."""
    text = os.environ.get(ENV_BYTES)
    if not text:
        return DEFAULT_BUDGET
    try:
        return parse_bytes(text)
    except ValueError as exc:
        log.warning("%s ignored: %s", ENV_BYTES, exc)
        return DEFAULT_BUDGET


def switched_on() -> bool:
    """The default of ``Evaluator(disk_cache=None)``: on unless ``$KERNEL_ENV_DISK_CACHE`` says 0/off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in _OFF


def _entry_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest() + _SUFFIX


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest()) + payload


def _unframe(data: bytes) -> bytes | None:
    """The payload of a well-formed entry, or None (wrong magic or version, truncated, corrupt)."""
    if len(data) < _HEADER.size:
        return None
    magic, version, length, digest = _HEADER.unpack_from(data)
    payload = data[_HEADER.size:]
    if magic != MAGIC or version != FORMAT_VERSION or length != len(payload):
        return None
    return payload if hashlib.sha256(payload).digest() == digest else None


class DiskCache:
    """Byte payloads by (namespace, key string), one file each, under ``root`` within ``max_bytes``.

    Nothing is created until the first write. Every method swallows I/O errors (a full disk, a
    read-only home): a cache that cannot work is a cache that misses.
    """

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None = None):
        self.root = Path(root).expanduser() if root is not None else cache_dir()
        self.max_bytes = default_budget() if max_bytes is None else int(max_bytes)
        self.hits = self.misses = self.writes = self.dropped = 0
        self._lock = threading.Lock()
        self._estimate: int | None = None  # bytes on disk as of the last scan plus what we wrote since
        self._writes_since_scan = 0
        self._warned = False

    def __repr__(self) -> str:
        return f"DiskCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    # -- entries ----------------------------------------------------------------------------------

    def get(self, namespace: str, key: str) -> bytes | None:
        """The payload stored under ``key``, or None; a damaged entry is removed."""
        path = self._folder(namespace) / _entry_name(key)
        payload = self._read(path)
        with self._lock:
            if payload is None:
                self.misses += 1
            else:
                self.hits += 1
        if payload is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # least recently *used*: a read counts
        return payload

    def put(self, namespace: str, key: str, payload: bytes) -> bool:
        """Store ``payload`` under ``key`` (replacing any older one); False when it was not stored."""
        data = _frame(bytes(payload))
        if len(data) > self.max_bytes:
            return False
        try:
            folder = self._ensure(namespace)
            self._write_atomically(folder / _entry_name(key), data)
        except OSError as exc:
            if not self._warned:  # once: a full disk would otherwise warn on every write
                self._warned = True
                log.warning("kernel-env disk cache: could not write to %s: %s", self.root, exc)
            return False
        with self._lock:
            self.writes += 1
            self._writes_since_scan += 1
            if self._estimate is not None:
                self._estimate += len(data)
            rescan = self._estimate is None or self._estimate > self.max_bytes or len(data) >= _LARGE or \
                self._writes_since_scan >= _RESCAN_EVERY
        if rescan:
            self.evict()
        return True

    def scan(self, namespace: str, limit: int | None = None, decode: Callable = bytes) -> Iterator:
        """``decode(payload)`` of a namespace's valid entries, most recently used first. Entries that
        are damaged, or whose ``decode`` raises, are removed on the way. Reading them this way does
        not count as use."""
        for path in self._entries(namespace, newest_first=True)[:limit]:
            payload = self._read(path)
            if payload is None:
                continue
            try:
                value = decode(payload)
            except Exception:  # noqa: BLE001 - whatever a foreign payload makes the decoder raise
                self._remove(path)
                continue
            yield value

    def delete(self, namespace: str, key: str) -> None:
        self._remove(self._folder(namespace) / _entry_name(key))

    # -- housekeeping -----------------------------------------------------------------------------

    def evict(self) -> int:
        """Remove least recently used entries until the total fits the budget (and temporary files
        of writers that died); returns how many entries went."""
        removed = 0
        try:
            with self._locked():
                entries = sorted(self._all_entries(), key=lambda e: e[1])  # oldest first
                total = sum(size for _, _, size in entries)
                for path, _, size in entries:
                    if total <= self.max_bytes:
                        break
                    self._remove(path)
                    total -= size
                    removed += 1
                self._sweep_temporaries()
        except OSError as exc:
            log.warning("kernel-env disk cache: eviction in %s failed: %s", self.root, exc)
            return removed
        with self._lock:
            self._estimate, self._writes_since_scan = total, 0
        return removed

    def info(self) -> dict:
        """Where the cache is, its budget, and entries and bytes per namespace (without creating it)."""
        names = sorted(set(NAMESPACES) | set(self._namespaces()))
        spaces = {}
        for name in names:
            sizes = [_size(p) for p in self._entries(name)]
            spaces[name] = {"entries": len(sizes), "bytes": sum(sizes)}
        return {"dir": str(self.root), "max_bytes": self.max_bytes, "namespaces": spaces,
                "bytes": sum(s["bytes"] for s in spaces.values()), "secret": (self.root / "secret").exists()}

    def clear(self, namespace: str | None = None) -> int:
        """Remove every entry (of one namespace, or of all); returns how many. The secret stays."""
        names = [namespace] if namespace is not None else self._namespaces()
        removed = 0
        with contextlib.suppress(OSError), self._locked(create=False):
            for name in names:
                for path in self._entries(name):
                    removed += self._remove(path)
        with self._lock:
            self._estimate = None
        return removed

    # -- the persistent secret --------------------------------------------------------------------

    def secret(self) -> int | None:
        """This machine's 128-bit seed secret, created once (0600); None when the folder is unusable.

        A file that others may read (group or world bits) or that does not hold a secret is replaced:
        whoever could read it might know the seeds."""
        path = self.root / "secret"
        try:
            self._ensure()
            with self._locked():
                value = _read_secret(path)
                if value is None:
                    value = secrets.randbits(128)
                    self._write_atomically(path, f"{value:032x}\n".encode())
                return value
        except OSError as exc:
            log.warning("kernel-env disk cache: no persistent secret in %s: %s", self.root, exc)
            return None

    def drop_secret(self) -> bool:
        """Forget the persistent secret: the next evaluator draws new seed sets (and misses)."""
        return bool(self._remove(self.root / "secret"))

    # -- files ------------------------------------------------------------------------------------

    def _folder(self, namespace: str) -> Path:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"a namespace is lowercase letters, digits, - and _: not {namespace!r}")
        return self.root / namespace

    def _ensure(self, namespace: str | None = None) -> Path:
        """Create the root (and a namespace folder) 0700; refuse a root another user owns."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.root.stat()
        if info.st_uid != os.getuid():
            raise PermissionError(errno.EPERM, "the cache folder belongs to another user", str(self.root))
        if info.st_mode & 0o077:
            os.chmod(self.root, 0o700)
        if namespace is None:
            return self.root
        folder = self._folder(namespace)
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def _write_atomically(self, path: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _read(self, path: Path) -> bytes | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        payload = _unframe(data)
        if payload is None:
            self._remove(path)
            with self._lock:
                self.dropped += 1
        return payload

    @staticmethod
    def _remove(path: Path) -> int:
        try:
            os.unlink(path)
            return 1
        except OSError:
            return 0

    def _namespaces(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and _NAMESPACE.fullmatch(e.name))
        except OSError:
            return []

    def _entries(self, namespace: str, newest_first: bool = False) -> list[Path]:
        folder = self._folder(namespace)
        try:
            found = [(e.path, e.stat().st_mtime) for e in os.scandir(folder) if e.name.endswith(_SUFFIX)]
        except OSError:
            return []
        if newest_first:
            found.sort(key=lambda e: e[1], reverse=True)
        return [Path(p) for p, _ in found]

    def _all_entries(self) -> list[tuple[Path, float, int]]:
        found = []
        for name in self._namespaces():
            with contextlib.suppress(OSError):
                for e in os.scandir(self.root / name):
                    if e.name.endswith(_SUFFIX):
                        with contextlib.suppress(OSError):
                            st = e.stat()
                            found.append((Path(e.path), st.st_mtime, st.st_size))
        return found

    def _sweep_temporaries(self) -> None:
        cutoff = time.time() - _STALE_TEMP_S
        for folder in [self.root, *(self.root / n for n in self._namespaces())]:
            with contextlib.suppress(OSError):
                for e in os.scandir(folder):
                    if e.name.startswith(_TEMP_PREFIX) and e.stat().st_mtime < cutoff:
                        self._remove(Path(e.path))

    @contextlib.contextmanager
    def _locked(self, create: bool = True):
        """An exclusive ``flock`` on the folder's lock file: one eviction (or secret creation) at a time."""
        if create:
            self._ensure()
        elif not self.root.is_dir():
            yield
            return
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_secret(path: Path) -> int | None:
    """The secret in ``path`` if it is ours, private and well formed; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        log.warning("kernel-env disk cache: %s is not a plain file: replacing it", path)
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        text = f.read(64).decode("ascii", "replace").strip()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("kernel-env disk cache: %s was readable by others: drawing a new secret", path)
        return None
    return int(text, 16) if _SECRET.fullmatch(text) else None


# -- payloads -------------------------------------------------------------------------------------

def pack_tensors(value) -> bytes:
    """``torch.save`` of plain containers (dicts, lists, numbers, strings, tensors)."""
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def unpack_tensors(data: bytes):
    """The containers back, through torch's weights-only unpickler: a file crafted to run code when
    loaded raises instead (the caller treats any exception as a miss)."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# -- where the cache may be used ------------------------------------------------------------------

def open_trusted_cache(option=None, isolation: str = "auto", backend: str = "interpreter") -> DiskCache | None:
    """The cache an evaluator uses, or None.

    ``option``: None (on unless ``$KERNEL_ENV_DISK_CACHE`` is 0/off), False (off), True (on), or a
    ``DiskCache``. Refused, whatever ``option`` says, when a candidate could reach the folder: it
    would read the secret (and know every seed) or plant a reference that passes its own outputs.
    """
    if option is False or (option is None and not switched_on()):
        return None
    cache = option if isinstance(option, DiskCache) else DiskCache()
    reason = unsafe_reason(cache.root, isolation, backend)
    if reason is not None:
        (log.warning if option is not None else log.info)("kernel-env disk cache off: %s", reason)
        return None
    return cache


def unsafe_reason(root: Path, isolation: str, backend: str = "interpreter") -> str | None:
    """Why candidates could reach ``root`` under this isolation, or None when they cannot."""
    from .sandbox import ETC_FILES, SYSTEM_PATHS, bwrap_works, visible_paths

    if isolation == "none" or (isolation == "auto" and not bwrap_works(backend)):
        return "without bubblewrap a candidate runs as you and could read the secret and write entries"
    with contextlib.suppress(FileNotFoundError):
        if os.stat(root).st_uid != os.getuid():
            return f"{root} belongs to another user, who could plant entries there"
    where = os.path.realpath(root)
    for shown in (*SYSTEM_PATHS, *ETC_FILES, *visible_paths()):
        real = os.path.realpath(shown)
        if where == real or where.startswith(real.rstrip("/") + "/"):
            return f"{where} lies in {real}, which the sandbox shows to candidates"
    return None


# -- what a stored reference is keyed by ----------------------------------------------------------

@functools.lru_cache(maxsize=1)
def harness_digest() -> str:
    """A digest of kernel_env's own source: a stored reference is only as good as the code that ran
    it (fingerprints, work traces, the report format), so another version of the code misses."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _nvidia_smi() -> tuple[tuple[str, ...], ...] | None:
    """(index, uuid, name, driver) per GPU from ``nvidia-smi`` (another process: the trusted side
    never initialises CUDA itself, its workers fork from it); None without a working one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = tuple(tuple(part.strip() for part in line.split(",")) for line in out.splitlines() if line.strip())
    return rows if rows and all(len(r) == 4 for r in rows) else None


def device_identity(backend: str) -> str | None:
    """What the reference's timings depend on besides the code: "cpu:<machine>" on the interpreter;
    on CUDA the models and driver of the GPUs this process may use (``CUDA_VISIBLE_DEVICES``). None
    when that cannot be known: then no reference goes to disk (a time from another GPU is wrong)."""
    import platform

    if backend != "cuda":
        return f"cpu:{platform.machine()}"
    rows = _nvidia_smi()
    if rows is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        chosen = rows
    else:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        chosen = tuple(r for r in rows if r[0] in wanted or any(r[1].startswith(w) for w in wanted if len(w) > 4))
        if not chosen:
            return f"cuda:{visible}:{sorted({r[2:] for r in rows})}"  # MIG ids and the like: all GPUs, and the ids
    return f"cuda:{sorted({r[2:] for r in chosen})}"


class ReferenceStore:
    """References on disk for one evaluator: looked up after the in-memory miss, stored after a run.

    The key is the evaluator's in-memory key (task hash, size, backend, seed set, trial settings,
    library versions) plus everything the worker is sent (the whole reference request), the device
    and the harness's source digest. ``hits`` counts references that came from disk."""

    NAMESPACE = "references"

    def __init__(self, cache: DiskCache | None, backend: str):
        self.cache = cache
        self.backend = backend
        self.hits = self.stores = 0
        self._lock = threading.Lock()  # evaluation threads look up different tasks at once

    def key(self, memory_key: tuple, request) -> str | None:
        device = device_identity(self.backend) if self.cache is not None else None
        if device is None:
            return None
        wire = json.dumps(request.to_wire(), sort_keys=True, default=str)
        return hashlib.sha256(repr((memory_key, device, harness_digest(), wire)).encode()).hexdigest()

    def get_or_compute(self, memory_key: tuple, request, n_trials: int, compute: Callable):
        """The stored reference for this request, else ``compute()``'s, stored for the next process."""
        key = self.key(memory_key, request)
        if key is None:
            return compute()
        reference = self._load(key, n_trials)
        if reference is not None:
            with self._lock:
                self.hits += 1
            return reference
        reference = compute()
        self._save(key, reference)
        return reference

    def _load(self, key: str, n_trials: int):
        from .report import Reference

        data = self.cache.get(self.NAMESPACE, key)
        if data is None:
            return None
        try:
            reference = Reference.from_payload(unpack_tensors(data))
            if len(reference.outputs) != n_trials:
                raise ValueError(f"{len(reference.outputs)} trials stored, {n_trials} planned")
            return reference
        except Exception as exc:  # noqa: BLE001 - whatever a damaged or crafted file raises, it is a miss
            log.warning("kernel-env disk cache: dropped an unreadable reference: %s: %.200s", type(exc).__name__, exc)
            self.cache.delete(self.NAMESPACE, key)
            return None

    def _save(self, key: str, reference) -> None:
        try:
            data = pack_tensors(reference.to_payload())
        except Exception as exc:  # noqa: BLE001 - an output torch cannot save: keep it in memory only
            log.warning("kernel-env disk cache: reference not stored: %s", exc)
            return
        if self.cache.put(self.NAMESPACE, key, data):
            with self._lock:
                self.stores += 1
