"""``kernel-agents``: train a policy, solve one task with sequential refinement, evaluate fast_p.

    kernel-agents train --algo trloo --env kernel_env/KernelBench-L1-v0 --model tiny --steps 4 \\
        --env-arg backend=interpreter
    kernel-agents solve --env kernel_env/KernelBench-L1-v0 --model PATH --turns 4 --task L1/19_ReLU
    kernel-agents eval  --env kernel_env/KernelBench-L1-v0 --model PATH --turns 2 --p 0 1

``--env-arg KEY=VALUE`` passes keyword arguments to the env (values are read as JSON when they parse);
``--backend`` is shorthand for ``--env-arg backend=...``. ``train --set KEY=VALUE`` overrides any
``TrainConfig`` field (``algo_options.KEY`` for the recipe, e.g. ``--set algo_options.prs=false``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _env_kwargs(args) -> dict[str, Any]:
    kwargs = {}
    for item in args.env_arg or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--env-arg expects KEY=VALUE, got {item!r}")
        kwargs[key] = _value(raw)
    if getattr(args, "backend", None):
        kwargs["backend"] = args.backend
    return kwargs


def _common(p: argparse.ArgumentParser, *, env_default: str | None = None) -> None:
    p.add_argument("--env", default=env_default, required=env_default is None, help="Gymnasium id of a text env")
    p.add_argument("--model", default="tiny", help="'tiny', a local path, a checkpoint's policy/ dir, or a hub id")
    p.add_argument("--env-arg", action="append", metavar="KEY=VALUE", help="env keyword argument (repeatable)")
    p.add_argument("--backend", help="kernel envs: auto, cuda or interpreter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="e.g. bfloat16 on GPUs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kernel-agents", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="RL-train a policy on an env")
    _common(t, env_default="agents/TargetString-v0")
    t.add_argument("--algo", default=None, help="trloo, topr, reinforce_ada, rloo, grpo, opmd, asymre")
    t.add_argument("--config", help="a JSON or TOML TrainConfig (flags override it)")
    t.add_argument("--steps", type=int)
    t.add_argument("--out", help="output directory (metrics.jsonl, metrics.png, checkpoints/)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("solve", help="sequential test-time scaling: refine for K turns, keep the best turn")
    _common(s)
    s.add_argument("--turns", type=int, default=4)
    s.add_argument("--task", help="task id (default: the env's choice for --seed)")
    s.add_argument("--samples", type=int, default=1, help="independent refinement chains, run in parallel")
    _sampling(s)
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")

    e = sub.add_parser("eval", help="fast_p over a suite: best turn per task, correct and speedup > p")
    _common(e)
    e.add_argument("--turns", type=int, default=1)
    e.add_argument("--samples", type=int, default=1, help="chains per task")
    e.add_argument("--limit", type=int, help="evaluate only the first N tasks")
    e.add_argument("--tasks", help="comma-separated task ids")
    e.add_argument("--p", type=float, nargs="+", default=[0.0, 1.0], help="speedup thresholds for fast_p")
    e.add_argument("--out", help="write the JSON report here")
    _sampling(e)
    return parser


def _sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-context", type=int)


# --------------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from .config import TrainConfig
    from .trainer import train

    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    changes: dict[str, Any] = {"model": args.model, "env": args.env, "seed": args.seed, "device": args.device}
    if args.algo:
        changes["algo"] = args.algo
    if args.dtype:
        changes["dtype"] = args.dtype
    if args.steps is not None:
        changes["steps"] = args.steps
    changes["out_dir"] = args.out or (config.out_dir if args.config else f"runs/{changes.get('algo', config.algo)}")
    env_kwargs = _env_kwargs(args)
    if env_kwargs:
        changes["env_kwargs"] = {**config.env_kwargs, **env_kwargs}
    if args.resume:
        changes["resume"] = True
    if args.no_progress:
        changes["progress"] = False
    config = config.with_(**changes)
    for item in args.set or []:
        config = config.set(item)
    config.algorithm()  # fail fast on a bad recipe
    result = train(config)
    last = result.history[-1] if result.history else {}
    print(json.dumps({"out_dir": str(result.out_dir), "steps": len(result.history),
                      **{k: last.get(k) for k in ("reward", "correct", "fast_1", "hack_rate", "tokens_per_s")}}))
    return 0


def _episodes(args, task_ids: list[str | None], samples: int):
    """Run ``samples`` chains of ``args.turns`` turns for every task; returns the rollout."""
    from .policies import Policy, SamplingParams
    from .rollout import EnvPool, collect

    policy = Policy.load(args.model, device=args.device, dtype=args.dtype, seed=args.seed)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    max_context = args.max_context or policy.max_context
    if params.max_new_tokens >= max_context - 16:
        params.max_new_tokens = max(max_context // 4, 16)
    import torch

    torch.manual_seed(args.seed)
    n_envs = min(len(task_ids) * samples, 64)
    pool = EnvPool.make(args.env, n_envs, **{"max_turns": args.turns, **_env_kwargs(args)})
    try:
        if task_ids == ["*"]:
            task_ids = pool.task_ids() or [None]
        rollout = collect(policy, pool, task_ids, group_size=samples, max_turns=args.turns, params=params,
                          max_prompt_tokens=max_context - params.max_new_tokens, seed=args.seed)
    finally:
        pool.close()
    return rollout


def _best(rollout, by: str):
    """Best turn per trajectory (``by="traj"``) or per task group (``by="group"``), via best_of_turns."""
    import torch

    from .algorithms import best_of_turns

    samples = rollout.samples
    scores = torch.tensor([s.reward for s in samples])
    key = torch.tensor([getattr(s, by) for s in samples])
    turns = torch.tensor([s.turn for s in samples])
    groups, index = best_of_turns(scores, group_ids=key, turns=turns)
    return {int(g): samples[int(i)] for g, i in zip(groups, index) if int(i) >= 0}


def cmd_solve(args) -> int:
    rollout = _episodes(args, [args.task], args.samples)
    best = _best(rollout, "group")[0]
    turns = [
        {"chain": s.traj, "turn": s.turn + 1, "reward": s.reward, "correct": s.correct, "speedup": s.speedup,
         "hacks": s.hacks, "response_tokens": len(s.response_ids)}
        for s in rollout.samples
    ]
    summary = {"task_id": best.task_id, "turns": turns,
               "best": {"chain": best.traj, "turn": best.turn + 1, "reward": best.reward, "correct": best.correct,
                        "speedup": best.speedup, "text": best.text}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"task {best.task_id}")
    for t in turns:
        extra = f" speedup {t['speedup']:.2f}" if t["speedup"] is not None else ""
        hacks = f" hacks {','.join(t['hacks'])}" if t["hacks"] else ""
        print(f"  chain {t['chain']} turn {t['turn']}: reward {t['reward']:.3f} correct {t['correct']}{extra}{hacks}")
    print(f"best: chain {best.traj} turn {best.turn + 1}, reward {best.reward:.3f}\n--- answer ---\n{best.text}")
    return 0


def _fast(result: dict, p: float) -> bool:
    """KernelBench's fast_p: correct, free of hacks, and (p > 0) a speedup above p; fast_0 is correctness."""
    from kernel_env.bench import is_fast

    return is_fast(result["correct"] and not result["hacks"], result["speedup"], p)


def cmd_eval(args) -> int:
    task_ids: list[str | None] = args.tasks.split(",") if args.tasks else ["*"]
    if args.limit and task_ids == ["*"]:
        from .rollout import EnvPool

        probe = EnvPool.make(args.env, 1, **{"max_turns": args.turns, **_env_kwargs(args)})
        try:
            task_ids = (probe.task_ids() or [None])[: args.limit]
        finally:
            probe.close()
    rollout = _episodes(args, task_ids, args.samples)
    best = _best(rollout, "group")
    per_task = {}
    for s in best.values():
        per_task[s.task_id] = {"reward": s.reward, "correct": bool(s.correct), "speedup": s.speedup,
                               "turn": s.turn + 1, "hacks": s.hacks}
    n = max(len(per_task), 1)
    report = {
        "env": args.env, "model": args.model, "turns": args.turns, "samples": args.samples, "tasks": len(per_task),
        "mean_best_reward": sum(v["reward"] for v in per_task.values()) / n,
        **{f"fast_{p:g}": sum(_fast(v, p) for v in per_task.values()) / n for p in args.p},
        "per_task": per_task,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps({k: v for k, v in report.items() if k != "per_task"}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"train": cmd_train, "solve": cmd_solve, "eval": cmd_eval}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
