"""The RL trainer: collect -> score -> filter -> advantages -> update -> log, one loop, top to bottom.

``train(config)`` runs it. The trainer holds no algorithm logic: each choice a recipe makes is a
registry lookup by name, and every strategy hands back the same shapes, so the loop never asks
which one it runs. Each step:

1. collect: the strategy ``COLLECTORS[algo.sampling]`` (``agents.collectors``) returns a
   ``Collection``: the rollout, extra inputs for the advantage estimator (Reinforce-Ada's global
   baseline), and counters for the log;
2. score: trainer log-probs of every sampled response under the weights that sampled it (pi_old);
3. filter: PRS keep mask on rows, mismatch rejection / truncated importance weights on tokens
   (sampler mu vs trainer pi_old);
4. advantages: the estimator ``ADVANTAGE_ESTIMATORS[algo.advantage]`` applied at the level
   ``ADVANTAGE_LEVELS[algo.advantage_level]`` (on all rows: a filtered row still counts in its
   group's baseline);
5. update: the rows become one flat ``Batch`` (``agents.batch``); ``epochs`` x ``minibatches``
   optimizer steps, each accumulating gradients over micro-batches of rows, clipped to ``max_grad_norm``;
6. log: one JSON line of metrics, the progress bar, checkpoints, and a PNG of the curves at the end.

Every random choice of step k is seeded from (seed, k), so a resumed run replays exactly what an
uninterrupted one would have done.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .algorithms import (
    ADVANTAGE_ESTIMATORS,
    ADVANTAGE_LEVELS,
    POLICY_LOSSES,
    agg_denominator,
    mismatch_metrics,
    prs_keep_mask,
    rejection_mask,
    rest_of_trajectory,
    token_veto_mask,
    truncated_importance_weights,
)
from .batch import Batch
from .collectors import COLLECTORS
from .config import AlgoConfig, TrainConfig
from .policies import Policy, SamplingParams, VLLMSampler
from .rollout import EnvPool, Rollout, collect, pad_rows, sample_tensors


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict[str, Any]]
    policy: Policy

    def mean(self, key: str, first: int | None = None, last: int | None = None) -> float:
        rows = self.history[:first] if first else self.history[-last:] if last else self.history
        values = [r[key] for r in rows if r.get(key) is not None]
        return sum(values) / len(values) if values else math.nan


# --------------------------------------------------------------------------------------------------
# the loop


def train(
    config: TrainConfig,
    *,
    policy: Policy | None = None,
    pool: EnvPool | None = None,
    sampler=None,
) -> TrainResult:
    """Train ``config.model`` on ``config.env`` with the recipe ``config.algo``; see the module docstring."""
    algo = config.algorithm()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")

    # -- set up: policy, optimizer, envs, resume ---------------------------------------------------
    start, checkpoint = 0, latest_checkpoint(out) if config.resume else None
    if checkpoint:  # resuming: the checkpoint's weights win over a ``policy`` passed in
        policy = Policy.load(str(checkpoint / "policy"), device=config.device, dtype=config.dtype)
    elif policy is None:
        policy = Policy.load(config.model, device=config.device, dtype=config.dtype, seed=config.seed,
                             **config.model_options)
        policy.enable_adapter(config.adapter, config.adapter_options, seed=config.seed)
    policy.without_dropout()  # pi_old must be the sampler's distribution (see Policy.without_dropout)
    if config.gradient_checkpointing:
        policy.model.gradient_checkpointing_enable()
    if sampler is None and config.sampler == "vllm":
        sampler = VLLMSampler(model=config.model, **config.vllm_options)
        sampler.sync(policy)  # the engine starts from the trainer's weights (a resumed or LoRA policy)
    elif sampler is None and config.sampler != "hf":
        raise ValueError(f"unknown sampler {config.sampler!r}; expected 'hf' or 'vllm'")
    sampler = sampler or policy
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=config.lr, betas=tuple(config.adam_betas),
                                  weight_decay=config.weight_decay)
    if checkpoint:
        state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
    collector = COLLECTORS[algo.sampling]
    owns_pool = pool is None
    if pool is None:
        n_envs = config.tasks_per_step * collector.envs_per_task(algo, config)
        pool = EnvPool.make(config.env, n_envs, **{"max_turns": config.max_turns, **config.env_kwargs})
    all_tasks = pool.task_ids()
    params = SamplingParams(config.max_new_tokens, config.temperature, config.top_p, config.top_k)
    max_context = config.max_context or policy.max_context
    max_prompt = max_context - config.max_new_tokens
    if max_prompt < 16:
        raise ValueError(f"max_context {max_context} leaves no room for prompts after {config.max_new_tokens} new tokens")
    rollouts = partial(collect, policy, pool, max_turns=config.max_turns, params=params, max_prompt_tokens=max_prompt,
                       sampler=sampler, system_prompt=config.system_prompt,
                       generate_batch_size=config.generate_batch_size)
    log = MetricsLog(out / "metrics.jsonl", keep_before=start)
    history = list(log.rows)

    steps = range(start, config.steps)
    bar = _progress(steps, config)
    try:
        for step in bar:
            t_step = time.perf_counter()
            torch.manual_seed(_seed(config.seed, step, 0))
            lr = config.lr * (min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 1. collect
            tasks = pick_tasks(all_tasks, config.tasks_per_step, random.Random(_seed(config.seed, step, 1)))
            policy.model.eval()
            collection = collector.collect(rollouts, tasks, algo, config, seed=_seed(config.seed, step, 2))
            rollout = collection.rollout
            samples = rollout.samples
            t_collect = time.perf_counter() - t_step

            # 2. score under pi_old (the weights that sampled)
            t_train = time.perf_counter()
            policy.model.train()  # dropout is off (``without_dropout``): train mode only for gradient checkpointing
            prompts = [s.prompt_ids for s in samples]
            responses = [s.response_ids for s in samples]
            with torch.no_grad():
                old_logp, mask = score(policy, prompts, responses, config)
            behavior_logp = pad_rows([s.sampler_logprobs for s in samples]).to(old_logp)
            rows = sample_tensors(samples)

            # 3. filters: rows (PRS) and tokens (mismatch); advantages below still see every row
            gen = torch.Generator().manual_seed(_seed(config.seed, step, 3))
            loss_mask, token_weights, prs_kept, mismatch = apply_filters(algo, rows, old_logp, behavior_logp, mask, gen)

            # 4. advantages
            advantages = compute_advantages(algo, rows, **collection.advantage_inputs)
            if _trajectory_ratio(algo):
                rows["traj_log_ratio_rest"] = rest_of_trajectory(old_logp, behavior_logp, mask, rows["traj_ids"])

            # 5. update, on one flat batch of rows
            batch = Batch(prompts=prompts, responses=responses, rows=rows, old_logp=old_logp,
                          behavior_logp=behavior_logp, mask=mask, loss_mask=loss_mask, token_weights=token_weights,
                          advantages=advantages)
            update_stats = update(policy, optimizer, algo, config, batch, seed=_seed(config.seed, step, 4))
            if sampler is not policy and hasattr(sampler, "sync"):
                sampler.sync(policy)  # an inference engine samples the next batch with the new weights
            t_train = time.perf_counter() - t_train

            # 6. log
            metrics = {"step": step + 1}
            metrics.update(rollout_metrics(collection.measured or rollout))
            metrics.update(turns=len(samples), trajectories=len(rollout.trajectories))  # what was trained on
            metrics.update(update_stats)
            metrics.update({k: float(v) for k, v in mismatch.items()})
            metrics["mismatch_kl"] = metrics.pop("mismatch_kl_k3")
            metrics["prs_kept"] = float(prs_kept.float().mean()) if samples else 1.0
            metrics["kept_token_share"] = float(loss_mask.sum() / mask.sum().clamp(min=1))
            metrics["advantage_abs"] = float(advantages.abs().mean()) if samples else 0.0
            metrics["sampler_nll"] = policy.entropy_of(behavior_logp, mask)
            metrics.update(collection.stats)
            step_s = time.perf_counter() - t_step
            metrics.update(
                time_collect_s=t_collect,
                time_train_s=t_train,
                gen_tokens_per_s=rollout.generated_tokens / max(rollout.generate_s, 1e-9),
                train_tokens_per_s=update_stats["train_tokens"] / max(t_train, 1e-9),
                tokens_per_s=rollout.generated_tokens / max(step_s, 1e-9),
                lr=lr,
            )
            log.write(metrics)
            history.append(metrics)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(reward=f"{metrics['reward']:.3f}", correct=f"{metrics['correct'] or 0:.2f}",
                                loss=f"{metrics['loss']:.3g}")
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
                save_checkpoint(out, step + 1, policy, optimizer, config)
    finally:
        if owns_pool:
            pool.close()
    if start < config.steps:
        save_checkpoint(out, config.steps, policy, optimizer, config)
    if config.plot and history:
        plot_metrics(history, out / "metrics.png", title=f"{config.algo} on {config.env}")
    return TrainResult(out_dir=out, history=history, policy=policy)


# --------------------------------------------------------------------------------------------------
# the pieces, in the order the loop uses them


def _seed(seed: int, step: int, stream: int) -> int:
    return (seed * 1_000_003 + step * 101 + stream) % (2**63)


def pick_tasks(all_tasks: list[str] | None, k: int, rng: random.Random) -> list[str | None]:
    """k distinct tasks when the suite has enough, else with repeats; None lets the env choose."""
    if not all_tasks:
        return [None] * k
    if k <= len(all_tasks):
        return rng.sample(all_tasks, k)
    return [rng.choice(all_tasks) for _ in range(k)]


def apply_filters(algo: AlgoConfig, rows, old_logp, behavior_logp, mask, generator):
    """(loss mask, token weights or None, PRS keep mask [N], mismatch metrics).

    PRS drops rows (correct turns whose kernels cover little of the runtime; a turn without a
    coverage figure is kept). Mismatch rejection drops turns or whole trajectories
    (``mismatch_level``) whose geometric-mean pi_old/mu leaves [reject_lower, reject_upper], and the
    veto drops those with a token ratio below ``token_veto``; truncated IS reweights instead.
    ``rejected_share`` counts the mismatch filters only.
    """
    prs_kept = torch.ones(mask.shape[0], dtype=torch.bool)
    if algo.prs:
        coverage = torch.nan_to_num(rows["coverage"], nan=1.0)
        prs_kept = prs_keep_mask(rows["correct"], coverage, low=algo.prs_low, width=algo.prs_width,
                                 generator=generator)
    consistent = mask.clone()
    if "reject" in algo.mismatch:
        consistent = rejection_mask(old_logp, behavior_logp, consistent, level=algo.mismatch_level,
                                    lower=algo.reject_lower, upper=algo.reject_upper, traj_ids=rows["traj_ids"])
        if algo.token_veto is not None:
            consistent = token_veto_mask(old_logp, behavior_logp, consistent, threshold=algo.token_veto,
                                         level=algo.mismatch_level, traj_ids=rows["traj_ids"])
    token_weights = None
    if "tis" in algo.mismatch:
        token_weights = truncated_importance_weights(old_logp, behavior_logp, mask, level=algo.mismatch_level,
                                                     cap=algo.tis_cap, traj_ids=rows["traj_ids"])
    metrics = mismatch_metrics(old_logp, behavior_logp, mask, kept=consistent)
    return consistent & prs_kept.unsqueeze(1), token_weights, prs_kept, metrics


def score(policy: Policy, prompts, responses, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Trainer log-probs for all rows, in micro-batches: (logp [N, R], mask [N, R]) on the CPU."""
    width = max((len(r) for r in responses), default=0)
    logp = torch.zeros(len(responses), width)
    mask = torch.zeros(len(responses), width, dtype=torch.bool)
    for idx in _chunks(list(range(len(responses))), config.micro_batch_size):
        lp, m = policy.logprobs([prompts[i] for i in idx], [responses[i] for i in idx],
                                temperature=_train_temperature(config))
        logp[idx, : lp.shape[1]] = lp.float().cpu()
        mask[idx, : m.shape[1]] = m.cpu()
    return logp, mask


