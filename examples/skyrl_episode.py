"""One SkyRL-gym episode of a kernel task, played with the task's shipped answer.

SkyRL's generator does this per trajectory: ``skyrl_gym.make(env_class, env_config=..., extras=row)``,
``init(prompt)``, then ``step(reply)`` until ``done``. Here the "model" is the shipped answer.

    python examples/skyrl_episode.py --backend interpreter
"""

import argparse
import time

import skyrl_gym

from kernel_env.integrations import skyrl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="auto", help="auto, cuda or interpreter (CPU)")
    parser.add_argument("--task", default="L1/19_ReLU")
    parser.add_argument("--max-turns", type=int, default=1)
    args = parser.parse_args()

    skyrl.register()
    rows = skyrl.dataset_rows(backend=args.backend, max_turns=args.max_turns)  # what a parquet file would hold
    row = next(r for r in rows if r["task_id"] == args.task)
    extras = {k: v for k, v in row.items() if k not in ("prompt", "env_class")}
    env = skyrl_gym.make(row["env_class"], env_config={"backend": args.backend},
                         extras={**extras, "max_turns": args.max_turns})
    prompt, _ = env.init(row["prompt"])
    print(f"task {args.task}: prompt of {len(prompt[-1]['content'])} characters")

    answer = next(t for t in env.env.tasks if t.id == args.task).solution
    done, start = False, time.time()
    while not done:
        out = env.step(answer)
        done = out["done"]
        meta = out["metadata"]
        print(f"turn {meta['turn']}: reward {out['reward']:.3f}  correct={meta['correct']}  hacks={meta['hacks']}")
    print(meta["feedback"])
    print(f"metrics {env.get_metrics()}  ({time.time() - start:.1f} s)")
    env.close()


if __name__ == "__main__":
    main()
