"""Supervised warm start: fine-tune a policy on (prompt, reply) pairs before RL (Dr. Kernel starts RL
from a cold-start SFT on multi-turn trajectories).

Pairs come from the bundled tasks' shipped answers (the prompt is exactly the env's first message)
or from recorded episode transcripts (JSONL, one episode per line with its ``messages``; every
assistant turn is a target given the conversation before it, kept only when marked correct if the
record says). The loss is the mean negative log-likelihood of the reply tokens (the prompt is
context, not target). Full fine-tuning, LoRA or ReMix (``Policy.enable_adapter``), and the same
checkpoint format as RL (``Policy.save``), so ``kernel-agents train --model OUT/policy`` starts from it.
With ReMix each batch is scored under ``samples`` routings drawn from the routers, and the routers
learn from the leave-one-out estimator on those losses (``agents.remix``).

The bundled split (``split``): a task is held out when its number is a multiple of 5 (L1/5, L1/10,
..., L2/5, ...): 7 of the 39 level-1 tasks, 3 of 15 level-2, 1 of 5 level-3. Train on the rest;
measure on the held-out ones.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .policies import Policy


@dataclass(frozen=True)
class Pair:
    messages: tuple[dict, ...]  # the conversation up to the reply (user turns, earlier replies, feedback)
    reply: str
    source: str = ""  # task id or transcript line, for the log


def held_out(task_id: str) -> bool:
    """The documented split of the bundled suite: task numbers divisible by 5 are held out."""
    number = task_id.split("/")[-1].split("_")[0]
    return number.isdigit() and int(number) % 5 == 0


def split(task_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(train, held out) by ``held_out``, each in the given order."""
    ids = list(task_ids)
    return [t for t in ids if not held_out(t)], [t for t in ids if held_out(t)]


def pairs_from_tasks(tasks, backend: str = "interpreter", max_turns: int = 1) -> list[Pair]:
    """One pair per task with a shipped answer: the env's first message -> that answer."""
    from kernel_env import KernelEnv

    env = KernelEnv(tasks=list(tasks), backend=backend, max_turns=max_turns)
    try:  # resetting never starts an evaluator
        pairs = []
        for task in env.tasks:
            if task.solution:
                prompt, _ = env.reset(options={"task_id": task.id})
                pairs.append(Pair(({"role": "user", "content": prompt},), task.solution, task.id))
        return pairs
    finally:
        env.close()


def pairs_from_transcripts(path: str | Path, correct_only: bool = True) -> list[Pair]:
    """Every assistant turn of every episode in a JSONL file, given the messages before it.

    A line is ``{"messages": [...], "correct": [bool per assistant turn]}`` (``correct`` optional; with
    ``correct_only`` a turn marked incorrect is skipped, one without a mark is kept)."""
    pairs = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = record["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: expected a JSON object with 'messages' ({exc})") from None
        marks = list(record.get("correct") or [])
        turn = 0
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            good = marks[turn] if turn < len(marks) else True
            turn += 1
            if good or not correct_only:
                pairs.append(Pair(tuple(dict(m) for m in messages[:i]), str(message.get("content", "")), f"{path}:{n}"))
    return pairs


def encode(policy: Policy, pair: Pair, max_context: int) -> tuple[list[int], list[int]]:
    """(prompt ids, reply ids + end of turn); a prompt too long keeps its end (where the task is asked)."""
    prompt = policy.encode_chat(list(pair.messages))
    reply = policy.tokenizer.encode(pair.reply, add_special_tokens=False) + [policy.tokenizer.eos_token_id]
    reply = reply[: max(1, max_context // 2)]
    return prompt[-(max_context - len(reply)):], reply


def row_nll(policy: Policy, batch: Sequence[tuple[list[int], list[int]]]) -> torch.Tensor:
    """Summed negative log-likelihood of each row's reply tokens ([B]; gradients flow in grad mode)."""
    logp, mask = policy.logprobs([p for p, _ in batch], [r for _, r in batch])
    return -(logp * mask).sum(-1)


def nll(policy: Policy, batch: Sequence[tuple[list[int], list[int]]]) -> torch.Tensor:
    """Mean negative log-likelihood per reply token over the batch: the supervision loss (a ReMix
    policy routes by top m here)."""
    return row_nll(policy, batch).sum() / max(sum(len(r) for _, r in batch), 1)


def backward_supervision(policy: Policy, batch: Sequence[tuple[list[int], list[int]]]) -> float:
    """Backpropagate the supervision loss of ``batch`` into ``.grad``; returns its value.

    A ReMix policy is scored under ``samples`` routings drawn from its routers: the value is their
    mean, and the routers' gradient is the RLOO estimate (``agents.remix.backward_rloo``)."""
    if policy.remix is None:
        loss = nll(policy, batch)
        loss.backward()
        return float(loss.detach())
    from .remix import backward_rloo

    tokens = max(sum(len(r) for _, r in batch), 1)
    lengths = [len(p) + len(r) for p, r in batch]
    per_row = backward_rloo(policy.model, lambda: row_nll(policy, batch), lengths, policy.remix.samples,
                            scale=1 / tokens)
    return float(per_row.sum()) / tokens


def evaluate_loss(policy: Policy, encoded, batch_size: int = 4) -> float:
    """The supervision loss of ``encoded`` pairs, without gradients (dropout off)."""
    if not encoded:
        return math.nan
    policy.model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            chunk = encoded[i : i + batch_size]
            n = sum(len(r) for _, r in chunk)
            total += float(nll(policy, chunk)) * n
            tokens += n
    return total / max(tokens, 1)


def sft(policy: Policy, pairs: Sequence[Pair], *, epochs: int = 1, lr: float = 1e-4, batch_size: int = 4,
        max_context: int | None = None, seed: int = 0, held: Sequence[Pair] = (), log=print) -> list[dict]:
    """Fine-tune ``policy`` in place on ``pairs``; one log row per optimizer step (and the held-out
    loss before and after, when ``held`` is given)."""
    if not pairs:
        raise ValueError("no (prompt, reply) pairs to train on")
    context = max_context or policy.max_context
    train = [encode(policy, p, context) for p in pairs]
    test = [encode(policy, p, context) for p in held]
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=lr)
    rng = random.Random(seed)
    history = [{"step": 0, "held_out_loss": evaluate_loss(policy, test)}] if test else []
    step = 0
    for epoch in range(epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            policy.model.train()
            chunk = [train[j] for j in order[i : i + batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss = backward_supervision(policy, chunk)
            torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), 1.0)
            optimizer.step()
            step += 1
            row = {"step": step, "epoch": epoch, "loss": loss, "tokens": sum(len(r) for _, r in chunk)}
            history.append(row)
            log(json.dumps(row))
    if test:
        history.append({"step": step, "held_out_loss": evaluate_loss(policy, test)})
    return history
