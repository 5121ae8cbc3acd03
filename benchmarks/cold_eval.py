"""The cold baseline: a fresh Python per evaluation that imports torch and Triton, then runs the
reference and the candidate for the correctness trials in-process (no sandbox, no checks).

Usage: python cold_eval.py TASK_PROGRAM_FILE CANDIDATE_CODE_FILE TRIALS -> prints JSON.
"""

import os
import sys
import time

os.environ["TRITON_INTERPRET"] = "1"
import json  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402,F401


def main() -> None:
    program, code, trials = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
    task, cand = types.ModuleType("task"), types.ModuleType("cand")
    exec(compile(program, "task.py", "exec"), task.__dict__)
    exec(compile(code, sys.argv[2], "exec"), cand.__dict__)
    forward = 0.0
    ok = True
    for seed in range(trials):
        torch.manual_seed(seed)
        inputs = task.get_inputs()
        torch.manual_seed(0)
        ref = task.Model(*task.get_init_inputs())
        torch.manual_seed(0)
        new = cand.ModelNew(*task.get_init_inputs())
        with torch.no_grad():
            start = time.perf_counter()
            want = ref(*inputs)
            got = new(*inputs)
            forward += time.perf_counter() - start
        ok &= bool(torch.allclose(want, got, atol=1e-2, rtol=1e-2))
    print(json.dumps({"forward_s": forward, "correct": ok}))


if __name__ == "__main__":
    main()
