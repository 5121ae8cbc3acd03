"""The reference run's timing in this process (no sandbox, interpreter backend): it stops by the rule,
still fingerprints every seed a candidate may be timed on, reports its timer overhead and rule, and
times ``torch.compile(Model)`` when asked (torch.compile faked here; the slow real one is in
tests/kernel_env/evaluator/test_adaptive_timing.py)."""

import torch

from kernel_env.config import EvalConfig
from kernel_env.evaluator.report import Reference, parse_report
from kernel_env.inside.runner import ReferenceRun
from kernel_env.protocol import Event, ReferenceRequest, StoppingRule, Timing, Trial, limits_of

PROGRAM = '''
import torch


class Model(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(4, 8)]


def get_init_inputs():
    return []
'''
ITERS = 8


def _request(**timing) -> ReferenceRequest:
    return ReferenceRequest(backend="interpreter", device="cpu", program=PROGRAM, alt_program=None,
                            trials=(Trial(1),), init_seed=0, limits=limits_of(EvalConfig()), fingerprint_key=3,
                            timing=Timing(1, ITERS, tuple(range(100, 101 + ITERS)), **timing))


def _events(request: ReferenceRequest) -> list[tuple[dict, list]]:
    events = []
    ReferenceRun(request, lambda header, blobs=(): events.append((header, list(blobs)))).run()
    return events


def _timing_end(events) -> dict:
    return next(header for header, _ in events if header["event"] == Event.TIMING_END)


def test_a_reference_that_stops_early_fingerprints_every_remaining_seed():
    early = _timing_end(_events(_request(min_iters=2, rel_se=100.0)))  # precise enough at once
    full = _timing_end(_events(_request()))  # a fixed count: every call timed
    assert len(early["records"]) == 2 and len(early["checked"]) == ITERS - 2
    assert len(full["records"]) == ITERS and full["checked"] == []
    assert [c["fingerprints"] for c in early["checked"]] == [r["fingerprints"] for r in full["records"][2:]]
    assert StoppingRule(**early["rule"]) == StoppingRule(ITERS, 2, 100.0, None)
    assert early["overhead_ms"] >= 0.0


def test_the_parsed_reference_holds_a_fingerprint_per_seed_and_times_only_the_timed_calls():
    events = _events(_request(min_iters=3, rel_se=100.0))
    reference = Reference.from_report(parse_report(events, 1), 1)
    assert len(reference.times_ms) == 3 and len(reference.timed_prints) == ITERS == len(reference.timed_numel)
    assert reference.rule == StoppingRule(ITERS, 3, 100.0, None) and reference.overhead_ms >= 0.0
    assert reference.runtime_ms > 0


def test_the_compile_baseline_times_the_compiled_model_and_checks_the_eager_one(monkeypatch):
    calls = {"compiled": 0}

    def fake_compile(model):
        def compiled(*args):
            calls["compiled"] += 1
            return model(*args)
        return compiled

    import torch._inductor.config as inductor

    for name in ("compile_threads", "cpp_cache_precompile_headers"):  # the run sets them: put them back after
        monkeypatch.setattr(inductor, name, getattr(inductor, name))
    monkeypatch.setattr(torch, "compile", fake_compile)
    events = _events(_request(baseline="compile"))
    # one untimed call compiles it, then the warm-up and every timed call; the trial ran on the eager model
    assert calls["compiled"] == 1 + 1 + ITERS
    assert [h["event"] for h, _ in events].count(Event.TRIAL) == 1
