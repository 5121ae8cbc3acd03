"""``kernel-env bench``: score one solution per task and report KernelBench's fast_p.

fast_p is the share of *all* tasks whose solution is correct, free of hack codes, and faster than
p x the reference (fast_0 is the clean-correctness rate). A task without a solution counts as a
failure, as in KernelBench. Correctness and hack rate are shares of all tasks too; mean coverage
(the share of time in the solution's own kernels) is averaged over the clean results.

Which speedup: the reward's ``"auto"`` choice (``scoring.rewards.speed_source``). On the interpreter
that is the modelled GPU speedup (a roofline model of the work the kernels did, not a measurement),
since measured interpreter times are CPU figures; on CUDA it is the measured one. Tables, the JSON
report and the plot say which ("modelled (H100)" or "measured").

Speed of light: where results carry ``EvalResult.sol`` (CUDA, a part in the GPU table), each such row
has ``sol_fraction`` and ``sol_bound``, and the summary and table a median fraction over the clean
ones; where none does (every CPU run), rows, summary and table are as without it.

Solutions come from:
- ``bundled``: each task's shipped reference answer (``task.solution``);
- a ``.jsonl`` file: one ``{"task_id": "L1/19_ReLU", "response": "..."}`` per line;
- a folder: one file per task named after the task file's stem, ``19_ReLU.md`` (``.solution.md``,
  ``.md``, ``.py``, ``.txt``), either flat or under a level folder (``L1/``, ``level1/``, ``level_1/``),
  which wins over a flat file and is needed when two levels share a stem. A task folder with shipped
  ``*.solution.md`` answers (such as ``tasks/bundled``) works as is.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import as_completed
from pathlib import Path

from .scoring.result import EvalResult
from .scoring.rewards import speed_source

PS = (0.0, 1.0, 1.2, 1.5, 2.0)
SOLUTION_EXTS = (".solution.md", ".md", ".py", ".txt")


# -- solutions --------------------------------------------------------------------------------------

def load_solutions(source: str | Path, tasks: Sequence) -> dict[str, str]:
    """Map task id -> response text for the tasks that have a solution in ``source``."""
    text = str(source)
    if text == "bundled":
        return {t.id: t.solution for t in tasks if t.solution is not None}
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_folder(path, tasks)
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return _from_jsonl(path, tasks)
    raise FileNotFoundError(f"solutions {text!r}: expected 'bundled', a folder, or a .jsonl file")


def _from_jsonl(path: Path, tasks: Sequence) -> dict[str, str]:
    known = {t.id for t in tasks}
    found: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            task_id, response = row["task_id"], row["response"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: expected {{\"task_id\": ..., \"response\": ...}} ({exc})") from exc
        if task_id in found:
            raise ValueError(f"{path}:{n}: a second solution for {task_id}")
        if task_id not in known:
            warnings.warn(f"{path}:{n}: {task_id} is not among the tasks; ignored", stacklevel=2)
            continue
        found[task_id] = str(response)
    return found


def _from_folder(root: Path, tasks: Sequence) -> dict[str, str]:
    stems: dict[str, list[str]] = {}
    for t in tasks:
        stems.setdefault(t.name, []).append(t.id)
    found: dict[str, str] = {}
    for t in tasks:
        level_dirs = [root / f"L{t.level}", root / f"level{t.level}", root / f"level_{t.level}"]
        match = _first_file(level_dirs, t.name)
        if match is None:
            match = _first_file([root], t.name)
            if match is not None and len(stems[t.name]) > 1:
                raise ValueError(f"{match} could be the solution of {' or '.join(stems[t.name])}: "
                                 f"put it under a level folder (L{t.level}/{match.name})")
        if match is not None:
            found[t.id] = match.read_text()
    return found


def _first_file(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for ext in SOLUTION_EXTS:
            path = folder / f"{stem}{ext}"
            if path.is_file():
                return path
    return None


# -- running ----------------------------------------------------------------------------------------

def run_bench(tasks: Sequence, solutions: dict[str, str], evaluator, size: str | None = None, config=None,
              progress: bool = True) -> list[dict]:
    """Evaluate every solution on the pool at once; one row per task, in task order."""
    from tqdm import tqdm

    futures = {evaluator.submit(t, solutions[t.id], size=size, config=config): t.id for t in tasks if t.id in solutions}
    results: dict[str, EvalResult] = {}
    with tqdm(total=len(futures), desc="evaluating", unit="task", file=sys.stderr, disable=not progress) as bar:
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return [_row(t, results.get(t.id)) for t in tasks]


def _row(task, r: EvalResult | None) -> dict:
    row = {"task_id": task.id, "level": task.level, "submitted": r is not None}
    if r is None:
        return {**row, "compiled": False, "correct": False, "clean": False, "hacks": [], "speedup": None,
                "runtime_ms": None, "ref_runtime_ms": None, "modelled_speedup": None, "modelled_gpu": None,
                "modelled_runtime_us": None, "modelled_ref_runtime_us": None, "modelled_bound": None,
                "speed_source": None, "coverage": None, "stage": None, "error": "no solution"}
    modelled = r.modelled or {}
    row = {**row, "compiled": r.compiled, "correct": r.correct, "clean": r.clean, "hacks": list(r.hacks),
           "speedup": r.speedup, "runtime_ms": r.runtime_ms, "ref_runtime_ms": r.ref_runtime_ms,
           "modelled_speedup": modelled.get("speedup"), "modelled_gpu": modelled.get("gpu"),
           "modelled_runtime_us": modelled.get("runtime_us"), "modelled_ref_runtime_us": modelled.get("ref_runtime_us"),
           "modelled_bound": modelled.get("bound"), "speed_source": speed_source(r), "coverage": r.coverage, "stage": r.stage,
           "error": (r.error or "").splitlines()[0][:200] if r.error else None}
    if r.sol:
        row.update(sol_fraction=r.sol["fraction"], sol_bound=r.sol["bound"])
    return row


# -- metrics ----------------------------------------------------------------------------------------

def fast_p(rows: Sequence[dict], p: float) -> float:
    """Share of rows that are clean and faster than p x the reference (p = 0: clean at all)."""
    if not rows:
        return 0.0
    return sum(1 for r in rows if is_fast(r["clean"], scored_speedup(r), p)) / len(rows)


def scored_speedup(row: dict) -> float | None:
    """The speedup fast_p counts: the one ``speed_source`` chose when the row was made."""
    return row["modelled_speedup"] if row.get("speed_source") == "modelled" else row["speedup"]


def speed_label(rows: Sequence[dict]) -> str:
    """What the clean rows' speedups are, for headers and titles: "measured", "modelled (H100)", or
    both when some results had no model."""
    clean = [r for r in rows if r["clean"]]
    modelled = [r for r in clean if r.get("speed_source") == "modelled"]
    if not modelled:
        return "measured"
    label = f"modelled ({', '.join(sorted({str(r.get('modelled_gpu')) for r in modelled}))})"
    return label if len(modelled) == len(clean) else f"{label} and measured"


def is_fast(clean: bool, speedup: float | None, p: float) -> bool:
    """KernelBench's fast_p for one result: clean and (p > 0) faster than p x the reference."""
    return bool(clean and (p <= 0 or (speedup is not None and speedup > p)))