def _train_temperature(config: TrainConfig) -> float:
    """The trainer scores with the sampler's temperature, so pi and mu describe the same distribution."""
    return config.temperature if config.temperature > 0 else 1.0


def compute_advantages(algo: AlgoConfig, rows: dict[str, torch.Tensor], **inputs: torch.Tensor) -> torch.Tensor:
    """One advantage per row: the recipe's estimator at the recipe's level (``ADVANTAGE_LEVELS``).

    ``inputs`` are the collection's extra estimator inputs, one value per row (Reinforce-Ada's
    ``baseline_means``); they pass through to the estimator untouched.
    """
    r = rows["rewards"]
    if r.numel() == 0:
        return r.clone()
    level = ADVANTAGE_LEVELS[algo.advantage_level]
    return level(ADVANTAGE_ESTIMATORS[algo.advantage], r, group_ids=rows["group_ids"], traj_ids=rows["traj_ids"],
                 turns=rows["turns"], gamma=algo.gamma, **inputs)


def update(policy, optimizer, algo: AlgoConfig, config: TrainConfig, batch: Batch, *, seed: int) -> dict[str, float]:
    """``epochs`` x ``minibatches`` optimizer steps over shuffled rows; gradients accumulate over micro-batches."""
    if len(batch) == 0 or not bool(batch.loss_mask.any()):
        return {"loss": 0.0, "grad_norm": 0.0, "optimizer_steps": 0, "train_tokens": 0, "clip_fraction": 0.0}
    params = policy.trainable_parameters()
    gen = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    train_tokens, steps = 0, 0
    for _ in range(config.epochs):
        order = torch.randperm(len(batch), generator=gen).tolist()
        for mb in _chunks(order, math.ceil(len(batch) / config.minibatches)):
            optimizer.zero_grad(set_to_none=True)
            denominator = agg_denominator(batch.loss_mask[mb], algo.agg)  # the minibatch's, not each micro-batch's
            for idx in _chunks(mb, config.micro_batch_size):
                micro = batch.take(idx)
                loss, metrics = micro_batch_loss(policy, algo, config, micro, denominator)
                loss.backward()  # micro-batch losses add up to the minibatch's: the gradient ignores the split
                sums["loss"] += float(loss.detach())
                for k, v in metrics.items():
                    sums[k] += float(v)
                    counts[k] += 1
                train_tokens += micro.tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            sums["grad_norm"] += float(grad_norm)
            optimizer.step()
            steps += 1
    stats = {"loss": sums.pop("loss") / steps, "grad_norm": sums.pop("grad_norm") / steps}
    stats.update({k: v / counts[k] for k, v in sums.items()})
    stats.setdefault("clip_fraction", 0.0)  # losses without a clip report none: nothing was clipped
    stats.update(optimizer_steps=steps, train_tokens=train_tokens)
    return stats


