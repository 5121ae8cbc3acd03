"""The trusted side's disk cache: entries survive the process, damaged or foreign files are misses that
get removed, concurrent writers leave only whole entries, the budget evicts the least recently used,
the persistent secret is private and shared, and nothing read back can run code."""

import hashlib
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import relu_model, tagged

from kernel_env import wire
from kernel_env.evaluator import pool
from kernel_env.evaluator.compile_cache import CompileCache
from kernel_env.evaluator.disk_cache import (
    _HEADER,
    DiskCache,
    ReferenceStore,
    _entry_name,
    device_identity,
    harness_digest,
    open_trusted_cache,
    pack_tensors,
    unpack_tensors,
)
from kernel_env.evaluator.pool import Evaluator
from kernel_env.evaluator.report import Reference
from kernel_env.evaluator.sandbox import bwrap_works
from kernel_env.protocol import StoppingRule

ROOT = Path(__file__).resolve().parents[3]
needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="the disk cache is refused without bubblewrap")
TARGET, TRITON = "cuda:90:32", "3.6.0"


def entry_files(cache: DiskCache, namespace: str) -> list[Path]:
    folder = cache.root / namespace
    return sorted(folder.glob("*.entry")) if folder.is_dir() else []


def a_reference(n_trials: int = 2) -> Reference:
    outputs = [[torch.arange(6, dtype=torch.float32).reshape(2, 3) + i, 1.5, None,
                [torch.ones(2, dtype=torch.int64), wire.Unsupported("Foo")]] for i in range(n_trials)]
    return Reference(outputs=outputs, digests=[[f"d{i}"] for i in range(n_trials)], times_ms=[1.0, 1.1],
                     timed_prints=[[[1.0, 2.0, 3.0]]], timed_numel=[[6]], tick_gaps_ms=[0.01],
                     work={"small": {"ops": [["aten::relu", 6, 48]]}}, overhead_ms=0.002,
                     rule=StoppingRule(max_iters=10, min_iters=2, rel_se=0.01, cap_s=2.0))


def same_reference(a: Reference, b: Reference) -> bool:
    def same(x, y):
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, list):
            return isinstance(y, list) and len(x) == len(y) and all(map(same, x, y))
        return type(x) is type(y) and x == y

    return same(a.outputs, b.outputs) and {k: v for k, v in vars(a).items() if k != "outputs"} == \
        {k: v for k, v in vars(b).items() if k != "outputs"}


class Request:
    """Stands for a ReferenceRequest: the store keys on its wire form."""

    def __init__(self, **wire_form):
        self.wire_form = wire_form

    def to_wire(self) -> dict:
        return dict(self.wire_form)


# -- entries --------------------------------------------------------------------------------------

def test_an_entry_comes_back_from_another_instance_and_the_files_are_private(tmp_path):
    cache = DiskCache(tmp_path / "cache")
    assert cache.get("references", "k") is None and not cache.root.exists()  # nothing created by a read
    assert cache.put("references", "k", b"payload")
    assert DiskCache(tmp_path / "cache").get("references", "k") == b"payload"
    (path,) = entry_files(cache, "references")
    assert oct(cache.root.stat().st_mode & 0o777) == "0o700"
    assert oct((cache.root / "references").stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    info = cache.info()
    assert info["namespaces"]["references"] == {"entries": 1, "bytes": path.stat().st_size}
    assert info["namespaces"]["compiles"] == {"entries": 0, "bytes": 0} and info["dir"] == str(cache.root)


def _flip_payload(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _flip_header(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


@pytest.mark.parametrize("damage", [
    _flip_payload, _flip_header, lambda d: d[:-3], lambda d: d[: _HEADER.size - 1], lambda d: b"", lambda d: d + b"x",
], ids=["payload-bit", "magic-bit", "truncated", "short-header", "empty", "trailing-byte"])
def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path, damage):
    cache = DiskCache(tmp_path)
    cache.put("references", "k", b"some payload bytes")
    (path,) = entry_files(cache, "references")
    path.write_bytes(damage(path.read_bytes()))
    assert cache.get("references", "k") is None and not path.exists() and cache.dropped == 1


@pytest.mark.parametrize("content", [
    _HEADER.pack(b"KENVCACH", 999, 3, hashlib.sha256(b"abc").digest()) + b"abc",  # another version
    pack_tensors({"not": "framed"}),  # a torch file without the header
    b"plain text\n",
], ids=["wrong-version", "bare-torch-file", "text"])
def test_a_file_of_another_format_is_a_miss(tmp_path, content):
    cache = DiskCache(tmp_path)
    cache.put("references", "k", b"ok")
    (path,) = entry_files(cache, "references")
    path.write_bytes(content)
    assert cache.get("references", "k") is None and not path.exists()


def _writer(root: str, writer: int, rounds: int) -> None:
    cache = DiskCache(root, max_bytes=24_000)
    for i in range(rounds):
        cache.put("references", "shared", f"w{writer}-r{i};".encode() * 60)
        cache.put("compiles", f"own-{writer}-{i % 7}", f"w{writer}-r{i};".encode() * 30)


def test_concurrent_writers_leave_only_whole_entries(tmp_path):
    """Four processes write the same key and keys of their own, past the budget (so they evict too)."""
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(tmp_path), w, 40)) for w in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in writers)
    cache = DiskCache(tmp_path, max_bytes=24_000)
    shared = cache.get("references", "shared")
    assert shared is not None and len(set(shared.decode().split(";")[:-1])) == 1  # one writer's, whole
    for payload in cache.scan("compiles"):
        assert len(set(payload.decode().split(";")[:-1])) == 1
    assert cache.dropped == 0 and not list(tmp_path.rglob(".tmp-*"))
    cache.evict()
    assert cache.info()["bytes"] <= 24_000


