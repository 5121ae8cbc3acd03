"""The per-device slot: runs check in parallel and measure alone, timed runs first, in the harness's order."""

import os
import signal
import subprocess
import threading
import time

import psutil
import pytest

from kernel_env.evaluator.scheduler import EXCLUSIVE, SHARED, DeviceSlot, Hold, default_workers_per_device
from kernel_env.inside.worker import _SlotWait
from kernel_env.protocol import SLOT_ORDER

WAIT_S = 30.0  # generous: CI runs at three times its core count


def _in_thread(fn):
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_any_number_of_runs_check_at_once():
    slot, inside = DeviceSlot(), threading.Barrier(4, timeout=WAIT_S)

    def check():
        slot.acquire(SHARED)
        inside.wait()  # all four hold it at the same moment, or this times out
        slot.release(SHARED)

    threads = [_in_thread(check) for _ in range(4)]
    for t in threads:
        t.join(WAIT_S)
    assert not any(t.is_alive() for t in threads) and not inside.broken


def test_a_timed_run_waits_for_the_checks_and_then_holds_the_device_alone():
    slot, events = DeviceSlot(), []
    slot.acquire(SHARED)
    timed = _in_thread(lambda: (slot.acquire(EXCLUSIVE), events.append("timing")))
    time.sleep(0.2)
    assert events == []  # a check is still running
    slot.release(SHARED)
    timed.join(WAIT_S)
    assert events == ["timing"]
    late = _in_thread(lambda: (slot.acquire(SHARED), events.append("check")))
    time.sleep(0.2)
    assert events == ["timing"]  # no check starts while a run times
    slot.release(EXCLUSIVE)
    late.join(WAIT_S)
    assert events == ["timing", "check"]


def test_a_queued_timed_run_goes_before_new_checks():
    """Writers first: a stream of new evaluations cannot starve timing (back-pressure on checks)."""
    slot, order = DeviceSlot(), []
    slot.acquire(SHARED)
    timed = _in_thread(lambda: (slot.acquire(EXCLUSIVE), order.append("timing"), slot.release(EXCLUSIVE)))
    deadline = time.monotonic() + WAIT_S
    while not slot._queued_exclusive and time.monotonic() < deadline:
        time.sleep(0.01)
    newcomer = _in_thread(lambda: (slot.acquire(SHARED), order.append("new check"), slot.release(SHARED)))
    time.sleep(0.2)
    assert order == []  # the newcomer did not slip in before the queued timed run
    slot.release(SHARED)
    timed.join(WAIT_S)
    newcomer.join(WAIT_S)
    assert order == ["timing", "new check"]


def test_a_hold_follows_the_harness_order_and_gives_everything_back():
    slot = DeviceSlot()
    hold = Hold(slot)
    with pytest.raises(ValueError):
        hold.take(SHARED)  # a run starts alone (its timer calibrates)
    for mode in SLOT_ORDER:
        hold.take(mode)
        assert hold.mode == mode
    with pytest.raises(ValueError):
        hold.take(EXCLUSIVE)  # a fourth step is forged
    hold.release()
    other = Hold(slot)
    other.take(EXCLUSIVE)  # the device is free again
    other.release()
    assert slot.exclusive_runs == 3
    with pytest.raises(RuntimeError):
        slot.release(SHARED)


@pytest.mark.parametrize("devices, cores, expected", [(1, 16, 4), (8, 16, 2), (1, 2, 2), (4, 2, 1), (1, 1, 1)])
def test_workers_per_device_follow_the_cores(devices, cores, expected):
    assert default_workers_per_device(devices, cores) == expected


def test_the_worker_stops_a_waiting_run_and_lets_it_go_when_granted():
    """While a run waits for its slot, its whole process group is stopped; the grant wakes it and
    writes the byte it waits for. A request out of order is refused."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    read_fd, write_fd = os.pipe()
    try:
        wait = _SlotWait(proc.pid, write_fd, allowed=True)
        assert not wait.wanted(SHARED)  # the first step is the exclusive one
        assert wait.wanted(EXCLUSIVE) and wait.waiting
        _until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED)
        assert not wait.wanted(SHARED)  # a second ask while waiting
        wait.granted({"kind": "grant"})
        assert os.read(read_fd, 1) == b"g" and not wait.waiting
        _until(lambda: psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED)
        assert wait.wanted(SHARED) and wait.waited_s > 0
        assert not _SlotWait(proc.pid, write_fd, allowed=False).wanted(EXCLUSIVE)  # not asked to use slots
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(read_fd)
        os.close(write_fd)


def _until(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_pool_with_slots_checks_in_parallel_and_times_alone(bundled):
    """Two workers sharing one device slot: every run's timer calibration and timing held the device
    alone (no other hold overlaps them), every run took its three steps, and the results are clean."""
    from helpers import tagged

    from kernel_env import Evaluator

    task = bundled["L1/19_ReLU"]
    with Evaluator(backend="interpreter", workers=2, timing_slots=True, seed_secret=11) as ev:
        results = ev.map([(task, tagged(task.solution, f"slot {i}")) for i in range(4)])
        slot = ev._slots[0]
    assert all(r.clean for r in results), [r.error for r in results]
    holds = list(slot.history)
    runs = sum(mode == SHARED for mode, _, _ in holds)
    assert runs >= 5 and slot.exclusive_runs == 2 * runs  # 4 candidates + at least one reference
    for i, (mode, start, end) in enumerate(holds):
        if mode == EXCLUSIVE:
            overlapping = [h for j, h in enumerate(holds) if j != i and h[1] < end and start < h[2]]
            assert not overlapping, (mode, start, end, overlapping)


def test_time_stopped_in_the_queue_is_not_the_runs():
    wait = _SlotWait(pid=2 ** 22 + 12345, go_fd=-1, allowed=True)  # no such process: signals are no-ops
    assert wait.wanted(EXCLUSIVE)
    started = wait.waiting_since
    assert wait.paused_s(started + 5.0) == pytest.approx(5.0)  # counted while it still waits
    wait.granted({"kind": "grant"})  # the run is gone: writing its byte fails quietly
    assert wait.paused_s(time.monotonic() + 100) == pytest.approx(wait.waited_s)