def _trajectory_ratio(algo: AlgoConfig) -> bool:
    return algo.loss == "topr" and algo.loss_options.get("ratio_level", "trajectory") == "trajectory"


def micro_batch_loss(policy, algo: AlgoConfig, config: TrainConfig, micro: Batch,
                     denominator: float | None = None) -> tuple[torch.Tensor, dict]:
    """The recipe's policy loss on one micro-batch under the current weights (gradients flow): its share
    of the minibatch's loss when ``denominator`` is the minibatch's ``agg_denominator``.

    ``seq-mean-token-sum-norm`` divides by a constant (Dr. GRPO): the generation budget
    ``max_new_tokens`` unless the recipe sets ``norm_constant``, never a micro-batch's own length."""
    device = policy.device
    logp, _ = policy.logprobs(micro.prompts, micro.responses, temperature=_train_temperature(config))
    extra = {} if micro.token_weights is None else {"token_weights": micro.token_weights.to(device)}
    if algo.agg == "seq-mean-token-sum-norm":
        extra.setdefault("norm_constant", algo.loss_options.get("norm_constant", config.max_new_tokens))
    if "traj_log_ratio_rest" in micro.rows:
        extra["traj_log_ratio_rest"] = micro.rows["traj_log_ratio_rest"].to(device)
    return POLICY_LOSSES[algo.loss](
        logp.float(),
        micro.old_logp.to(device),
        micro.advantages.to(device),
        micro.loss_mask.to(device),
        behavior_logp=micro.behavior_logp.to(device),
        agg=algo.agg,
        agg_denominator=denominator,
        **extra,
        **{k: v for k, v in algo.loss_options.items() if k not in extra},
    )


