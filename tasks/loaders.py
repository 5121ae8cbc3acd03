"""Load task suites: the bundled suite, a folder, a KernelBench checkout, or the Hugging Face schema."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import sys
import threading
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from .shrink import NotShrinkable, shrink
from .task import FULL, SMALL, Task, TaskError, declared_sizes

BUNDLED_DIR = Path(__file__).parent / "bundled"
SUITES = {"bundled": BUNDLED_DIR, "backward": Path(__file__).parent / "backward"}
#: The answer shipped beside a task file: ``19_ReLU.py`` -> ``19_ReLU.solution.md``.
SOLUTION_SUFFIX = ".solution.md"
HF_DATASET = "ScalingIntelligence/KernelBench"
HF_FIELDS = ("code", "level", "name", "problem_id")

_LEVEL_DIR = re.compile(r"^level_?(\d+)$")
#: A program that loads a model from the Hugging Face hub when it runs (KernelBench level 4).
HUB_USE = re.compile(r"\.from_pretrained\(|^\s*(?:from|import)\s+transformers\b", re.M)
_REPO_ID = re.compile(r"""["']([A-Za-z0-9][\w.-]*(?:/[\w.-]+)?)["']""")
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
HUB_OFFLINE = "needs the Hugging Face hub (offline)"


def task_from_source(source: str, level: int, name: str, origin: str = "", solution: str | None = None) -> Task:
    stem = Path(name).stem
    task_id = f"L{level}/{stem}"
    return Task(
        id=task_id,
        level=level,
        name=stem,
        source=source.replace("\r\n", "\n"),
        sizes=declared_sizes(source, task_id),
        solution=solution,
        origin=origin,
    )


def task_from_file(path: Path, level: int) -> Task:
    answer = path.with_name(path.stem + SOLUTION_SUFFIX)
    solution = answer.read_text() if answer.exists() else None
    return task_from_source(path.read_text(), level, path.name, str(path), solution)


def _level_dirs(root: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _LEVEL_DIR.match(p.name))]
    return sorted(found)


def _task_files(folder: Path) -> list[Path]:
    def order(p: Path):  # numeric prefix first, as KernelBench numbers its problems
        head = p.stem.split("_", 1)[0]
        return (int(head) if head.isdigit() else 1 << 30, p.stem)

    return sorted((p for p in folder.glob("*.py") if not p.name.startswith("_")), key=order)


def load_folder(root: Path) -> list[Task]:
    """A KernelBench checkout (its root or its ``KernelBench/`` folder), a folder of ``level{N}/``
    folders, or one flat folder of task files (level from a ``levelN`` folder name, else 1)."""
    if (root / "KernelBench").is_dir():
        root = root / "KernelBench"
    levels = _level_dirs(root)
    if not levels:
        m = _LEVEL_DIR.match(root.name)
        levels = [(int(m.group(1)) if m else 1, root)]
    tasks = [task_from_file(f, level) for level, folder in levels for f in _task_files(folder)]
    if not tasks:
        raise TaskError(f"no task files (*.py) under {root}")
    return tasks


def load_records(records: Iterable[dict], origin: str) -> list[Task]:
    """Rows of the Hugging Face KernelBench schema: ``code``, ``level``, ``name``, ``problem_id``."""
    tasks = []
    for i, row in enumerate(records):
        missing = [f for f in HF_FIELDS if f not in row]
        if missing:
            raise TaskError(f"{origin}: row {i} lacks {', '.join(missing)} (schema: {', '.join(HF_FIELDS)})")
        name = str(row["name"])
        if not name.split("_", 1)[0].isdigit():  # the dataset's names may omit the problem number
            name = f"{row['problem_id']}_{name}"
        tasks.append(task_from_source(row["code"], int(row["level"]), name, f"{origin}#{i}"))
    return tasks


