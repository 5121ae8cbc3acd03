"""The GPU check: one command that a machine with a GPU (lent for minutes, bare) runs to measure
what the CPU cannot: the GPU tests, the shipped answers at full size with the model beside them,
the hack suite on CUDA, timing spread, profiler cost, CUDA and fork, memory, throughput.

``python3 -m kernel_env.gpucheck OUTDIR`` (``make gpu-check``; ``import kernel_env`` works before
the check installs Gymnasium). Modules: ``cli`` (entry), ``catalog`` (the
checks and caps), ``runner`` (a forked child per check, cut at its cap), ``report`` (report.json and
summary.txt), ``bundle`` (carried wheels and bubblewrap), ``procs`` (/proc and nvidia-smi),
``pytests`` (pytest sessions), ``stats``, ``shared``, and one ``check_*`` module per group of checks.
Nothing here imports torch or the rest of the project at module level, so the dry run works on a
Python that has neither.
"""
