"""``kernel-agents``: warm-start a policy with SFT, train it with RL, solve one task with sequential refinement,
evaluate fast_p.

    kernel-agents train --algo trloo --env kernel_env/KernelBench-L1-v0 --model tiny --steps 4 \\
        --env-arg backend=interpreter
    kernel-agents train --list-settings              # every --set KEY, its type, default and meaning
    kernel-agents solve --env kernel_env/KernelBench-L1-v0 --model PATH --turns 4 --task L1/19_ReLU
    kernel-agents eval  --env kernel_env/KernelBench-L1-v0 --model PATH --turns 2 --p 0 1
    kernel-agents sft   --model smollm2 --adapter remix --set remix.k=4 --out runs/sft   # warm start

``train --set KEY=VALUE`` overrides any ``TrainConfig`` field, VALUE read as the field's type (bools as
true/false/yes/no/1/0, ``none`` for an optional field, ``a,b`` for a tuple, JSON for a mapping);
``algo_options.KEY`` overrides a field of the recipe (``--set algo_options.prs=false``), and
``train --algo NAME --list-settings`` lists them all. ``--env-arg KEY=VALUE`` passes a keyword argument
to the env, read as the type of its default (JSON, else a string, when it has none); ``--backend`` is
shorthand for ``--env-arg backend=...``.

``solve`` and ``eval`` run every chain (tasks x ``--samples``) side by side, ``--parallel`` at a time
(default 64): one generate call per turn, every evaluation of the turn in flight at once. (The kernel
envs' evaluator pool size is ``--env-arg workers=N``.) A progress bar of turns done, with the tasks
solved so far, goes to stderr when it is a terminal; ``--progress`` / ``--no-progress`` force it.

A user's mistake (unknown algorithm, setting, env, task or env argument; a value of the wrong type;
a missing model path or config file) ends with ``kernel-agents: error: ...``, one line, exit status 2.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from .adapters import ADAPTERS
from .config import ALGORITHMS, ConfigError, parse_value


def _common(p: argparse.ArgumentParser, *, train: bool = False) -> None:
    """Shared flags. For ``train`` they default to None, so a ``--config`` file's values stand."""

    def default(value):
        return None if train else value

    p.add_argument("--env", default=default(None), required=not train,
                   help="Gymnasium id of a text env" + (" (default agents/TargetString-v0)" if train else ""))
    p.add_argument("--model", default=default("tiny"),
                   help="'tiny', 'smollm2' (or a .gguf file), a local path, a checkpoint's policy/ dir, or a hub id "
                        "(default tiny)")
    p.add_argument("--env-arg", action="append", metavar="KEY=VALUE", help="env keyword argument (repeatable)")
    p.add_argument("--backend", help="kernel envs: auto, cuda or interpreter")
    p.add_argument("--seed", type=int, default=default(0))
    p.add_argument("--device", default=default("cpu"))
    p.add_argument("--dtype", default=None, help="e.g. bfloat16 on GPUs")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: " + ("on" if train else "only on a terminal") + ")")


