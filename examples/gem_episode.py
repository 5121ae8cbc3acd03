"""One GEM episode of a kernel task, played with the task's shipped answer.

    python examples/gem_episode.py --backend interpreter
"""

import argparse
import time

import gem

from kernel_env.integrations.gem import register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="auto", help="auto, cuda or interpreter (CPU)")
    parser.add_argument("--task", default="L1/19_ReLU")
    parser.add_argument("--max-turns", type=int, default=1)
    args = parser.parse_args()

    register()
    env = gem.make("kernel_env:KernelBench-L1-v0", backend=args.backend, max_turns=args.max_turns,
                   task_id=args.task)  # GEM's reset takes no options: the task is a constructor argument
    obs, info = env.reset(seed=0)
    print(f"task {info['task_id']}: prompt of {len(obs)} characters")
    answer = next(t for t in env.env.tasks if t.id == args.task).solution
    done, start = False, time.time()
    while not done:
        obs, reward, terminated, truncated, info = env.step(answer)
        done = terminated or truncated
        print(f"turn {info['turn']}: reward {reward:.3f}  correct={info['correct']}  hacks={info['hacks']}")
    print(obs)
    print(f"({time.time() - start:.1f} s)")
    env.close()


if __name__ == "__main__":
    main()
