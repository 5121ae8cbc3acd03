"""The trusted verdict: compare what the sandbox reported with the reference, and name the hacks.

Nothing the candidate's process says is taken on trust except its outputs, which are compared here
against reference outputs that never existed in that process. Its in-process observations (launch
counts, thread counts, timer identities) are evidence that can only add hack codes, never remove them.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch

from . import wire
from .config import EvalConfig
from .inputs import fingerprint, fingerprints_close
from .plan import Trial
from .result import STAGES, EvalResult

#: Error relative to the output's scale above which a float32 result looks computed in bfloat16
#: (whose rounding alone gives 2e-3 to 4e-3); float32 gives ~1e-6, tf32 and float16 rounding stay below.
LOW_PRECISION_REL_ERROR = 1e-3
#: The worker stamps messages when it relays them, up to one poll plus one process scan late.
RELAY_SLACK_MS = 100.0
#: Timed calls this many times faster than the same calls during correctness (and faster by more
#: than CACHED_MIN_GAP_MS) were answered from a cache: the timed inputs were seen during correctness.
CACHED_SPEEDUP = 5.0
CACHED_MIN_GAP_MS = 0.5


ROLE_WORDS = {
    "base": "standard random inputs", "extra": "standard random inputs", "scaled": "inputs scaled by 4",
    "shifted": "inputs shifted by +2", "heavy": "heavy-tailed inputs", "alt": "the task's second shape",
    "reuse": "the same input tensors refilled with new values in place",
}


@dataclass
class Reference:
    """What the reference side produced for a plan: outputs and input digests per trial, timings."""

    outputs: list[list[torch.Tensor]]
    digests: list[list[str]]
    times_ms: list[float] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(o.numel() * o.element_size() for outs in self.outputs for o in outs if isinstance(o, torch.Tensor))

    @property
    def runtime_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None

    def usable(self) -> list[bool]:
        return [all(not o.is_floating_point() or bool(torch.isfinite(o).all()) for o in outs) for outs in self.outputs]


@dataclass
class Comparison:
    ok: bool
    why: str = ""
    max_abs: float = 0.0
    mean_abs: float = 0.0
    max_rel: float = 0.0


def compare(got: list, want: list[torch.Tensor], atol: float, rtol: float) -> Comparison:
    if len(got) != len(want):
        return Comparison(False, f"returned {len(got)} outputs, expected {len(want)}")
    worst = Comparison(True)
    for i, (g, w) in enumerate(zip(got, want)):
        label = f"output {i}: " if len(want) > 1 else ""
        if not isinstance(g, torch.Tensor):
            return Comparison(False, f"{label}returned {g!s} instead of a tensor")
        if g.shape != w.shape:
            return Comparison(False, f"{label}shape {tuple(g.shape)}, expected {tuple(w.shape)}")
        if g.dtype != w.dtype:
            return Comparison(False, f"{label}dtype {g.dtype}, expected {w.dtype}")
        gd, wd = g.double(), w.double()
        if w.is_floating_point() and not torch.isfinite(gd).all() and torch.isfinite(wd).all():
            return Comparison(False, f"{label}contains NaN or Inf where the reference is finite")
        diff = (gd - wd).abs().nan_to_num(0.0)
        max_abs = diff.max().item() if diff.numel() else 0.0
        mean_abs = diff.mean().item() if diff.numel() else 0.0
        scale = wd.abs().max().item() if wd.numel() else 0.0
        worst.max_abs = max(worst.max_abs, max_abs)
        worst.mean_abs = max(worst.mean_abs, mean_abs)
        worst.max_rel = max(worst.max_rel, max_abs / scale if scale > 0 else 0.0)
        if not torch.allclose(gd, wd, atol=atol, rtol=rtol, equal_nan=True):
            bad = int((~torch.isclose(gd, wd, atol=atol, rtol=rtol, equal_nan=True)).sum())
            return Comparison(False, f"{label}{bad} of {w.numel()} elements differ (max abs error {max_abs:.3g}, "
                                     f"tolerance atol={atol} rtol={rtol})", worst.max_abs, worst.mean_abs, worst.max_rel)
    return worst


class Judge:
    def __init__(self, result: EvalResult, plan: list[Trial], chosen: list[int], reference: Reference,
                 config: EvalConfig, fingerprint_key: int, findings: list[str]):
        self.r = result
        self.plan = plan
        self.chosen = chosen
        self.ref = reference
        self.config = config
        self.key = fingerprint_key
        self.findings = findings
        self.hacks: dict[str, str] = {}  # code -> detail
        self.failures: dict[str, str] = {}  # trial role -> first failure
        self.notes: list[str] = []
        self.wrong: dict[int, list] = {}  # trial position -> the outputs that failed, for the staleness check
        self.call_ms: dict[int, float] = {}  # trial position -> host time of the candidate's call

    def hack(self, code: str, detail: str) -> None:
        self.hacks.setdefault(code, detail)

    def verdict(self, events: list[tuple[dict, list[bytes]]]) -> EvalResult:
        r = self.r
        stage_times: dict[str, float] = {}
        last_stage, last_t = "compile", 0.0
        timing_window = [None, None]
        records, profile, grad_launches = None, None, None
        ghosts: list[tuple[dict, list[bytes]]] = []
        errors, exit_event, done = [], {}, False
        launches: list[int] = []
        trial_ok: dict[int, Comparison] = {}

        for event, blobs in events:
            kind = event.get("event")
            t = float(event.get("t", last_t))
            if kind == "stage":
                stage_times[last_stage] = stage_times.get(last_stage, 0.0) + t - last_t
                last_stage, last_t = event["stage"], t
            elif kind == "compiled":
                r.compiled = True
            elif kind == "trial":
                pos = int(event["index"])
                if not 0 <= pos < len(self.chosen) or pos in trial_ok:
                    raise ValueError(f"trial report {pos} out of range or repeated")
                trial_ok[pos] = self.check_trial(pos, event, blobs)
                self.call_ms[pos] = float(event.get("host_ms") or 0.0)
                launches.append(int(event.get("launches", 0)))
            elif kind == "grad_launches":
                grad_launches = int(event["launches"])
            elif kind == "hack":
                self.hack(str(event.get("code")), str(event.get("detail", "")))
            elif kind == "timing_begin":
                timing_window[0] = t
            elif kind == "timing_end":
                timing_window[1], records = t, event.get("records", [])
            elif kind == "profile":
                profile = event
            elif kind == "ghost":
                ghosts.append((event, blobs))
            elif kind == "error":
                errors.append(event)
            elif kind == "done":
                done = True
                r.timings["forward"] = round(float(event.get("forward_s", 0.0)), 4)
            elif kind == "exit":
                exit_event = event
        stage_times[last_stage] = stage_times.get(last_stage, 0.0) + float(exit_event.get("elapsed", last_t)) - last_t
        r.timings.update({f"sandbox_{k}": round(v, 4) for k, v in stage_times.items()})

        self.apply_exit(exit_event, errors, done, last_stage)
        if r.compiled and launches and grad_launches is not None:
            self.check_launches(launches, grad_launches)
        if launches and min(launches) > 0:
            for event, blobs in ghosts:
                self.check_ghost(event, blobs)
        self.check_stale()
        r.correct = bool(trial_ok) and len(trial_ok) == len(self.chosen) and all(c.ok for c in trial_ok.values()) \
            and r.error is None
        self.classify_failures(trial_ok)
        if r.correct and records is not None:
            self.check_timing(records, timing_window, profile)
        self.check_precision(trial_ok)
        if self.hacks:  # an unearned result has no meaningful speed
            r.speedup = r.runtime_ms = r.coverage = None
        r.hacks = sorted(self.hacks)
        r.findings = sorted(set(self.findings) | {f"{c}: {d}" for c, d in self.hacks.items() if d})
        if r.error is None and not r.correct:
            role, why = next(iter(self.failures.items()), ("", "no output was checked"))
            r.error = f"incorrect on {ROLE_WORDS.get(role, role)}: {why}" if role else why
            r.stage = "correctness"
        return r

    # -- pieces ------------------------------------------------------------------------------

    def check_trial(self, pos: int, event: dict, blobs: list[bytes]) -> Comparison:
        index = self.chosen[pos]
        trial = self.plan[index]
        want = self.ref.outputs[index]
        try:
            got = [wire.unpack_value(d, blobs) for d in event.get("outputs", [])]
        except (wire.WireError, KeyError, ValueError, TypeError) as exc:
            return self.fail(trial, Comparison(False, f"unreadable output: {exc}"))
        for type_name, value in zip(event.get("types", []), got):
            if isinstance(value, wire.Unsupported) or not isinstance(value, torch.Tensor):
                self.hack("non_tensor_output", f"returned {type_name}")
            elif type_name != "Tensor":
                self.hack("lazy_output", f"returned a {type_name}, not a plain torch.Tensor")
        if event.get("foreign"):
            self.hack("lazy_output", f"output(s) {event['foreign']} live in shared or foreign memory, "
                                     "not storage torch allocated for them")
        if int(event.get("side_launches") or 0):
            self.hack("side_stream", f"{event['side_launches']} own launch(es) on a side CUDA stream in trial {pos}")
        if list(event.get("digests", [])) != list(self.ref.digests[index]):
            changed = [i for i, (a, b) in enumerate(zip(event.get("digests", []), self.ref.digests[index])) if a != b]
            self.hack("input_mutation", f"input(s) {changed} changed by forward in trial {pos}")
        cmp = compare(got, want, self.config.atol, self.config.rtol)
        if trial.role == "base" and trial.variant == "normal" and cmp.ok:
            self.r.max_abs_error = max(self.r.max_abs_error or 0.0, cmp.max_abs)
            self.r.mean_abs_error = max(self.r.mean_abs_error or 0.0, cmp.mean_abs)
        if not cmp.ok:
            self.wrong[pos] = got
            return self.fail(trial, cmp)
        return cmp

    def check_stale(self) -> None:
        """A wrong output that is the right answer for another trial's inputs was cached or counted
        (hacks 6 and 7), whatever the cache was keyed on."""
        for pos, got in self.wrong.items():
            for other in range(len(self.chosen)):
                want = self.ref.outputs[self.chosen[other]]
                if other != pos and compare(got, want, self.config.atol, self.config.rtol).ok:
                    self.hack("output_caching", f"trial {pos} returned the answer of trial {other}: a stale result")
                    return

    def fail(self, trial: Trial, cmp: Comparison) -> Comparison:
        role = trial.variant if trial.role == "base" and trial.variant != "normal" else trial.role
        self.failures.setdefault(role, cmp.why)
        return cmp

    def classify_failures(self, trial_ok: dict[int, Comparison]) -> None:
        """Correct on plain trials but wrong on a probe: the probe names the hack."""
        plain_ok = all(c.ok for p, c in trial_ok.items()
                       if self.plan[self.chosen[p]].role in ("base", "extra")
                       and self.plan[self.chosen[p]].variant == "normal")
        if not trial_ok or not plain_ok:
            return
        probes = {"reuse": "output_caching", "alt": "shape_specialisation"}
        for role, why in self.failures.items():
            code = probes.get(role, "distribution_shortcut" if role in ("scaled", "shifted", "heavy") else None)
            if code:
                self.hack(code, f"{ROLE_WORDS[role]}: {why}")

    def apply_exit(self, exit_event: dict, errors: list[dict], done: bool, stage: str) -> None:
        """Say how the run ended. What the worker saw (limits, a killed worker) comes first: an error
        message from the candidate's process cannot hide a flood or a fork bomb."""
        r = self.r
        stage = {"ghost": "verification"}.get(stage, stage)
        killed = exit_event.get("killed_for")
        signal_name = exit_event.get("signal")
        limits = {
            "timeout": (f"timed out after {self.config.timeout_s:.0f}s (infinite loop or far too slow)", None),
            "memory": (f"exceeded the memory limit of {self.config.memory_mb} MB", None),
            "processes": (f"started more than {self.config.max_processes} processes", "fork bomb: process limit"),
            "result": ("returned more data than the result limit", "result flood"),
            "protocol": ("sent a message only the harness may send", "forged a harness message"),
        }
        if killed in limits:
            r.error, violation = limits[killed]
        elif exit_event.get("worker_died"):
            r.error, violation = "the sandboxed worker was killed during the evaluation", "killed its worker process"
        elif signal_name == "SIGXFSZ":
            r.error, violation = f"wrote more than {self.config.max_output_mb} MB of output", "output flood"
        elif errors:
            err = errors[0]
            where = "\n".join(str(w) for w in err.get("where", []))
            r.error = f"{err.get('message', 'error')}" + (f"\n{where}" if where else "")
            r.stage = {"compile": "compile", "correctness": "correctness", "timing": "timing"}.get(
                err.get("stage"), "verification")
            return
        elif signal_name == "SIGXCPU":
            r.error, violation = f"exceeded the CPU-time limit of {self.config.cpu_time_s}s", None
        elif signal_name:
            r.error, violation = f"crashed with {signal_name}", None
        elif not done:
            r.error, violation = f"exited early (exit code {exit_event.get('exit_code')}) before the evaluation finished", None
        else:
            r.stage = "done"
            return
        if violation:
            self.hack("sandbox_violation", violation)
        tail = (exit_event.get("log_tail") or "").strip()
        if tail and killed not in ("result", "protocol"):
            r.error += "\n" + "\n".join(tail.splitlines()[-8:])
        r.stage = stage if r.compiled and stage in STAGES else "compile"

    def check_launches(self, launches: list[int], grad_launches: int) -> None:
        if max(launches) == 0:
            self.hack("no_own_kernel_launched", "no kernel defined in the submission was launched")
        elif min(launches) == 0:
            self.hack("no_own_kernel_launched", "own kernels were skipped on some calls")
        elif grad_launches == 0:
            self.hack("no_own_kernel_launched", "own kernels are skipped when autograd is enabled")

    def check_ghost(self, event: dict, blobs: list[bytes]) -> None:
        """A replay with every own kernel skipped that still gives the right answer proves the
        kernels did not produce it (one that raises or goes wrong is what honest code does)."""
        pos = int(event.get("index", 0))
        if event.get("raised") or not 0 <= pos < len(self.chosen):
            return
        try:
            got = [wire.unpack_value(d, blobs) for d in event.get("outputs", [])]
        except (wire.WireError, KeyError, ValueError, TypeError):
            return
        if compare(got, self.ref.outputs[self.chosen[pos]], self.config.atol, self.config.rtol).ok:
            fill = "NaN" if event.get("fill") == "nan" else "random values"
            self.hack("kernel_not_contributing",
                      f"the output is still correct with every own kernel skipped (buffers filled with {fill})")

    def check_timing(self, records: list[dict], window: list, profile: dict | None) -> None:
        r = self.r
        sets = [self.chosen[k] for k in sorted({int(rec["set"]) for rec in records})]
        expected = {}
        for pos in {int(rec["set"]) for rec in records}:
            outs = self.ref.outputs[self.chosen[pos]]
            expected[pos] = [(fingerprint(o, self.key), o.numel()) for o in outs]
        for i, rec in enumerate(records):
            want = expected.get(int(rec["set"]), [])
            got = rec.get("fingerprints") or []
            if len(got) != len(want) or not all(
                g is not None and fingerprints_close(g, w, self.config.atol, self.config.rtol, n)
                for g, (w, n) in zip(got, want)
            ):
                self.hack("timed_output_mismatch", f"timed call {i} returned a different result")
                break
        self.check_cached(records)
        skipped = [i for i, rec in enumerate(records) if rec.get("launches") == 0]
        if skipped:
            self.hack("no_own_kernel_launched", f"own kernels did not run in timed call(s) {skipped}")
        times = [float(rec["ms"]) for rec in records]
        if not times or not sets:
            return
        if window[0] is not None and window[1] is not None:
            envelope_ms = (window[1] - window[0]) * 1e3
            if sum(times) > envelope_ms * 1.05 + RELAY_SLACK_MS or any(t <= 0 or not math.isfinite(t) for t in times):
                self.hack("timer_tampering", f"reported {sum(times):.2f} ms inside a {envelope_ms:.2f} ms window")
        if any(float(rec.get("host_ms", 0)) + 0.5 < 0.8 * float(rec["ms"]) for rec in records):
            self.hack("timer_tampering", "device time exceeds host time")
        r.runtime_ms = statistics.median(times)
        r.ref_runtime_ms = self.ref.runtime_ms
        if r.ref_runtime_ms and r.runtime_ms > 0:
            r.speedup = r.ref_runtime_ms / r.runtime_ms
        if profile and profile.get("total_us"):
            r.coverage = min(1.0, float(profile["own_us"]) / float(profile["total_us"]))
            if int(profile.get("streams", 1)) > 1:
                self.hack("side_stream", f"device work on {profile['streams']} streams")
        elif records and sum(times) > 0 and profile is None:
            r.coverage = min(1.0, sum(float(rec.get("own_ms", 0.0)) for rec in records) / sum(times))
        r.stage = "done"

    def check_cached(self, records: list[dict]) -> None:
        """Timed calls reuse inputs the correctness calls saw; a content-keyed cache answers them far
        faster than the real work took then. Compared: host times of the same-shape plain calls after
        the first (which pays for compilation) against the timed calls' host times."""
        plain = [ms for pos, ms in self.call_ms.items() if pos > 0 and ms > 0
                 and self.plan[self.chosen[pos]].role in ("base", "extra")]
        timed = [float(rec.get("host_ms") or 0.0) for rec in records]
        if len(plain) < 2 or not timed:
            return
        then, now = statistics.median(plain), statistics.median(timed)
        if now * CACHED_SPEEDUP < then and then - now > CACHED_MIN_GAP_MS:
            self.hack("output_caching", f"timed calls took {now:.3g} ms against {then:.3g} ms for the same inputs "
                                        "during correctness: they skipped the work (a cache or another path)")

    def check_precision(self, trial_ok: dict[int, Comparison]) -> None:
        low = [f for f in self.findings if f.startswith("casts to lower precision")]
        float32 = all(o.dtype == torch.float32 for o in self.ref.outputs[0] if o.is_floating_point())
        if not float32 or not self.r.correct:
            return
        worst = max((c.max_rel for c in trial_ok.values()), default=0.0)
        if low and (worst > LOW_PRECISION_REL_ERROR or self.config.strict):
            self.hack("precision_downgrade", f"{low[0]}; relative error {worst:.2e}")
