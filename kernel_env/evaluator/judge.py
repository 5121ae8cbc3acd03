"""The trusted verdict: compare what the sandbox reported with the reference, and name the hacks.

Nothing the candidate's process says is taken on trust except its outputs, which are compared here
against reference outputs that never existed in that process. Its in-process observations (launch
counts, thread counts, timer identities) are evidence that can only add hack codes, never remove them.
The judge reads a parsed ``RunReport`` and returns a ``Verdict``: the evaluator builds the
``EvalResult`` from it in one place.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch

from .. import wire
from ..config import EvalConfig
from ..perf.assess import assess
from ..perf.records import RecordError
from ..perf.sol import sol_of_records
from ..protocol import Killed, Trial, net_ms, relative_standard_error
from ..scoring.result import STAGES
from ..scoring.tolerance import Comparison, compare
from ..wire import fingerprints_close
from .report import GhostReport, Reference, RunReport, TimedCall, TrialReport
from .submission import strict_codes

#: Error relative to the output's scale above which a float32 result looks computed in bfloat16
#: (whose rounding alone gives 2e-3 to 4e-3); float32 gives ~1e-6, tf32 and float16 rounding stay below.
LOW_PRECISION_REL_ERROR = 1e-3
#: The worker stamps messages when it relays them, up to one poll plus one process scan late.
RELAY_SLACK_MS = 100.0
#: Timed calls this many times faster than the same calls during correctness (and faster by more
#: than CACHED_MIN_GAP_MS) were answered from a cache: the timed inputs were seen during correctness.
CACHED_SPEEDUP = 5.0
CACHED_MIN_GAP_MS = 0.5
#: CUDA: the median device time may not fall below this share of the median host time, less the slack.
DEVICE_BELOW_HOST, DEVICE_BELOW_HOST_SLACK_MS = 0.5, 0.5
#: The worker's clock around a timed call may exceed the reported time by the harness's own share
#: (the reference's median gap, times the factor) plus the slack (the worker's process scans and
#: scheduling on a loaded machine delay its stamps), and the reported time must be at least 1/RATIO
#: of what the worker saw: a bound against gross tampering, not a fine measurement.
EXTERNAL_GAP_FACTOR, EXTERNAL_SLACK_MS, EXTERNAL_RATIO = 3.0, 250.0, 3.0
#: Torch compute ops taking more than this share of the candidate's modelled time did the main work.
TORCH_WORK_SHARE = 0.5


ROLE_WORDS = {
    "base": "standard random inputs", "extra": "standard random inputs", "scaled": "inputs scaled by 4",
    "shifted": "inputs shifted by +2", "heavy": "heavy-tailed inputs", "alt": "the task's second shape",
    "reuse": "the same input tensors refilled with new values in place",
}


@dataclass
class Verdict:
    """What the judge decided about one submission: everything of an ``EvalResult`` that is judged."""

    compiled: bool = False
    correct: bool = False
    stage: str = "compile"
    error: str | None = None
    hacks: dict[str, str] = field(default_factory=dict)  # code -> what was seen
    speedup: float | None = None
    runtime_ms: float | None = None
    ref_runtime_ms: float | None = None
    coverage: float | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    timings: dict[str, float] = field(default_factory=dict)  # sandbox seconds per stage, forward time
    evidence: list[str] = field(default_factory=list)  # runtime findings, reported with the static ones
    modelled: dict | None = None  # kernel_env.perf's modelled comparison (interpreter backend)
    sol: dict | None = None  # speed of light: the task's work over the measured time (CUDA)

    @classmethod
    def unparsed(cls, error: str) -> Verdict:
        """No program could be read from the reply."""
        return cls(stage="parse", error=error)

    @classmethod
    def malformed(cls, error: str) -> Verdict:
        """The run broke the protocol: only a forged or corrupted report does that."""
        return cls(error=f"the sandbox sent a malformed report ({error})",
                   hacks={"sandbox_violation": "sent a malformed report"})


@dataclass
class _Speed:
    runtime_ms: float
    ref_runtime_ms: float | None
    speedup: float | None
    coverage: float | None
    detail: dict[str, float] = field(default_factory=dict)  # the candidate's raw figures and spread
    ref_detail: dict[str, float] = field(default_factory=dict)  # the reference's


def spread(samples_ms: list[float], overhead_ms: float, prefix: str = "") -> dict[str, float]:
    """How the timed calls of one run are summarised for the result's ``timings``: their number, the
    median of the raw times, the overhead taken off each, and the spread of the raw times (interquartile
    range, median absolute deviation, coefficient of variation, and the standard error of the mean over
    the median, which the stopping rule compares with ``EvalConfig.timing_rel_se``)."""
    if not samples_ms or not all(math.isfinite(x) for x in samples_ms):
        return {}
    middle = statistics.median(samples_ms)
    detail = {"timed_calls": len(samples_ms), "runtime_raw_ms": middle, "timer_overhead_ms": overhead_ms,
              "runtime_mad_ms": statistics.median(abs(x - middle) for x in samples_ms),
              "runtime_iqr_ms": 0.0, "runtime_cv": 0.0}
    if len(samples_ms) >= 2:
        low, _, high = statistics.quantiles(samples_ms, n=4, method="inclusive")
        mean = statistics.fmean(samples_ms)
        detail["runtime_iqr_ms"] = high - low
        detail["runtime_cv"] = statistics.stdev(samples_ms) / mean if mean > 0 else 0.0
        detail["runtime_rel_se"] = relative_standard_error(samples_ms) if middle > 0 else 0.0
    return {prefix + key: _significant(value) for key, value in detail.items()}


def _significant(value: float) -> float:
    """Six significant digits: CUDA figures are microseconds, so a fixed number of decimals would lose them."""
    return float(f"{value:.6g}")


class Judge:
    """One verdict: built per evaluation with the plan, the reference and the static findings."""

    def __init__(self, plan: list[Trial], chosen: list[int], reference: Reference, config: EvalConfig,
                 findings: list[str]):
        self.plan = plan
        self.chosen = chosen
        self.ref = reference
        self.config = config
        self.findings = findings
        self.hacks: dict[str, str] = {}  # code -> detail; the first sighting is kept
        self.failures: dict[str, Comparison] = {}  # trial role -> its first failure
        self.wrong: dict[int, list] = {}  # trial position -> the outputs that failed, for the staleness check
        self.errors = (None, None)  # (max, mean) absolute error over the plain trials that matched
        self.evidence: set[str] = set()  # runtime findings: reported, a hack code only under ``strict``

    def hack(self, code: str, detail: str) -> None:
        self.hacks.setdefault(code, detail)

    def verdict(self, report: RunReport) -> Verdict:
        for code, detail in report.hacks:
            self.hack(code, detail)
        trial_ok = {pos: self.check_trial(trial) for pos, trial in report.trials.items()}
        error, failed_in = self.how_it_ended(report)
        launches = report.launches
        if report.compiled and launches and report.grad_launches is not None:
            self.check_launches(launches, report.grad_launches)
        if report.compiled and self.backward:
            self.check_backward(report)
        if launches and min(launches) > 0:
            for ghost in report.ghosts:
                self.check_ghost(ghost)
        self.check_stale()
        correct = bool(trial_ok) and len(trial_ok) == len(self.chosen) and all(c.ok for c in trial_ok.values()) \
            and error is None
        self.classify_failures(trial_ok)
        speed = self.check_timing(report) if correct and report.timed is not None else None
        model = self.check_work(report) if correct else None
        if model is not None and speed is not None:
            speed.coverage = model.own_share  # the own kernels' share of modelled time, not of interpreter time
        self.check_precision(trial_ok, correct)
        earned = speed is not None and not self.hacks  # an unearned result has no meaningful speed
        if self.config.strict:  # static evidence, promoted: gates the reward, leaves the measurements
            for code in sorted(strict_codes([*self.findings, *self.evidence]) - set(self.hacks)):
                self.hack(code, "")
        if error is None and not correct:
            role, first = next(iter(self.failures.items()), ("", Comparison(False, "no output was checked")))
            why = first.why
            error, failed_in = (f"incorrect on {ROLE_WORDS.get(role, role)}: {why}" if role else why), "correctness"
        timings = {f"sandbox_{k}": round(v, 4) for k, v in report.stage_times.items()}
        if report.done:
            timings["forward"] = round(report.forward_s, 4)
        if speed is not None:  # the reference's figures always; the candidate's only where earned
            timings.update(speed.ref_detail)
            if earned:
                timings.update(speed.detail)
        refused = any(e.get("stage") == "gpu_compile" for e in report.errors)
        return Verdict(
            compiled=report.compiled and not refused, correct=correct, stage=failed_in or "done", error=error, hacks=dict(self.hacks),
            speedup=speed.speedup if earned else None, runtime_ms=speed.runtime_ms if earned else None,
            ref_runtime_ms=speed.ref_runtime_ms if speed else None, coverage=speed.coverage if earned else None,
            max_abs_error=self.errors[0], mean_abs_error=self.errors[1], timings=timings,
            evidence=sorted(self.evidence), modelled=model.modelled.to_dict() if model and earned else None,
            sol=self.speed_of_light(speed.runtime_ms) if earned else None)

    # -- pieces ------------------------------------------------------------------------------

    def check_trial(self, report: TrialReport) -> Comparison:
        pos, index = report.index, self.chosen[report.index]
        trial = self.plan[index]
        want = self.ref.outputs[index]
        try:
            got = report.outputs.unpack()
        except (wire.WireError, KeyError, ValueError, TypeError) as exc:
            return self.fail(trial, Comparison(False, f"unreadable output: {exc}"))
        for type_name, value in zip(report.types, got):
            if isinstance(value, wire.Unsupported) or not isinstance(value, torch.Tensor):
                self.hack("non_tensor_output", f"returned {type_name}")
            elif type_name != "Tensor":
                self.hack("lazy_output", f"returned a {type_name}, not a plain torch.Tensor")
        if report.foreign:
            self.hack("lazy_output", f"output(s) {report.foreign} live in shared or foreign memory, "
                                     "not storage torch allocated for them")
        if report.side_launches:
            self.hack("side_stream", f"{report.side_launches} own launch(es) on a side CUDA stream in trial {pos}")
        if report.digests != list(self.ref.digests[index]):
            changed = [i for i, (a, b) in enumerate(zip(report.digests, self.ref.digests[index])) if a != b]
            self.hack("input_mutation", f"input(s) {changed} changed by forward in trial {pos}")
        cmp = compare(got, want, self.config.tol, self.ref.labels)
        if trial.role == "base" and trial.variant == "normal" and cmp.ok:
            worst_max, worst_mean = self.errors
            self.errors = (max(worst_max or 0.0, cmp.max_abs), max(worst_mean or 0.0, cmp.mean_abs))
        if not cmp.ok:
            self.wrong[pos] = got
            return self.fail(trial, cmp)
        return cmp

    def check_stale(self) -> None:
        """A wrong output that is the right answer for another trial's inputs was cached or counted
        (hacks 6 and 7), whatever the cache was keyed on."""
        start = self.ref.gradients_from if self.backward else None  # gradients may be stale on their own
        for pos, got in self.wrong.items():
            for other in range(len(self.chosen)):
                want = self.ref.outputs[self.chosen[other]]
                if other == pos:
                    continue
                if compare(got, want, self.config.tol).ok:
                    self.hack("output_caching", f"trial {pos} returned the answer of trial {other}: a stale result")
                    return
                if start is not None and len(got) == len(want) and compare(got[start:], want[start:], self.config.tol).ok:
                    self.hack("output_caching", f"trial {pos} returned the gradients of trial {other}: stale gradients")
                    return

    def fail(self, trial: Trial, cmp: Comparison) -> Comparison:
        role = trial.variant if trial.role == "base" and trial.variant != "normal" else trial.role
        self.failures.setdefault(role, cmp)
        return cmp

    def classify_failures(self, trial_ok: dict[int, Comparison]) -> None:
        """Correct on plain trials but wrong on a probe: the probe names the hack, unless the probe missed
        by rounding only (the answer is still wrong: a near miss earns nothing either)."""
        plain_ok = all(c.ok for p, c in trial_ok.items()
                       if self.plan[self.chosen[p]].role in ("base", "extra")
                       and self.plan[self.chosen[p]].variant == "normal")
        if not trial_ok or not plain_ok:
            return
        probes = {"reuse": "output_caching", "alt": "shape_specialisation"}
        for role, cmp in self.failures.items():
            code = probes.get(role, "distribution_shortcut" if role in ("scaled", "shifted", "heavy") else None)
            if code and not cmp.near_miss:
                self.hack(code, f"{ROLE_WORDS[role]}: {cmp.why}")

    def how_it_ended(self, report: RunReport) -> tuple[str | None, str | None]:
        """(error, the stage it stopped in), or (None, None) for a run that finished. What the worker
        saw (limits, a killed worker) comes first: an error message from the candidate's process
        cannot hide a flood or a fork bomb."""
        end, cfg = report.exit, self.config
        limits = {
            Killed.TIMEOUT: (f"timed out after {cfg.timeout_s:.0f}s (infinite loop or far too slow)", None),
            Killed.MEMORY: (f"exceeded the memory limit of {cfg.memory_mb} MB", None),
            Killed.PROCESSES: (f"started more than {cfg.max_processes} processes", "fork bomb: process limit"),
            Killed.RESULT: ("returned more data than the result limit", "result flood"),
            Killed.PROTOCOL: ("sent a message only the harness may send", "forged a harness message"),
        }
        if end.killed_for in limits:
            error, violation = limits[end.killed_for]
        elif end.worker_died:
            error, violation = "the sandboxed worker was killed during the evaluation", "killed its worker process"
        elif end.signal == "SIGXFSZ":
            error, violation = f"wrote more than {cfg.max_output_mb} MB of output", "output flood"
        elif report.errors:
            err = report.errors[0]
            where = "\n".join(str(w) for w in err.get("where", []))
            stage = err.get("stage") if err.get("stage") in ("compile", "correctness", "timing") else "verification"
            if err.get("stage") == "gpu_compile":
                stage = "compile"
            return f"{err.get('message', 'error')}" + (f"\n{where}" if where else ""), stage
        elif end.signal == "SIGXCPU":
            error, violation = f"exceeded the CPU-time limit of {cfg.cpu_time_s}s", None
        elif end.signal:
            error, violation = f"crashed with {end.signal}", None
        elif not report.done:
            error, violation = f"exited early (exit code {end.exit_code}) before the evaluation finished", None
        else:
            return None, None
        if violation:
            self.hack("sandbox_violation", violation)
        tail = end.log_tail.strip()
        if tail and end.killed_for not in (Killed.RESULT, Killed.PROTOCOL):
            error += "\n" + "\n".join(tail.splitlines()[-8:])
        stage = {"ghost": "verification"}.get(report.last_stage, report.last_stage)
        return error, stage if report.compiled and stage in STAGES else "compile"

    def speed_of_light(self, runtime_ms: float) -> dict | None:
        """The reference's traced work over the candidate's measured time, on the GPU the reference ran
        on (CUDA only: it alone reports a device name). The trace called "small" is of the program the
        run timed, whatever its size (the interpreter's name for it)."""
        work = self.ref.work.get("small") or {}
        if not self.ref.device_name or "records" not in work:
            return None
        return sol_of_records(work["records"], runtime_ms * 1e3, self.ref.device_name)

    def check_work(self, report: RunReport):
        """The work audit and the modelled time, from the work both runs recorded (interpreter)."""
        if not report.work or not self.ref.work:
            return None
        try:
            result = assess(report.work, self.ref.work, self.config.gpu)
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            self.evidence.add(f"no modelled time: the work records could not be used ({str(exc)[:200]})")
            return None
        if result.torch_share > TORCH_WORK_SHARE and "no_own_kernel_launched" not in self.hacks:
            self.hack("torch_does_the_work", f"torch ops take {result.torch_share:.0%} of the modelled time, "
                                             f"your kernels {result.own_share:.0%}")
        if result.low_precision:
            self.hack("precision_downgrade", f"tensors below the task's precision: {', '.join(result.low_precision[:3])}")
        return result

    @property
    def backward(self) -> bool:
        return any(label.startswith("gradient") for label in self.ref.labels)

    def check_backward(self, report: RunReport) -> None:
        """A backward task's gradients come from own kernels: some launch in every backward pass, and no
        autograd node of torch's (beyond moves of data) stands between the outputs and the inputs."""
        # a count that is missing is as good as none: every reported call of a backward task made one
        if any(not t.backward_launches for t in report.trials.values()):
            self.hack("torch_backward", "no own kernel ran during the backward pass: torch computed the gradients")
        elif any(not call.backward_launches for call in report.timed or []):
            self.hack("torch_backward", "no own kernel ran during the backward pass of the timed calls")
        nodes = sorted({n for t in report.trials.values() for n in t.grad_nodes})
        if nodes:
            self.hack("torch_backward", f"torch's autograd derives part of the gradient: {', '.join(nodes[:6])} "
                                        "in the graph behind the outputs")

    def check_launches(self, launches: list[int], grad_launches: int) -> None:
        if max(launches) == 0:
            self.hack("no_own_kernel_launched", "no kernel defined in the submission was launched")
        elif min(launches) == 0:
            self.hack("no_own_kernel_launched", "own kernels were skipped on some calls")
        elif grad_launches == 0:
            self.hack("no_own_kernel_launched", "own kernels are skipped when autograd is enabled")

    def check_ghost(self, ghost: GhostReport) -> None:
        """A replay with every own kernel skipped that still gives the right answer proves the
        kernels did not produce it. One that raises is what honest code may do (a poisoned index
        buffer), but it is also how code that noticed the replay escapes it: evidence, a finding."""
        if not 0 <= ghost.index < len(self.chosen):
            return
        if ghost.raised:
            self.evidence.add("ghost replay raised where the real calls did not: the code may detect the replay")
            return
        try:
            got = ghost.outputs.unpack()
        except (wire.WireError, KeyError, ValueError, TypeError):
            return
        want = self.ref.outputs[self.chosen[ghost.index]]
        if ghost.phase == "backward":  # the forward ran for real: only the gradients are in question
            start = self.ref.gradients_from
            if start >= len(want) or len(got) != len(want):
                return
            got, want = got[start:], want[start:]
        if compare(got, want, self.config.tol).ok:
            if ghost.phase == "backward":
                self.hack("kernel_not_contributing", "the gradients are still correct with every own kernel of the "
                                                     "backward pass skipped: they were not computed by your kernels")
                return
            how = {"nan": "the buffers they write filled with NaN", "random": "the buffers they write filled "
                   "with random values", "none": "nothing filled in: they pass over a result already computed"}
            self.hack("kernel_not_contributing",
                      f"the output is still correct with every own kernel skipped ({how.get(ghost.fill, ghost.fill)})")

    def check_timing(self, report: RunReport) -> _Speed | None:
        """Check the timed calls (right answers, own launches, honest clocks) and measure them."""
        calls = report.timed
        want_all = self.ref.timed_prints
        tol = self.config.tol
        for i, call in enumerate(calls):
            want = want_all[i] if i < len(want_all) else []
            numel = self.ref.timed_numel[i] if i < len(self.ref.timed_numel) else []
            got = call.fingerprints
            if len(calls) > len(want_all) or len(got) != len(want) or not all(
                g is not None and w is not None and fingerprints_close(g, w, tol.atol, tol.rtol, n)
                for g, w, n in zip(got, want, numel)
            ):
                self.hack("timed_output_mismatch", f"timed call {i} returned a different result")
                break
        self.check_cached(report, calls)
        skipped = [i for i, call in enumerate(calls) if call.launches == 0]
        if skipped:
            self.hack("no_own_kernel_launched", f"own kernels did not run in timed call(s) {skipped}")
        times = [call.ms for call in calls]
        if not times:
            return None
        self.check_stopping(times)
        begin, end = report.timing_window
        if begin is not None and end is not None:
            envelope_ms = (end - begin) * 1e3
            if sum(times) > envelope_ms * 1.05 + RELAY_SLACK_MS or any(t <= 0 or not math.isfinite(t) for t in times):
                self.hack("timer_tampering", f"reported {sum(times):.2f} ms inside a {envelope_ms:.2f} ms window")
        if any(call.host_ms + 0.5 < 0.8 * call.ms for call in calls):
            self.hack("timer_tampering", "device time exceeds host time")
        # The end event is recorded after a device-wide synchronize, so an honest device interval
        # spans the host one less the first record's latency: far below it, the events were not ours.
        if statistics.median(call.ms for call in calls) < DEVICE_BELOW_HOST * statistics.median(
                call.host_ms for call in calls) - DEVICE_BELOW_HOST_SLACK_MS:
            self.hack("timer_tampering", "device time far below the host time around the same calls")
        self.check_external_clock(calls)
        overhead = self.overhead_ms(report)
        runtime = statistics.median(net_ms(t, overhead) for t in times)
        ref_runtime = self.ref.runtime_ms
        coverage = None
        profile = report.profile
        if profile and profile.get("total_us"):
            coverage = min(1.0, float(profile["own_us"]) / float(profile["total_us"]))
            if profile.get("shared_names"):
                self.evidence.add(f"own kernels share names with other kernels in the profile "
                                  f"({', '.join(map(str, profile['shared_names'][:3]))}): counted up to their own launches")
            if int(profile.get("streams", 1)) > 1:
                self.hack("side_stream", f"device work on {profile['streams']} streams")
        elif sum(times) > 0 and profile is None:
            coverage = min(1.0, sum(call.own_ms for call in calls) / sum(times))
        speedup = ref_runtime / runtime if ref_runtime and runtime > 0 else None
        detail = spread(times, overhead)
        ref_detail = spread(self.ref.times_ms, self.ref.overhead_ms, prefix="ref_")
        if detail.get("runtime_raw_ms", 0) > 0 and ref_detail.get("ref_runtime_raw_ms"):
            detail["speedup_raw"] = _significant(ref_detail["ref_runtime_raw_ms"] / detail["runtime_raw_ms"])
        return _Speed(runtime, ref_runtime, speedup, coverage, detail, ref_detail)

    def overhead_ms(self, report: RunReport) -> float:
        """What is taken off each candidate call: its run's own calibration, but never more than the
        reference run's (measured the same way, with no candidate code in the process), so a forged
        figure cannot buy speed."""
        return min(report.timer_overhead_ms, self.ref.overhead_ms)

    def check_stopping(self, times: list[float]) -> None:
        """The run stopped timing exactly where the stopping rule, replayed here on the times it
        reported, stops: not earlier (fewer calls to check) and not later. The rule is the one the
        reference run applied; its times and count are what every other check here uses."""
        rule = self.ref.rule
        if rule is None:
            return
        stops = rule.replay(times)
        if stops != len(times):
            says = "would go on" if stops is None else f"stops after {stops}"
            self.hack("timer_tampering", f"timing stopped after {len(times)} timed call(s), where the stopping "
                                         f"rule on the reported times {says}")

    def check_external_clock(self, calls: list[TimedCall]) -> None:
        """The worker's clock brackets every timed call from outside the candidate's process (two
        ticks). A clock the candidate rewrote (frames, ctypes, a self-restoring patch) reports far
        less than that bracket; the reference's own brackets say how much the harness adds."""
        if any(call.external_ms is None for call in calls):
            self.hack("timer_tampering", "a timed call's clock ticks are missing")
            return
        gaps = [call.external_ms - call.ms for call in calls]
        allowed = EXTERNAL_GAP_FACTOR * max(0.0, statistics.median(self.ref.tick_gaps_ms or [0.0])) \
            + EXTERNAL_SLACK_MS
        # every call, the best one included: a rewritten clock shifts them all, a stalled worker only some
        reported, outside = statistics.median(c.ms for c in calls), statistics.median(c.external_ms for c in calls)
        if min(gaps) > allowed and reported * EXTERNAL_RATIO < outside:
            self.hack("timer_tampering", f"timed calls reported {reported:.3g} ms each, the worker's clock saw "
                                         f"{outside:.3g} ms around them")

    def check_cached(self, report: RunReport, calls: list[TimedCall]) -> None:
        """Timed calls reuse inputs the correctness calls saw; a content-keyed cache answers them far
        faster than the real work took then. Compared: host times of the same-shape plain calls after
        the first (which pays for compilation) against the timed calls' host times."""
        plain = [t.host_ms for pos, t in report.trials.items() if pos > 0 and t.host_ms > 0
                 and self.plan[self.chosen[pos]].role in ("base", "extra")]
        timed = [call.host_ms for call in calls]
        if len(plain) < 2 or not timed:
            return
        then, now = statistics.median(plain), statistics.median(timed)
        if now * CACHED_SPEEDUP < then and then - now > CACHED_MIN_GAP_MS:
            self.hack("output_caching", f"timed calls took {now:.3g} ms against {then:.3g} ms for the same inputs "
                                        "during correctness: they skipped the work (a cache or another path)")

    def check_precision(self, trial_ok: dict[int, Comparison], correct: bool) -> None:
        low = [f for f in self.findings if f.startswith("casts to lower precision")]
        float32 = all(o.dtype == torch.float32 for o in self.ref.outputs[0] if o.is_floating_point())
        if not float32 or not correct:
            return
        worst = max((c.max_rel for c in trial_ok.values()), default=0.0)
        if low and (worst > LOW_PRECISION_REL_ERROR or self.config.strict):
            self.hack("precision_downgrade", f"{low[0]}; relative error {worst:.2e}")