def read_export(path: Path) -> list[dict]:
    """A local export of the dataset: JSON Lines, or Parquet (needs ``pyarrow``)."""
    if path.suffix in (".jsonl", ".json"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise TaskError("reading .parquet needs pyarrow: pip install 'kernel-env[hf]'") from exc
        return pq.read_table(path).to_pylist()
    raise TaskError(f"{path}: expected a .jsonl or .parquet export of the Hugging Face schema")


def read_hub(name: str) -> list[dict]:
    """A dataset from the hub, or from the local cache when offline (told so, or the hub cannot be
    reached): one quick probe instead of minutes of retried downloads."""
    try:
        import datasets
    except ImportError as exc:
        raise TaskError(f"loading hf:{name} needs the datasets package: pip install 'kernel-env[hf]'") from exc
    offline = hub_offline()
    if offline:
        go_offline_if_unreachable()
        datasets.config.HF_HUB_OFFLINE = True  # read at import, like huggingface_hub's own flag
    try:
        data = datasets.load_dataset(name)
    except (ConnectionError, FileNotFoundError, ValueError) as exc:
        where = "the hub cannot be reached and it is not in the local cache" if offline else str(exc).splitlines()[0]
        raise TaskError(f"hf:{name}: {where}") from exc
    return [row for split in sorted(data) for row in data[split]]


def read_tasks(source: str | Path) -> list[Task]:
    text = str(source)
    if text in SUITES:
        return load_folder(SUITES[text])
    if text.startswith("hf:"):
        return load_records(read_hub(text[3:] or HF_DATASET), text)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder(path)
    if path.is_file():
        if path.suffix == ".py":
            m = _LEVEL_DIR.match(path.parent.name)
            return [task_from_file(path, int(m.group(1)) if m else 1)]
        return load_records(read_export(path), str(path))
    raise TaskError(
        f"unknown task source {text!r}: give a suite name ({', '.join(SUITES)}), a folder, "
        "a KernelBench checkout, a .jsonl/.parquet export, or hf:DATASET"
    )


def needs_hub(task: Task) -> bool:
    """Whether running the program downloads from the Hugging Face hub (read from the source)."""
    return bool(HUB_USE.search(task.source))


@functools.lru_cache(maxsize=1)
def _hub_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 1.5) -> bool:
    """One connection attempt per process, in a thread so a stalled name lookup cannot hold us."""
    ok: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(ok)


def hub_offline() -> bool:
    """Offline: told so (``HF_HUB_OFFLINE=1``) or the hub cannot be reached."""
    told = any(os.environ.get(f, "").lower() in ("1", "true", "yes", "on") for f in OFFLINE_FLAGS)
    return told or not _hub_reachable()


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # not a valid repo id
        return False


def hub_unavailable(task: Task) -> str | None:
    """Why the task cannot run here, or None: it needs the hub, we are offline and no model it
    names (``model_name = "gpt2"``) is in the local cache. Decided before running anything, so no
    download is attempted and none is retried."""
    if not needs_hub(task) or not hub_offline():
        return None
    return None if any(_cached(name) for name in set(_REPO_ID.findall(task.source))) else HUB_OFFLINE


def go_offline_if_unreachable() -> None:
    """When the hub cannot be reached, say so to huggingface_hub and transformers, so a task that
    loads a cached model does not retry downloads first."""
    if hub_offline():
        for flag in OFFLINE_FLAGS:
            os.environ[flag] = "1"
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:  # read at import: a process that already imported it needs this too
            constants.HF_HUB_OFFLINE = True


def load_tasks(
    source: str | Path | Sequence[Task] = "bundled",
    size: str | None = None,
    levels: Iterable[int] | None = None,
    strict: bool = False,
) -> list[Task]:
    """Load tasks; with ``size``, make sure each has that preset (shrinking external files for
    ``small``). A task that cannot be shrunk, or that needs the Hugging Face hub while offline, is
    skipped with a warning, or raises when ``strict``."""
    tasks = list(source) if isinstance(source, (list, tuple)) else read_tasks(source)
    if levels is not None:
        wanted = set(levels)
        tasks = [t for t in tasks if t.level in wanted]
    ids = [t.id for t in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TaskError(f"duplicate task ids: {', '.join(duplicates)}")
    if size is None or size == FULL:
        return tasks
    if size != SMALL and tasks and not any(t.has_size(size) for t in tasks):
        declared = sorted({name for t in tasks for name in t.sizes} - {SMALL})
        raise TaskError(f"unknown size {size!r}: every task has {FULL!r} and {SMALL!r}"
                        + (f"; some declare {', '.join(map(repr, declared))}" if declared else ""))
    if any(needs_hub(t) for t in tasks):
        go_offline_if_unreachable()
    ready = []
    for task in tasks:
        if task.has_size(size):
            ready.append(task)
            continue
        try:
            if why := hub_unavailable(task):
                raise TaskError(f"{task.id}: {why}")
            if size != SMALL:
                raise TaskError(f"{task.id}: no size preset {size!r}; only {SMALL!r} can be derived")
            ready.append(shrink(task))
        except (NotShrinkable, TaskError) as exc:
            if strict:
                raise
            warnings.warn(str(exc), stacklevel=2)
    return ready
