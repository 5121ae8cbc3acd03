"""What runs in the sandbox: the warm worker, the runs it forks, and the watchers inside them.

Nothing here is trusted, and nothing here imports the trusted side: these modules speak to it through
``kernel_env.protocol`` and ``kernel_env.wire`` only (a test enforces it).
"""
