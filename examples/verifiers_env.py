"""One verifiers (v1) episode of a kernel task, without an LLM server.

The env is loaded through verifiers' own loader and played end to end (interception server, harness,
trace); the "model" is a local scripted endpoint answering with the task's shipped answer. Point
``--base-url`` at an OpenAI-compatible server (and ``--model``) to play a real model instead.

    python examples/verifiers_env.py --backend interpreter
"""

import argparse
import asyncio
import time

import verifiers.v1 as vf

from kernel_env.integrations import verifiers as kernel_vf


async def episode(args) -> vf.Episode:
    env = kernel_vf.load_environment(backend=args.backend, max_turns=args.max_turns)
    tasks = list(env.taskset.include(ids=[args.task]))
    if args.base_url:
        client = vf.EvalClientConfig(base_url=args.base_url, api_key_var=args.api_key_var)
        (result,) = await kernel_vf.play(env, args.model, client, tasks)
        return result
    answer = next(t for t in env.taskset.kernel_tasks() if t.id == args.task).solution
    async with kernel_vf.scripted_endpoint(answer) as endpoint:
        (result,) = await kernel_vf.play(env, "scripted", endpoint.client, tasks)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="auto", help="auto, cuda or interpreter (CPU)")
    parser.add_argument("--task", default="L1/19_ReLU")
    parser.add_argument("--max-turns", type=int, default=1)
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: the scripted one)")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--api-key-var", default="OPENAI_API_KEY")
    args = parser.parse_args()

    start = time.time()
    result = asyncio.run(episode(args))
    trace = result.traces[0]
    for i, turn in enumerate(trace.info["kernel_turns"], 1):
        print(f"turn {i}: reward {turn['reward']:.3f}  correct={turn['correct']}  hacks={turn['hacks']}")
    print(trace.info["final_feedback"])
    print(f"episode ok={result.ok}  rewards={ {k: r.score for k, r in trace.rewards.items() if r} }  "
          f"metrics={trace.metrics}  ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
