"""GPU-compile records from the sandbox, checked and kept across evaluations.

Inside the sandbox, ``kernel_env.inside.gpu_compile`` compiles each own kernel for a GPU target and
sends one plain dict per distinct (kernel, signature). They come from the candidate's process, so
nothing in them is trusted: :func:`validate` checks every field's type and range and rejects the
record otherwise. :class:`CompileCache` keeps the valid ones in a bounded LRU keyed by the record's
key (kernel source with its dependencies, signature, options) plus the target and Triton version,
so the evaluator can tell the sandbox which keys it need not compile again. With a disk cache the
records also persist (namespace ``compiles/``, one JSON entry each) and the next process starts
with them; what comes back from disk passes :func:`validate` again, like a record from the sandbox.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict

FIELDS = ("kernel", "key", "ok", "error", "num_warps", "num_stages", "shared_bytes", "registers", "spills",
          "seconds")
MAX_NAME = 200
MAX_ERROR = 4000  # the sandbox trims compile errors to 2000 characters
_KEY = re.compile(r"[0-9a-f]{64}")
#: Inclusive bounds of the integer fields: a GPU block has at most 32 warps of 32 threads (64 leaves
#: room for 64-wide warps), ptxas allocates at most 255 registers a thread, shared memory per block
#: is a few hundred KiB on any GPU so far.
_RANGES = {"num_warps": (1, 64), "num_stages": (0, 64), "shared_bytes": (0, 1 << 24), "registers": (0, 255),
           "spills": (0, 1 << 30)}
_MAX_SECONDS = 3600.0


class InvalidRecord(ValueError):
    """A record from the sandbox that does not have the shape :func:`validate` expects."""


def validate(record) -> dict:
    """A clean copy of ``record``, or :class:`InvalidRecord` naming the first thing wrong with it."""
    if type(record) is not dict:
        raise InvalidRecord(f"a record is a dict, not {type(record).__name__}")
    if set(record) != set(FIELDS):
        raise InvalidRecord(f"fields {sorted(map(str, record))[:20]} are not {list(FIELDS)}")
    kernel, key, ok, error = record["kernel"], record["key"], record["ok"], record["error"]
    if type(kernel) is not str or not 0 < len(kernel) <= MAX_NAME or not kernel.isidentifier():
        raise InvalidRecord("kernel must be a Python identifier of at most 200 characters")
    if key is not None and (type(key) is not str or not _KEY.fullmatch(key)):
        raise InvalidRecord("key must be None or 64 lowercase hex digits")
    if type(ok) is not bool:
        raise InvalidRecord("ok must be a bool")
    if ok and error is not None:
        raise InvalidRecord("a compile that succeeded has no error")
    if not ok and (type(error) is not str or not 0 < len(error) <= MAX_ERROR):
        raise InvalidRecord(f"a failed compile has an error message of 1 to {MAX_ERROR} characters")
    clean = {"kernel": kernel, "key": key, "ok": ok, "error": error}
    for name, (low, high) in _RANGES.items():
        value = record[name]
        if value is not None and (type(value) is not int or not low <= value <= high):
            raise InvalidRecord(f"{name} must be None or an integer in [{low}, {high}], not {value!r:.40}")
        clean[name] = value
    if ok and None in (clean["num_warps"], clean["num_stages"], clean["shared_bytes"]):
        raise InvalidRecord("a compile that succeeded reports num_warps, num_stages and shared_bytes")
    if ok and clean["num_warps"] & (clean["num_warps"] - 1):
        raise InvalidRecord("num_warps must be a power of two")
    seconds = record["seconds"]
    if type(seconds) not in (int, float) or not math.isfinite(seconds) or not 0 <= seconds <= _MAX_SECONDS:
        raise InvalidRecord(f"seconds must be a number in [0, {_MAX_SECONDS:g}]")
    clean["seconds"] = float(seconds)
    return clean


class CompileCache:
    """A bounded LRU of valid records by (record key, target, Triton version). Callers may mutate
    what they get, so it stores and hands out copies. Records without a key (refused before Triton
    computed one; cheap to redo) are not kept. With ``disk`` (a ``DiskCache``) it starts with the
    ``size`` most recently used records stored there and stores each new one."""

    NAMESPACE = "compiles"

    def __init__(self, size: int = 4096, disk=None):
        self.size = size
        self.hits = 0
        self.loaded = 0  # records read from disk at the start
        self._entries: OrderedDict[tuple, dict] = OrderedDict()
        self._lock = threading.Lock()
        self._disk = disk
        if disk is not None:
            self._load()

    def put(self, record, target: str, triton_version: str) -> dict:
        """Validate ``record`` (raises :class:`InvalidRecord`) and keep it; returns the clean copy."""
        clean = validate(record)
        if clean["key"] is not None:
            place = (clean["key"], target, triton_version)
            with self._lock:
                known = self._entries.get(place) == clean
                self._remember(place, clean)
            if not known and self._disk is not None:
                self._store(place, clean)
        return clean

    def get(self, key: str, target: str, triton_version: str) -> dict | None:
        with self._lock:
            record = self._entries.get((key, target, triton_version))
            if record is None:
                return None
            self._entries.move_to_end((key, target, triton_version))
            self.hits += 1
            return dict(record)

    def known(self, target: str, triton_version: str) -> list[str]:
        """The keys to send to the sandbox so that it skips those compiles, most recent last."""
        with self._lock:
            return [k for k, t, v in self._entries if t == target and v == triton_version]

    def __len__(self) -> int:
        return len(self._entries)

    def _remember(self, place: tuple, clean: dict) -> None:
        self._entries[place] = dict(clean)
        self._entries.move_to_end(place)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def _store(self, place: tuple, clean: dict) -> None:
        key, target, version = place
        entry = {"target": target, "triton": version, "record": clean}
        self._disk.put(self.NAMESPACE, f"{target}|{version}|{key}", json.dumps(entry).encode())

    def _load(self) -> None:
        """The stored records, oldest first so that the most recent end up most recent here too; an
        entry that is not a valid record is removed (``scan`` drops what ``_decode`` refuses)."""
        loaded = list(self._disk.scan(self.NAMESPACE, limit=self.size, decode=self._decode))
        with self._lock:
            for place, clean in reversed(loaded):
                self._remember(place, clean)
        self.loaded = len(loaded)

    @staticmethod
    def _decode(payload: bytes) -> tuple[tuple, dict]:
        entry = json.loads(payload)
        if type(entry) is not dict or set(entry) != {"target", "triton", "record"}:
            raise InvalidRecord("a stored compile is {target, triton, record}")
        target, version = entry["target"], entry["triton"]
        if type(target) is not str or type(version) is not str or not target or not version:
            raise InvalidRecord("a stored compile names its target and Triton version")
        clean = validate(entry["record"])
        if clean["key"] is None:
            raise InvalidRecord("a stored compile has a key")
        return (clean["key"], target, version), clean