def rollout_metrics(rollout: Rollout) -> dict[str, Any]:
    """Reward, correctness, fast_1, hack rate, coverage: per turn and per trajectory (best turn).

    Quantities the env does not report (the toy env has no speedup or coverage) are ``None``.
    """
    samples = rollout.samples
    trajs = rollout.trajectories
    n = max(len(samples), 1)

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    has_correct = any(s.correct is not None for s in samples)
    has_compiled = any(s.compiled is not None for s in samples)
    timed = any(s.timed for s in samples)
    best = [max(t.turns, key=lambda s: s.reward) for t in trajs if t.turns]
    return {
        "reward": mean([s.reward for s in samples]) or 0.0,
        "reward_first_turn": mean([s.reward for s in samples if s.turn == 0]),
        "reward_last_turn": mean([t.turns[-1].reward for t in trajs if t.turns]),
        "best_reward": mean([b.reward for b in best]),
        "return": mean([t.total_reward for t in trajs]),
        "compiled": mean([float(bool(s.compiled)) for s in samples]) if has_compiled else None,
        "correct": mean([float(bool(s.correct)) for s in samples]) if has_correct else None,
        "solved": mean([float(any(s.correct for s in t.turns)) for t in trajs]) if has_correct else None,
        "fast_1": mean([float(any(s.correct and not s.hacks and (s.speedup or 0) > 1 for s in t.turns))
                        for t in trajs]) if timed else None,
        "hack_rate": sum(bool(s.hacks) for s in samples) / n,
        "coverage": mean([s.coverage for s in samples if s.correct and not s.hacks]),
        "speedup": mean([s.speedup for s in samples if s.correct and not s.hacks]),
        "response_tokens": mean([len(s.response_ids) for s in samples]),
        "prompt_tokens": mean([len(s.prompt_ids) for s in samples]),
        "eos_share": mean([float(s.finished) for s in samples]),
        "context_cut_share": mean([float(s.context_cut) for s in samples]),
        "turns": len(samples),
        "trajectories": len(trajs),
        "generated_tokens": rollout.generated_tokens,
    }