def _at_least_1(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _chains(p: argparse.ArgumentParser, *, turns: int, samples_help: str) -> None:
    p.add_argument("--turns", type=_at_least_1, default=turns)
    p.add_argument("--samples", type=_at_least_1, default=1, help=samples_help)
    p.add_argument("--parallel", type=_at_least_1, default=64,
                   help="chains run side by side: envs in the pool and prompts per generate call (default 64)")
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-context", type=int)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kernel-agents", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="RL-train a policy on an env")
    _common(t, train=True)
    t.add_argument("--algo", help=f"recipe: {', '.join(ALGORITHMS)} (default trloo)")
    t.add_argument("--config", help="a JSON or TOML TrainConfig (flags override it)")
    t.add_argument("--steps", type=int)
    t.add_argument("--adapter", choices=list(ADAPTERS), help="which weights train (default full); its settings: "
                   "--set lora.KEY=VALUE or --set remix.KEY=VALUE")
    t.add_argument("--out", help="output directory (metrics.jsonl, metrics.png, checkpoints/)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--list-settings", action="store_true",
                   help="list every --set KEY (and the recipe's algo_options) with type and default, then exit")

    s = sub.add_parser("solve", help="sequential test-time scaling: refine for K turns, keep the best turn")
    _common(s)
    s.add_argument("--task", help="task id (default: the env's choice for --seed)")
    _chains(s, turns=4, samples_help="independent refinement chains, run in parallel")
    s.add_argument("--json", action="store_true", help="print a JSON summary instead of text")

    e = sub.add_parser("eval", help="fast_p over a suite: best turn per task, correct and speedup > p")
    _common(e)
    e.add_argument("--limit", type=_at_least_1, help="evaluate only the first N tasks")
    e.add_argument("--tasks", help="comma-separated task ids")
    e.add_argument("--p", type=float, nargs="+", default=[0.0, 1.0], help="speedup thresholds for fast_p")
    e.add_argument("--out", help="write the JSON report here")
    _chains(e, turns=1, samples_help="chains per task")

    f = sub.add_parser("sft", help="supervised warm start on (prompt, reply) pairs, before RL")
    f.add_argument("--model", default="tiny-bpe", help="as for train (default tiny-bpe: the prompts fit it)")
    f.add_argument("--data", action="append", metavar="bundled|FILE.jsonl",
                   help="the bundled suite's shipped answers, or episode transcripts (repeatable; default bundled)")
    f.add_argument("--levels", type=int, nargs="+", help="bundled levels to use (default all)")
    f.add_argument("--all-tasks", action="store_true", help="train on the held-out bundled tasks too")
    f.add_argument("--epochs", type=_at_least_1, default=1)
    f.add_argument("--lr", type=float, default=1e-4)
    f.add_argument("--batch-size", type=_at_least_1, default=4)
    f.add_argument("--max-context", type=_at_least_1, help="prompt + reply tokens (default: the model's limit)")
    f.add_argument("--adapter", choices=list(ADAPTERS), default="full",
                   help="which weights train: every one, a LoRA adapter, or a ReMix mixture of LoRAs")
    f.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an adapter setting, e.g. lora.r=16 or remix.k=4 (repeatable; train --list-settings lists them)")
    f.add_argument("--out", default="runs/sft", help="writes policy/ (for --model) and metrics.jsonl")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="cpu")
    f.add_argument("--dtype", default=None)
    return parser


# --------------------------------------------------------------------------------------------------
# checks that turn a user's mistake into one line before anything slow starts


def _env_params(env_id: str) -> dict[str, inspect.Parameter] | None:
    """The env constructor's keyword parameters (None: it takes any); ConfigError for an unknown id."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    import kernel_env  # noqa: F401  registers kernel_env/*

    from . import toy_env  # noqa: F401  registers agents/*
    from .rollout import import_env_module

    import_env_module(env_id)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        known = [i for i in gym.registry if i.split("/")[0] in ("agents", "kernel_env")]
        raise ConfigError(f"unknown env {env_id!r}; " + (f"did you mean {', '.join(close)}?" if close else
                                                         f"text envs: {', '.join(known)}")) from exc
    creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
    params = inspect.signature(creator).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {n: p for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _env_kwargs(args, env_id: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` plus ``--env-arg`` / ``--backend``, each value read as the type of the env's default;
    every key checked against the env's constructor."""
    params = _env_params(env_id)
    kwargs = dict(base or {})
    for item in args.env_arg or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-arg expects KEY=VALUE, got {item!r}")
        default = params[key].default if params and key in params else None
        tp = None if default is None or default is inspect.Parameter.empty else type(default)
        kwargs[key] = parse_value(raw, tp, f"--env-arg {key}")
    if args.backend:
        kwargs["backend"] = args.backend
    unknown = [k for k in kwargs if params is not None and k not in params]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(params), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"it takes {', '.join(params)}"
        raise ConfigError(f"env {env_id} takes no argument {unknown[0]!r}; {hint}")
    return kwargs


def _check_model(spec: str) -> None:
    """A local model path that is not there fails here, not deep inside transformers. (A hub id is
    only checked by the hub.)"""
    from .gguf import find_gguf, is_gguf

    if is_gguf(spec):
        try:
            find_gguf(spec)
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        return
    name, _, seed = spec.partition(":")
    if name in ("tiny", "tiny-bpe"):
        if seed and not seed.isdigit():
            raise ConfigError(f"--model {spec}: the seed after 'tiny:' must be an integer")
        return
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec
    if looks_local and not Path(spec).exists():
        raise ConfigError(f"model path {spec} does not exist (--model takes tiny, a local path or a hub id)")