def test_the_budget_evicts_the_least_recently_used(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=3 * (_HEADER.size + 1000))
    for age, key in ((300, "a"), (200, "b"), (100, "c")):
        cache.put("references", key, b"x" * 1000)
        path = tmp_path / "references" / _entry_name(key)
        os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    assert cache.get("references", "a") == b"x" * 1000  # a is now the most recently used
    cache.put("references", "d", b"x" * 1000)
    kept = {k for k in "abcd" if cache.get("references", k) is not None}
    assert kept == {"a", "c", "d"}


def test_an_entry_larger_than_the_budget_is_not_stored(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=1000)
    assert not cache.put("references", "big", b"x" * 2000) and cache.get("references", "big") is None


def test_clear_removes_entries_of_one_namespace_or_all_and_keeps_the_secret(tmp_path):
    cache = DiskCache(tmp_path)
    secret = cache.secret()
    cache.put("references", "r", b"1")
    cache.put("compiles", "c", b"2")
    assert cache.clear("compiles") == 1 and cache.get("references", "r") == b"1"
    assert cache.clear() == 1 and cache.info()["bytes"] == 0 and cache.secret() == secret


# -- the persistent secret ------------------------------------------------------------------------

def test_the_secret_is_created_private_once_and_reused(tmp_path):
    first = DiskCache(tmp_path).secret()
    assert isinstance(first, int) and 0 <= first < 1 << 128
    assert DiskCache(tmp_path).secret() == first
    path = tmp_path / "secret"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@needs_bwrap
def test_an_evaluator_takes_the_persistent_secret_unless_given_one(tmp_path):
    first = DiskCache(tmp_path).secret()
    with Evaluator(backend="interpreter", workers=1, disk_cache=DiskCache(tmp_path)) as ev:
        assert ev._seed_secret == first and ev.disk is not None
    with Evaluator(backend="interpreter", workers=1, disk_cache=DiskCache(tmp_path), seed_secret=5) as ev:
        assert ev._seed_secret == 5  # an explicit secret wins


def test_a_secret_others_could_read_or_a_damaged_one_is_replaced(tmp_path):
    cache = DiskCache(tmp_path)
    first = cache.secret()
    path = tmp_path / "secret"
    path.chmod(0o644)
    second = cache.secret()
    assert second != first and oct(path.stat().st_mode & 0o777) == "0o600"
    path.write_text("not a secret")
    assert cache.secret() not in (None, second)


def test_the_switch_and_false_turn_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("KERNEL_ENV_DISK_CACHE", "0")
    with Evaluator(backend="interpreter", workers=1) as ev:
        assert ev.disk is None
    monkeypatch.delenv("KERNEL_ENV_DISK_CACHE")
    assert open_trusted_cache(False) is None and not (tmp_path / "env").exists()


