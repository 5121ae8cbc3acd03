"""Multi-turn GRPO with Hugging Face TRL: the model calls a ``submit_kernel`` tool, reads the evaluator's
feedback and may try again (``GRPOTrainer(environment_factory=...)``, experimental in TRL 1.16).

    python examples/trl_multiturn.py                 # the tiny offline model, 2 steps on the CPU
    python examples/trl_multiturn.py --model Qwen/Qwen3-1.7B --steps 100 --completion-length 4096 --turns 3

The tiny model's weights are random: it never writes a tool call, so its rollouts end unscored (reward 0);
the run shows the wiring. Real training needs a model whose chat template and fine-tuning support tool calls
(Qwen2.5/3/3.5, Llama 3.1/3.2, ...: TRL knows how to parse their calls).
"""

from __future__ import annotations

import argparse
import os
import time


def load_model(spec: str):
    """``tiny``: the offline Llama with the tool-calling template of ``kernel_env.integrations.trl``."""
    from kernel_env.integrations.trl import use_tool_template

    if spec == "tiny":
        from agents.policies import Policy

        policy = Policy.tiny(tokenizer="bpe")  # BPE: every level-1 prompt fits its 2048 positions
        return policy.model, use_tool_template(policy.tokenizer)
    from transformers import AutoTokenizer

    return spec, AutoTokenizer.from_pretrained(spec, padding_side="left")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' or a Hugging Face model path / hub id")
    parser.add_argument("--backend", default="auto", choices=["auto", "cuda", "interpreter"])
    parser.add_argument("--level", type=int, action="append", help="KernelBench level(s) to train on (default 1)")
    parser.add_argument("--tasks", nargs="*", help="task ids (default: every task of the levels)")
    parser.add_argument("--turns", type=int, default=2, help="tool calls evaluated per rollout")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--completion-length", type=int, default=16, help="tokens per rollout, tool replies included")
    parser.add_argument("--aggregate", default="max", choices=["max", "last", "sum"], help="turn rewards -> rollout")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--out", default="runs/trl-multiturn")
    args = parser.parse_args()

    from trl import GRPOConfig, GRPOTrainer

    from kernel_env.integrations.trl import prompt_dataset, tool_env_factory

    levels = tuple(args.level or [1])
    dataset = prompt_dataset(levels=levels, backend=args.backend, task_ids=args.tasks, max_turns=args.turns,
                             tools=True).shuffle(seed=0)
    factory = tool_env_factory(levels=levels, backend=args.backend, max_turns=args.turns, aggregate=args.aggregate)
    model, tokenizer = load_model(args.model)
    config = GRPOConfig(
        output_dir=args.out, max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=args.batch, num_generations=args.generations,
        max_completion_length=args.completion_length, max_tool_calling_iterations=args.turns,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=not _cuda(),
        bf16=False, seed=0,
    )
    trainer = GRPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                          environment_factory=factory)  # the reward: KernelToolEnv.get_reward
    start = time.perf_counter()
    trainer.train()
    for row in trainer.state.log_history:
        if "reward" in row:
            print({k: row[k] for k in ("step", "reward", "rewards/KernelToolEnv/mean", "tools/call_frequency")
                   if k in row})
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