def _resolve_tasks(requested: list[str | None], known: list[str] | None, limit: int | None) -> list[str | None]:
    """``["*"]`` becomes the env's task list; named tasks must be in it (when the env lists its tasks)."""
    if requested == ["*"]:
        requested = list(known or [None])
    elif known is not None:
        for task in requested:
            if task is not None and task not in known:
                close = difflib.get_close_matches(task, known, n=3)
                raise ConfigError(f"unknown task {task!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return requested[:limit]


# --------------------------------------------------------------------------------------------------
# train


def _show(value: Any) -> str:
    """A value as ``--set`` would take it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _list_settings(algo: str) -> None:
    from dataclasses import fields

    from .config import TrainConfig, recipe

    def table(obj, prefix: str) -> None:
        rows = [(prefix + f.name, str(f.type), _show(getattr(obj, f.name)), f.metadata.get("help", ""))
                for f in fields(obj)]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])

    print("settings: train --set KEY=VALUE, or a --config JSON/TOML file (name, type, default, meaning)")
    table(TrainConfig(), "")
    print(f"\nalgo_options of {algo} (--algo NAME --list-settings shows another recipe's):")
    table(recipe(algo), "algo_options.")
    for name, cls in ADAPTERS.items():
        if cls is not None:
            print(f"\n{name} settings (with --set adapter={name}):")
            table(cls(), f"{name}.")


def cmd_train(args) -> int:
    from .config import TrainConfig
    from .trainer import train

    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.algo:
        config = config.with_(algo=args.algo)
    if args.list_settings:
        _list_settings(config.algo)
        return 0
    flags = {"model": args.model, "env": args.env, "seed": args.seed, "device": args.device, "dtype": args.dtype,
             "steps": args.steps, "progress": args.progress, "resume": args.resume or None, "adapter": args.adapter}
    changes = {k: v for k, v in flags.items() if v is not None}
    changes["out_dir"] = args.out or (config.out_dir if args.config else f"runs/{config.algo}")
    config = config.with_(**changes)
    for item in args.set or []:
        config = config.set(item)
    config = config.with_(env_kwargs=_env_kwargs(args, config.env, config.env_kwargs)).validate()
    _check_model(config.model)
    result = train(config)
    last = result.history[-1] if result.history else {}
    print(json.dumps({"out_dir": str(result.out_dir), "steps": len(result.history),
                      **{k: last.get(k) for k in ("reward", "correct", "fast_1", "hack_rate", "tokens_per_s")}}))
    return 0


# --------------------------------------------------------------------------------------------------
# solve and eval


def _progress(args, tasks: int, chains: int):
    """(bar, on_turn): turns done out of chains x turns, and tasks solved so far. On by default only
    when stderr is a terminal (tqdm's ``disable=None``), so logs and pipes stay clean."""
    from tqdm import tqdm

    bar = tqdm(total=chains * args.turns, desc=args.command, unit="turn", file=sys.stderr, dynamic_ncols=True,
               disable=None if args.progress is None else not args.progress)
    solved: set[int] = set()

    def on_turn(samples) -> None:
        solved.update(s.group for s in samples if s.correct)
        bar.set_postfix(solved=f"{len(solved)}/{tasks}", refresh=False)
        bar.update(sum(args.turns - s.turn if s.last else 1 for s in samples))  # an ended chain skips its rest

    return bar, on_turn


def _episodes(args, task_ids: list[str | None]):
    """Run ``--samples`` chains of ``--turns`` turns for every task; returns the rollout.

    The pool is sized after ``"*"`` becomes the task list, for all chains at once (``--parallel`` at
    most): each wave of chains generates in one call and has its evaluations in flight together."""
    import torch

    from .policies import Policy, SamplingParams
    from .rollout import EnvPool, collect

    kwargs = {"max_turns": args.turns, **_env_kwargs(args, args.env)}
    _check_model(args.model)
    pool = EnvPool.make(args.env, 1, **kwargs)
    try:
        task_ids = _resolve_tasks(task_ids, pool.task_ids(), getattr(args, "limit", None))
        chains = len(task_ids) * args.samples
        pool.envs += EnvPool.make(args.env, min(chains, args.parallel) - 1, **kwargs).envs
        policy = Policy.load(args.model, device=args.device, dtype=args.dtype, seed=args.seed)
        params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
        max_context = args.max_context or policy.max_context
        if params.max_new_tokens >= max_context - 16:
            params.max_new_tokens = max(max_context // 4, 16)
        torch.manual_seed(args.seed)
        bar, on_turn = _progress(args, len(task_ids), chains)
        with bar:
            return collect(policy, pool, task_ids, group_size=args.samples, max_turns=args.turns, params=params,
                           max_prompt_tokens=max_context - params.max_new_tokens, seed=args.seed, on_turn=on_turn)
    finally:
        pool.close()


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
    rollout = _episodes(args, [args.task])
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
    rollout = _episodes(args, args.tasks.split(",") if args.tasks else ["*"])
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
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "per_task"}, indent=2))
    return 0