def test_a_folder_candidates_could_reach_is_refused(tmp_path):
    assert open_trusted_cache(DiskCache(tmp_path), isolation="none") is None  # a candidate runs as you
    if bwrap_works():
        assert open_trusted_cache(DiskCache(tmp_path), isolation="auto") is not None
        inside = ROOT / "kernel_env" / "never-created"  # kernel_env/ is shown read-only in the sandbox
        assert open_trusted_cache(DiskCache(inside), isolation="auto") is None and not inside.exists()
        assert open_trusted_cache(DiskCache(Path(sys.prefix) / "cache"), isolation="bwrap") is None


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_folder_another_user_owns_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    assert open_trusted_cache(DiskCache(theirs), isolation="bwrap") is None
    assert DiskCache(theirs).secret() is None and not DiskCache(theirs).put("references", "k", b"x")


# -- what is stored and read back -----------------------------------------------------------------

def test_a_reference_round_trips_through_plain_containers():
    reference = a_reference()
    back = Reference.from_payload(unpack_tensors(pack_tensors(reference.to_payload())))
    assert same_reference(reference, back) and type(back.outputs[0][3][1]) is wire.Unsupported


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_file_crafted_to_run_code_on_load_does_not_run_it(tmp_path):
    """A pickle whose ``__reduce__`` calls exec, framed with a correct header (anyone who can write the
    folder can compute it): the load refuses it, the entry is dropped, the reference is computed."""
    marker = tmp_path / "ran"
    evil = pickle.dumps({"outputs": [[_RunsCode(marker)]]}, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        unpack_tensors(evil)
    store = ReferenceStore(DiskCache(tmp_path / "cache"), "interpreter")
    key = store.key(("task", "small"), Request(program="p"))
    store.cache.put("references", key, evil)
    computed = []
    got = store.get_or_compute(("task", "small"), Request(program="p"), 2, lambda: computed.append(1) or a_reference())
    assert not marker.exists() and computed == [1] and store.hits == 0 and store.stores == 1
    assert same_reference(Reference.from_payload(unpack_tensors(store.cache.get("references", key))), got)


@pytest.mark.parametrize("payload", [
    {"outputs": "x"}, {**a_reference().to_payload(), "digests": [["d0"]]},  # fewer digests than trials
    {**a_reference().to_payload(), "times_ms": torch.ones(2)}, {**a_reference().to_payload(), "extra": 1},
    {**a_reference().to_payload(), "outputs": [[{"something": "else"}], [1]]},
], ids=["not-a-reference", "digest-count", "tensor-timings", "unknown-field", "untagged-output"])
def test_a_stored_reference_of_the_wrong_shape_is_a_miss(tmp_path, payload):
    store = ReferenceStore(DiskCache(tmp_path), "interpreter")
    key = store.key(("t",), Request(program="p"))
    store.cache.put("references", key, pack_tensors(payload))
    got = store.get_or_compute(("t",), Request(program="p"), 2, a_reference)
    assert store.hits == 0 and store.stores == 1 and len(got.outputs) == 2


def test_a_reference_of_another_request_device_or_trial_count_is_not_served(tmp_path, monkeypatch):
    store = ReferenceStore(DiskCache(tmp_path), "interpreter")
    store.get_or_compute(("t",), Request(program="p"), 2, a_reference)
    assert store.get_or_compute(("t",), Request(program="p"), 2, pytest.fail) is not None and store.hits == 1
    assert store.key(("t",), Request(program="q")) != store.key(("t",), Request(program="p"))
    assert store.key(("u",), Request(program="p")) != store.key(("t",), Request(program="p"))
    assert len(store.get_or_compute(("t",), Request(program="p"), 3, lambda: a_reference(3)).outputs) == 3


def test_on_cuda_the_key_names_the_visible_gpus_and_without_them_nothing_is_stored(tmp_path, monkeypatch):
    from kernel_env.evaluator import disk_cache

    rows = (("0", "GPU-aaaa1111", "NVIDIA H100 80GB HBM3", "550.1"), ("1", "GPU-bbbb2222", "NVIDIA H200", "550.1"))
    monkeypatch.setattr(disk_cache, "_nvidia_smi", lambda: rows)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert "H200" in device_identity("cuda") and "H100" not in device_identity("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa")
    assert "H100" in device_identity("cuda") and "H200" not in device_identity("cuda")
    assert device_identity("interpreter").startswith("cpu:")
    monkeypatch.setattr(disk_cache, "_nvidia_smi", lambda: None)
    store = ReferenceStore(DiskCache(tmp_path), "cuda")
    store.get_or_compute(("t",), Request(program="p"), 2, a_reference)
    assert device_identity("cuda") is None and store.stores == 0 and not entry_files(store.cache, "references")


def _record(key: str, **changes) -> dict:
    good = {"kernel": "relu_kernel", "key": key, "ok": True, "error": None, "num_warps": 4, "num_stages": 3,
            "shared_bytes": 0, "registers": 32, "spills": 0, "seconds": 0.05}
    return {**good, **changes}


def test_compile_records_persist_and_come_back_validated(tmp_path):
    disk = DiskCache(tmp_path)
    first = CompileCache(disk=disk)
    first.put(_record("a" * 64), TARGET, TRITON)
    first.put(_record("b" * 64), TARGET, TRITON)
    first.put(_record("c" * 64, ok=False, error="refused", shared_bytes=None), TARGET, TRITON)  # kept: has a key
    forged = {"target": TARGET, "triton": TRITON, "record": _record("d" * 64, registers=-1)}
    disk.put("compiles", "forged", json.dumps(forged).encode())
    disk.put("compiles", "junk", b"\xff not json")
    second = CompileCache(disk=disk)
    assert second.loaded == 3 and sorted(second.known(TARGET, TRITON)) == ["a" * 64, "b" * 64, "c" * 64]
    assert second.get("a" * 64, TARGET, TRITON) == _record("a" * 64) and second.known(TARGET, "9.9") == []
    assert len(entry_files(disk, "compiles")) == 3  # the invalid ones were removed


# -- through the evaluator ------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import json
    from kernel_env import Evaluator
    from kernel_env.evaluator import pool
    from tasks import load_tasks

    pool.SEED_SETS = 1  # one seed set, so that the reading process draws the same one
    task = {t.id: t for t in load_tasks("bundled", size="small")}["L1/19_ReLU"]
    with Evaluator(backend="interpreter", workers=1) as ev:
        r = ev.evaluate(task, task.solution)
        print(json.dumps({"clean": r.clean, "stores": ev.stored_references.stores,
                          "hits": ev.stored_references.hits, "reference_s": r.timings["reference"]}))
""")


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    """A cache another process filled: it ran ReLU's reference (one seed set) and kept its compiles."""
    root = tmp_path_factory.mktemp("shared-cache")
    env = {**os.environ, "KERNEL_ENV_CACHE_DIR": str(root)}
    done = subprocess.run([sys.executable, "-c", WRITER], capture_output=True, text=True, timeout=600, env=env, check=False,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    harness_digest.cache_clear()  # this checkout may have changed since this process first read it
    return root, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reader(shared_dir):
    with Evaluator(backend="interpreter", workers=1, disk_cache=DiskCache(shared_dir[0])) as ev:
        yield ev


@needs_bwrap
def test_a_reference_another_process_stored_is_read_instead_of_run(shared_dir, reader, relu, monkeypatch):
    _, writer = shared_dir
    assert writer["clean"] and writer["stores"] == 1 and writer["hits"] == 0
    monkeypatch.setattr(pool, "SEED_SETS", 1)
    assert reader.compiles.loaded >= 1  # the writer's GPU-target compile of relu_kernel
    result = reader.evaluate(relu, tagged(relu.solution, "reader"))
    assert result.clean and reader.stored_references.hits == 1 and reader.stored_references.stores == 0
    assert result.timings["reference"] < writer["reference_s"]  # read, not run (seconds against milliseconds)


@needs_bwrap
def test_a_candidate_cannot_read_the_secret_or_the_entries(shared_dir, reader, relu, monkeypatch):
    root, _ = shared_dir
    monkeypatch.setattr(pool, "SEED_SETS", 1)
    secret = f"{DiskCache(root).secret():032x}"
    body = f'''import os
found = []
for path in [{str(root / "secret")!r}, {str(root)!r}, {str(root / "references")!r}]:
    try:
        found.append(repr(sorted(os.listdir(path))) if os.path.isdir(path) else repr(open(path).read()))
    except OSError as exc:
        found.append(type(exc).__name__)
raise RuntimeError(" | ".join(found))'''
    result = reader.evaluate(relu, relu_model(body))
    text = result.to_json()
    assert "FileNotFoundError" in text  # the candidate ran and looked: the folder does not exist for it
    assert secret not in text and ".entry" not in text and not result.correct and result.isolation == "bwrap"


@needs_bwrap
def test_disk_cache_false_writes_nothing(tmp_path, relu, monkeypatch):
    monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(tmp_path / "cache"))
    with Evaluator(backend="interpreter", workers=1, disk_cache=False) as ev:
        result = ev.evaluate(relu, tagged(relu.solution, "no disk"))
        assert ev.disk is None and ev.stored_references.stores == 0
    assert result.clean and not (tmp_path / "cache").exists()
