"""The environments: the multi-turn text env, its vector env, the numeric tuning env, their spaces.

Registration (``kernel_env.envs.registration``) needs none of them: ids point at entry-point strings,
so ``import kernel_env`` registers every id without importing torch.
"""
