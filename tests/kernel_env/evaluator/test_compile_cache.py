"""CompileCache: records from the sandbox are validated field by field (they come from the
candidate's process), kept by (key, target, Triton version) and evicted least recently used first."""

import math

import pytest

from kernel_env.evaluator.compile_cache import CompileCache, InvalidRecord, validate

TARGET, TRITON = "cuda:90:32", "3.6.0"


def record(key="a" * 64, **changes) -> dict:
    good = {"kernel": "add_kernel", "key": key, "ok": True, "error": None, "num_warps": 4, "num_stages": 3,
            "shared_bytes": 0, "registers": 32, "spills": 0, "seconds": 0.05}
    return {**good, **changes}


def failed(**changes) -> dict:
    return record(**{"ok": False, "error": "candidate.py:7: torch.relu is host Python", "shared_bytes": None,
                     "registers": None, "spills": None, **changes})


def test_a_good_record_comes_back_as_a_clean_copy():
    good = record()
    clean = validate(good)
    assert clean == good and clean is not good
    assert validate(failed(key=None, num_warps=None, num_stages=None))["ok"] is False
    assert validate(record(seconds=1))["seconds"] == 1.0


@pytest.mark.parametrize("bad", [
    "not a dict", ["kernel"], {**record(), "extra": 1}, {k: v for k, v in record().items() if k != "spills"},
    record(kernel=""), record(kernel="x" * 201), record(kernel="add kernel\nok"), record(kernel=7),
    record(key="A" * 64), record(key="a" * 63), record(key=12), record(ok="yes"), record(ok=1),
    record(error="an error although it compiled"), failed(error=None), failed(error=""), failed(error="e" * 4001),
    record(num_warps="4"), record(num_warps=True), record(num_warps=3), record(num_warps=0), record(num_warps=128),
    record(num_stages=-1), record(num_stages=2.0), record(shared_bytes=-1), record(shared_bytes=1 << 25),
    record(shared_bytes=None), record(registers=-1), record(registers=256), record(registers=32.5),
    record(spills=-8), record(seconds=-0.1), record(seconds=math.nan), record(seconds=math.inf),
    record(seconds=1e9), record(seconds="0.1"), record(seconds=None),
], ids=repr)
def test_a_malformed_record_is_rejected(bad):
    with pytest.raises(InvalidRecord):
        validate(bad)


def test_the_cache_keeps_valid_records_by_key_target_and_triton_version():
    cache = CompileCache()
    cache.put(record(), TARGET, TRITON)
    assert cache.get("a" * 64, TARGET, TRITON) == record()
    assert cache.get("a" * 64, "cuda:80:32", TRITON) is None and cache.get("a" * 64, TARGET, "3.9.0") is None
    cache.get("a" * 64, TARGET, TRITON)["registers"] = 255  # a copy: the cache is untouched
    assert cache.get("a" * 64, TARGET, TRITON)["registers"] == 32 and cache.hits == 3
    assert cache.known(TARGET, TRITON) == ["a" * 64] and cache.known(TARGET, "3.9.0") == []


def test_invalid_and_keyless_records_are_not_kept():
    cache = CompileCache()
    with pytest.raises(InvalidRecord):
        cache.put(record(registers=-1), TARGET, TRITON)
    cache.put(failed(key=None), TARGET, TRITON)  # valid, but Triton refused it before it had a key
    assert len(cache) == 0


def test_the_least_recently_used_record_goes_first():
    cache = CompileCache(size=2)
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    cache.put(record(a), TARGET, TRITON)
    cache.put(record(b), TARGET, TRITON)
    assert cache.get(a, TARGET, TRITON)  # a is now the most recent
    cache.put(record(c), TARGET, TRITON)
    assert len(cache) == 2 and cache.get(b, TARGET, TRITON) is None
    assert cache.known(TARGET, TRITON) == [a, c]
    cache.put(record(a, registers=40), TARGET, TRITON)  # a newer record for a key replaces the old one
    assert len(cache) == 2 and cache.get(a, TARGET, TRITON)["registers"] == 40
