"""Hostile submissions: each must end in a clean EvalResult, leave no process behind, change no file
outside its scratch dir, and leave the evaluator able to pass the next honest evaluation."""

import hashlib
import os
import socket
from pathlib import Path

import psutil
import pytest
from helpers import KERNEL, relu_model, reply, tagged

from kernel_env import EvalConfig, Evaluator
from kernel_env.evaluator.sandbox import bwrap_works

MARKER = "kernel-env-hostile-marker"
HOME = Path(os.path.expanduser("~"))
PROTECTED = [Path(__file__).resolve().parents[2] / "tasks" / "bundled" / "level1" / "19_ReLU.py"]
needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="file-system and network isolation need bubblewrap")


@pytest.fixture(scope="module")
def hostile_evaluator():
    config = EvalConfig(timeout_s=10, cpu_time_s=20, memory_mb=1024, max_output_mb=1, max_processes=32)
    with Evaluator(backend="interpreter", workers=1, config=config) as ev:
        yield ev


def _fingerprint(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


def _strays():
    """Processes that carry the marker in their command line, anywhere on the machine."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(MARKER in part for part in p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            pass
    return found


def _worker_tree(ev):
    pids = set()
    for pid in ev.worker_pids():
        try:
            pids |= {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            pass
    return pids


def run_hostile(ev, task, response):
    """Evaluate a hostile response, then check the four promises; returns the result."""
    key = hashlib.md5(response.encode()).hexdigest()
    ev.evaluate(task, tagged(task.solution, f"warm {key}"))  # runs in the worker: the baseline is the idle pool
    before_tree = _worker_tree(ev)
    files = PROTECTED + [HOME / f"{MARKER}.txt", Path("/tmp") / f"{MARKER}.txt"]
    before_files = _fingerprint(files)
    result = ev.evaluate(task, response)
    assert result.task_id == task.id and result.feedback  # a clean result, whatever happened
    assert not _strays(), "a process outlived the evaluation"
    assert _fingerprint(files) == before_files, "a file outside the scratch dir changed"
    honest = ev.evaluate(task, tagged(task.solution, f"after {key}"))
    assert honest.clean, f"the next honest evaluation failed: {honest.error}"
    assert len(_worker_tree(ev)) == len(before_tree), "the pool kept extra processes (or lost its own)"
    return result


def test_segfault(hostile_evaluator, relu):
    r = run_hostile(hostile_evaluator, relu, relu_model("import ctypes\nctypes.string_at(0)\nreturn relu(x)"))
    assert not r.correct and "SIGSEGV" in r.error


def test_os_exit_at_import(hostile_evaluator, relu):
    r = run_hostile(hostile_evaluator, relu, reply("import os\nos._exit(0)\nclass ModelNew: pass"))
    assert not r.compiled and r.stage == "compile" and "exited early" in r.error


def test_infinite_loop_in_forward(hostile_evaluator, relu):
    r = run_hostile(hostile_evaluator, relu, relu_model("while True:\n    pass"))
    assert not r.correct and "timed out" in r.error and r.stage == "correctness"


def test_infinite_loop_in_a_kernel(hostile_evaluator, relu):
    code = KERNEL + '''

@triton.jit
def spin_kernel(x_ptr, n):
    i = 0
    while i >= 0:
        i += 1


class ModelNew(nn.Module):
    def forward(self, x):
        spin_kernel[(1,)](x, x.numel())
        return relu(x)
'''
    r = run_hostile(hostile_evaluator, relu, reply(code))
    assert not r.correct and "timed out" in r.error


def test_memory_bomb(hostile_evaluator, relu):
    body = "hog = []\nwhile True:\n    hog.append(bytearray(64 << 20))\nreturn relu(x)"
    r = run_hostile(hostile_evaluator, relu, relu_model(body))
    assert not r.correct and ("memory" in r.error.lower())


def test_fork_bomb(hostile_evaluator, relu):
    r = run_hostile(hostile_evaluator, relu, relu_model("import os\nwhile True:\n    os.fork()"))
    assert not r.correct  # whichever limit fires first: the process count or the memory the forks dirty
    assert ("sandbox_violation" in r.hacks and "processes" in r.error) or "memory limit" in r.error


def test_child_processes_that_outlive_it(hostile_evaluator, relu):
    body = f'''import subprocess, os
subprocess.Popen(["sleep", "600", "{MARKER}"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "601", "{MARKER}"])
    os._exit(0)
return relu(x)'''
    r = run_hostile(hostile_evaluator, relu, relu_model(body))
    assert "thread_or_process_spawned" in r.hacks, (r.error, r.timings)


def test_killing_its_parent(hostile_evaluator, relu):
    restarts = hostile_evaluator.restarts
    r = run_hostile(hostile_evaluator, relu, relu_model("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nreturn relu(x)"))
    assert not r.correct and "sandbox_violation" in r.hacks
    assert hostile_evaluator.restarts == restarts + 1


@needs_bwrap
def test_writing_task_files_and_home(hostile_evaluator, relu):
    targets = [str(p) for p in PROTECTED] + [str(HOME / f"{MARKER}.txt")]
    body = f'''wrote = []
for path in {targets!r}:
    try:
        with open(path, "a") as f:
            f.write("pwned")
        wrote.append(path)
    except OSError:
        pass
assert not wrote, wrote
return relu(x)'''
    r = run_hostile(hostile_evaluator, relu, relu_model(body))
    assert r.correct, r.error  # every write failed (the files are not even there), so the computation went on
    assert r.hacks == ["sandbox_violation"] and "opens a file outside its scratch folder" in r.feedback


@needs_bwrap
def test_scratch_files_do_not_leak_into_the_next_evaluation(hostile_evaluator, relu):
    def body(token):
        return f'''import glob
other = [p for p in glob.glob("/tmp/**/{MARKER}*", recursive=True) + glob.glob("/dev/shm/{MARKER}*")
         if "{token}" not in p]
open("/tmp/{MARKER}-{token}", "w").write("x")
open("/dev/shm/{MARKER}-{token}", "w").write("x")
assert not other, other
return relu(x)'''

    first = run_hostile(hostile_evaluator, relu, relu_model(body("first")))
    second = run_hostile(hostile_evaluator, relu, relu_model(body("second")))
    assert first.correct and second.correct, (first.error, second.error)  # the second saw nothing of the first
    assert first.hacks == second.hacks == ["sandbox_violation"], (first.hack_details, second.hack_details)


@needs_bwrap
def test_network_connection_is_impossible(hostile_evaluator, relu):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    body = f'''import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
    reached = True
except OSError:
    reached = False
assert not reached
return relu(x)'''
    try:
        r = run_hostile(hostile_evaluator, relu, relu_model(body))
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert r.correct and r.hacks == ["sandbox_violation"] and "socket" in r.hack_details["sandbox_violation"]


@needs_bwrap
def test_secrets_and_answers_on_the_machine_stay_out_of_reach(hostile_evaluator, relu, monkeypatch):
    """A secret in $HOME and in the environment, the checkout's tasks and shipped answers, the working
    directory: the submission looks everywhere it could know of and raises with whatever it read;
    none of it may reach the result (feedback included)."""
    secret = f"{MARKER}-secret-{os.getpid()}"
    planted = HOME / f".{MARKER}-credentials"
    planted.write_text(secret)
    monkeypatch.setenv("KERNEL_ENV_TEST_API_KEY", secret)
    checkout = Path(__file__).resolve().parents[2]
    places = [str(planted), str(checkout / "tasks"), str(checkout / "tests"), str(Path.cwd()), "/proc/1/cwd",
              "/proc/1/root" + str(planted), "/proc/self/environ", "/proc/1/environ", "/proc/self/root" + str(planted)]
    body = f'''import os, pwd
found = []
home = pwd.getpwuid(os.getuid()).pw_dir
for path in {places!r} + [os.path.join(home, ".{MARKER}-credentials")]:
    try:
        if os.path.isdir(path):
            found.append(f"{{path}}: {{sorted(os.listdir(path))[:20]}}")
        else:
            found.append(f"{{path}}: {{open(path, 'rb').read(4096)!r}}")
    except OSError as exc:
        found.append(f"{{path}}: {{type(exc).__name__}}")
found.append(repr(dict(os.environ)))
raise RuntimeError(" | ".join(found))'''
    try:
        with Evaluator(backend="interpreter", workers=1, config=hostile_evaluator.config) as fresh:  # sees the env
            r = fresh.evaluate(relu, relu_model(body))
    finally:
        planted.unlink()
    text = r.to_json()
    assert secret not in text and "solution.md" not in text and "hostile" not in text.replace(MARKER, "")
    assert "sandbox_violation" in r.hacks and r.isolation == "bwrap"


def test_flooding_stdout(hostile_evaluator, relu):
    r = run_hostile(hostile_evaluator, relu, relu_model("while True:\n    print('x' * 65536)"))
    assert not r.correct and "sandbox_violation" in r.hacks and "output" in r.error


def test_flooding_the_result_channel(hostile_evaluator, relu):
    r = run_hostile(hostile_evaluator, relu, relu_model("return [relu(x)] * 300"))
    assert not r.correct and "result limit" in r.error and "sandbox_violation" in r.hacks


FORGE = """import os
from kernel_env import wire
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:"):
            wire.send(int(fd), {frame!r})
    except OSError:
        pass
return relu(x)"""


def test_forging_the_workers_exit_message(hostile_evaluator, relu):
    """A child that speaks for the worker is killed; the pool's stream stays in step (the next
    evaluation in run_hostile gets its own result, not this one's leftovers)."""
    frame = {"event": "exit", "elapsed": 0.1, "exit_code": 0, "log_tail": ""}
    r = run_hostile(hostile_evaluator, relu, relu_model(FORGE.format(frame=frame)))
    assert not r.correct and "sandbox_violation" in r.hacks and "only the harness may send" in r.error


def test_forging_trial_reports(hostile_evaluator, relu):
    frame = {"event": "trial", "index": 0, "launches": 1, "digests": [], "types": ["Tensor"], "outputs": []}
    r = run_hostile(hostile_evaluator, relu, relu_model(FORGE.format(frame=frame)))
    assert not r.correct and "sandbox_violation" in r.hacks and "malformed report" in r.error


@pytest.mark.parametrize("timing_slots", [False, True])
def test_forging_a_device_slot_request(relu, timing_slots):
    """A slot request the harness did not make (on a pool without slots, or one step too many on a
    pool with them) is a forged harness message: the run is killed, the slot given back."""
    frame = {"event": "slot", "mode": "exclusive"}
    config = EvalConfig(timeout_s=20, cpu_time_s=20, memory_mb=1024)
    with Evaluator(backend="interpreter", workers=1, config=config, timing_slots=timing_slots) as ev:
        r = ev.evaluate(relu, relu_model(FORGE.format(frame=frame)))
        assert not r.correct and "sandbox_violation" in r.hacks and "only the harness may send" in r.error
        assert ev.evaluate(relu, tagged(relu.solution, "after a forged slot")).clean  # nothing left held


@pytest.mark.parametrize("frame", [
    {"event": "stage", "stage": "timing", "refused": "forged", "worker_died": True},
    {"event": "exit", "refused": "forged"},
])
def test_a_child_cannot_claim_the_harness_failed(hostile_evaluator, relu, frame):
    """``refused`` and ``worker_died`` are the worker's and the trusted side's words: said by the
    candidate they must not turn its result into a blameless, uncached harness failure."""
    r = run_hostile(hostile_evaluator, relu, relu_model(FORGE.format(frame=frame)))
    assert not r.harness_error
    assert not r.clean if frame["event"] == "exit" else r.clean


@pytest.mark.parametrize("response, stage, words", [
    (reply("def broken(:\n    pass"), "parse", "syntax error"),
    ("Sorry, I cannot write this kernel.", "parse", "no ```python code block"),
    (relu_model("return relu(x).view(-1)"), "correctness", "shape"),
    (relu_model("return relu(x).to(torch.float16)"), "correctness", "dtype"),
    (relu_model("return relu(x) * float('nan')"), "correctness", "NaN"),
])
def test_bad_answers_are_reported(hostile_evaluator, relu, response, stage, words):
    r = run_hostile(hostile_evaluator, relu, response)
    assert r.stage == stage and not r.correct and words in r.error
