"""Single-turn GRPO on kernel-env tasks with Hugging Face TRL: one reply per prompt, scored by ``KernelReward``.

    python examples/trl_grpo.py                      # the tiny offline model, 2 steps on the CPU
    python examples/trl_grpo.py --model Qwen/Qwen2.5-Coder-1.5B-Instruct --steps 100 --completion-length 2048

Every reward call evaluates the whole generation batch at once on the evaluator pool.
"""

from __future__ import annotations

import argparse
import os
import time


def load_model(spec: str):
    """``tiny``: the offline ~1.4M-parameter Llama (random weights: rewards stay 0); else a path or hub id."""
    if spec == "tiny":
        from agents.policies import Policy

        policy = Policy.tiny(tokenizer="bpe")  # BPE: every level-1 prompt fits its 2048 positions
        return policy.model, policy.tokenizer
    from transformers import AutoTokenizer

    return spec, AutoTokenizer.from_pretrained(spec, padding_side="left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' or a Hugging Face model path / hub id")
    parser.add_argument("--backend", default="auto", choices=["auto", "cuda", "interpreter"])
    parser.add_argument("--level", type=int, action="append", help="KernelBench level(s) to train on (default 1)")
    parser.add_argument("--tasks", nargs="*", help="task ids (default: every task of the levels)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--generations", type=int, default=2, help="completions per prompt (the GRPO group)")
    parser.add_argument("--batch", type=int, default=2, help="completions per device and step")
    parser.add_argument("--completion-length", type=int, default=16)
    parser.add_argument("--reward", default="drkernel", help="a kernel_env.scoring.rewards preset")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--out", default="runs/trl-grpo")
    args = parser.parse_args()

    from trl import GRPOConfig, GRPOTrainer

    from kernel_env.integrations.trl import KernelReward, prompt_dataset

    levels = tuple(args.level or [1])
    dataset = prompt_dataset(levels=levels, backend=args.backend, task_ids=args.tasks).shuffle(seed=0)
    reward = KernelReward(levels=levels, backend=args.backend, reward=args.reward)
    model, tokenizer = load_model(args.model)
    config = GRPOConfig(
        output_dir=args.out, max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=args.batch, num_generations=args.generations,
        max_completion_length=args.completion_length, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=not _cuda(), bf16=False, seed=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    for row in trainer.state.log_history:
        if "reward" in row:
            print({k: row[k] for k in ("step", "reward", f"rewards/{reward.__name__}/mean", "kernel/correct",
                                       "kernel/hacked") if k in row})
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s; last batch: "
          f"{[r.stage for r in reward.last_results]}")
    reward.close()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