def _chunks(items: list, size: int):
    size = max(int(size), 1)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(steps, config: TrainConfig):
    if not config.progress:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=f"{config.algo}", unit="step", initial=steps.start, total=config.steps)


# --------------------------------------------------------------------------------------------------
# metrics, checkpoints, plots


class MetricsLog:
    """Append-only JSONL; on resume, lines from steps after the checkpoint are dropped (they will be redone)."""

    def __init__(self, path: Path, keep_before: int = 0):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists() and keep_before > 0:
            self.rows = [r for r in map(json.loads, path.read_text().splitlines()) if r["step"] <= keep_before]
        path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def save_checkpoint(out: Path, step: int, policy: Policy, optimizer, config: TrainConfig) -> Path:
    """``checkpoints/step_NNNNNN/``: ``policy/`` (loadable with ``--model``) and the optimizer state."""
    root = out / "checkpoints"
    path = root / f"step_{step:06d}"
    policy.save(path / "policy")
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "config": config.to_dict()},
               path / "trainer_state.pt")
    old = sorted(p for p in root.iterdir() if p.name.startswith("step_"))
    for stale in old[: max(len(old) - max(config.keep_checkpoints, 1), 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return path


def latest_checkpoint(out: Path) -> Path | None:
    root = Path(out) / "checkpoints"
    done = sorted(p for p in root.glob("step_*") if (p / "trainer_state.pt").exists()) if root.exists() else []
    return done[-1] if done else None


PLOT_KEYS = ("reward", "best_reward", "correct", "fast_1", "hack_rate", "coverage", "loss", "clip_fraction",
             "mismatch_kl", "grad_norm", "response_tokens", "tokens_per_s")


def plot_metrics(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """A grid of the curves that have data, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PLOT_KEYS if any(r.get(k) is not None for r in history)]
    cols = 4
    rows = max(math.ceil(len(keys) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["step"], r[key]) for r in history if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_title(key)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