def cmd_sft(args) -> int:
    """Pairs from the bundled split's train tasks (held-out ones measured) and/or transcripts -> SFT."""
    from .config import TrainConfig
    from .policies import Policy
    from .sft import pairs_from_tasks, pairs_from_transcripts, sft, split

    _check_model(args.model)
    adapter = TrainConfig(adapter=args.adapter)
    for item in args.set or []:
        if not item.startswith(("lora.", "remix.")):
            raise ConfigError(f"sft --set takes lora.KEY=VALUE or remix.KEY=VALUE, got {item!r}")
        adapter = adapter.set(item)
    adapter.adapter_settings()
    pairs, held = [], []
    for source in args.data or ["bundled"]:
        if source == "bundled":
            from tasks import load_tasks

            tasks = load_tasks("bundled", size="small", levels=args.levels)
            train_ids, held_ids = split(t.id for t in tasks)
            keep = set(train_ids) | (set(held_ids) if args.all_tasks else set())
            pairs += pairs_from_tasks([t for t in tasks if t.id in keep])
            held += [] if args.all_tasks else pairs_from_tasks([t for t in tasks if t.id in set(held_ids)])
        elif Path(source).is_file():
            try:
                pairs += pairs_from_transcripts(source)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            raise ConfigError(f"--data {source}: neither 'bundled' nor a JSONL file")
    if not pairs:
        raise ConfigError("no (prompt, reply) pairs in the data given")
    import torch

    torch.manual_seed(args.seed)
    policy = Policy.load(args.model, device=args.device, dtype=args.dtype, seed=args.seed)
    policy.enable_adapter(adapter.adapter, adapter.adapter_options, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "metrics.jsonl").open("w") as log:
        history = sft(policy, pairs, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                      max_context=args.max_context, seed=args.seed, held=held,
                      log=lambda line: print(line, file=log, flush=True))
    policy.save(out / "policy")
    losses = [r["loss"] for r in history if "loss" in r]
    held_losses = [r["held_out_loss"] for r in history if "held_out_loss" in r]
    print(json.dumps({"out": str(out / "policy"), "pairs": len(pairs), "held_out_pairs": len(held),
                      "steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1],
                      "held_out_loss_before": held_losses[0] if held_losses else None,
                      "held_out_loss_after": held_losses[-1] if held_losses else None}))
    return 0


def _user_errors() -> tuple[type[Exception], ...]:
    """The user's-mistake types: ours, and those of the libraries already loaded (a CUDA backend asked
    for without a GPU, an unknown task source); loading a library only to test would cost seconds."""
    found = [ConfigError]
    for module, name in (("kernel_env.evaluator.base", "BackendUnavailable"), ("tasks.task", "TaskError")):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Run a command; the user's mistake is one line on stderr and exit status 2. Anything else is a
    bug and keeps its traceback. A closed stdout (``| head``) ends quietly."""
    from kernel_env.cli import quiet_on_closed_pipe

    args = _parser().parse_args(argv)
    return quiet_on_closed_pipe(lambda: _run(args))


def _run(args) -> int:
    try:
        return {"train": cmd_train, "solve": cmd_solve, "eval": cmd_eval, "sft": cmd_sft}[args.command](args)
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"kernel-agents: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