def summarize(rows: Sequence[dict], ps: Sequence[float] = PS) -> dict[str, dict]:
    """Metrics for all rows and for each level: ``{"all": {...}, "L1": {...}, ...}``."""
    groups = {"all": list(rows)}
    for level in sorted({r["level"] for r in rows}):
        groups[f"L{level}"] = [r for r in rows if r["level"] == level]
    with_sol = any("sol_fraction" in r for r in rows)
    return {name: {**_metrics(group, ps), **({"median_sol": median_sol(group)} if with_sol else {})}
            for name, group in groups.items()}


def median_sol(rows: Sequence[dict]) -> float | None:
    """The median speed-of-light fraction of the clean rows that have one (None if none has)."""
    fractions = sorted(r["sol_fraction"] for r in rows if r["clean"] and r.get("sol_fraction") is not None)
    if not fractions:
        return None
    middle = len(fractions) // 2
    return fractions[middle] if len(fractions) % 2 else (fractions[middle - 1] + fractions[middle]) / 2


def _metrics(rows: Sequence[dict], ps: Sequence[float]) -> dict:
    n = len(rows)
    share = (lambda k: sum(1 for r in rows if k(r)) / n) if n else (lambda k: 0.0)
    coverages = [r["coverage"] for r in rows if r["clean"] and r["coverage"] is not None]
    return {
        "tasks": n,
        "submitted": sum(r["submitted"] for r in rows),
        "compiled": share(lambda r: r["compiled"]),
        "correctness": share(lambda r: r["correct"]),
        "hack_rate": share(lambda r: bool(r["hacks"])),
        "fast_p": {_p_key(p): fast_p(rows, p) for p in ps},
        "speedups": speed_label(rows),
        "mean_coverage": sum(coverages) / len(coverages) if coverages else None,
    }


def _p_key(p: float) -> str:
    return f"{p:g}"


# -- output -----------------------------------------------------------------------------------------

def format_table(summary: dict[str, dict]) -> str:
    """A Markdown table: one row per group (all tasks, then each level); its last column says whether
    fast_p counted modelled or measured speedups. A "median SOL" column (speed-of-light fraction of the
    clean results) comes before it only when the summary has one."""
    first = next(iter(summary.values()))
    ps = list(first["fast_p"])
    with_sol = "median_sol" in first
    head = ["tasks", "n", "submitted", "compiled", "correct", "hacks", *[f"fast_{p}" for p in ps], "mean coverage",
            *(["median SOL"] if with_sol else []), "speedups"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in summary.items():
        sol = [_share(m["median_sol"])] if with_sol else []
        cells = [name, str(m["tasks"]), str(m["submitted"]), f"{m['compiled']:.2f}", f"{m['correctness']:.2f}",
                 f"{m['hack_rate']:.2f}", *[f"{m['fast_p'][p]:.2f}" for p in ps], _share(m["mean_coverage"]), *sol,
                 m["speedups"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "-"


def report(rows: Sequence[dict], summary: dict, meta: dict) -> dict:
    """The JSON document ``--json-out`` writes; ``speedups`` says which speedups fast_p counted."""
    return {**meta, "ps": [float(p) for p in PS], "speedups": speed_label(rows), "summary": summary,
            "results": list(rows)}


def plot(rows: Sequence[dict], path: str | Path, title: str = "") -> None:
    """fast_p against p as a PNG: a step curve per level and for all tasks, on a log p axis so that
    measured interpreter speedups (far below 1) and GPU speedups (around 1) both show; fast_0 is a
    dashed line. Title and axis say whether the speedups are modelled or measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speedups = [scored_speedup(r) for r in rows if r["clean"] and scored_speedup(r)]
    label = speed_label(rows)
    p_lo = min(0.1, 0.5 * min(speedups, default=1.0))
    p_hi = max(4.0, 1.5 * max(speedups, default=1.0))
    grid = [p_lo * (p_hi / p_lo) ** (i / 400) for i in range(401)]
    groups = {"all": list(rows)}
    levels = sorted({r["level"] for r in rows})
    if len(levels) > 1:
        groups.update({f"L{lv}": [r for r in rows if r["level"] == lv] for lv in levels})
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, group in groups.items():
        line, = ax.step(grid, [fast_p(group, p) for p in grid], where="post", label=f"{name} (n={len(group)})",
                        linewidth=2.2 if name == "all" else 1.2)
        ax.plot(PS[1:], [fast_p(group, p) for p in PS[1:]], "o", color=line.get_color(), markersize=4)
        ax.axhline(fast_p(group, 0.0), color=line.get_color(), linestyle="--", linewidth=0.8, alpha=0.7)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(p_lo, p_hi)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(f"p ({label} speedup over the reference; log scale)")
    ax.set_ylabel("fast_p (share of tasks)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="dashed: fast_0", fontsize=8, title_fontsize=8)
    ax.set_title(f"{title or 'fast_p'} [{label}]")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
