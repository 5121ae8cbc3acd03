"""TRL 1.16: the prompt dataset is the env's prompt, ``KernelReward`` pays what ``KernelEnv.step`` pays
(one parallel submission per batch), a real ``GRPOTrainer`` runs on it, and the tool env works both
called directly and inside the trainer's tool loop. CPU only, with the tiny offline model."""

import inspect
import json

import pytest
import trl  # noqa: F401 - the dev extras install it: a missing library fails here, never skips

from kernel_env.envs.text_env import KernelEnv
from kernel_env.evaluator.submission import extract_code
from kernel_env.integrations.trl import (
    TOOL_NOTE,
    KernelReward,
    KernelToolEnv,
    completion_text,
    prompt_dataset,
    tool_env_factory,
    tool_prompt,
    use_tool_template,
)

pytestmark = pytest.mark.timeout(300)
RELU, SOFTMAX = "L1/19_ReLU", "L1/20_Softmax"


def env_prompt(task_id, max_turns=1):
    env = KernelEnv(backend="interpreter", max_turns=max_turns)
    return env.reset(options={"task_id": task_id})[0]


def grpo_config(tmp_path, **changes):
    from trl import GRPOConfig

    base = {"output_dir": str(tmp_path), "max_steps": 2, "per_device_train_batch_size": 2, "num_generations": 2,
            "max_completion_length": 16, "logging_steps": 1, "save_strategy": "no", "report_to": [],
            "use_cpu": True, "bf16": False, "seed": 0, "disable_tqdm": True}
    return GRPOConfig(**{**base, **changes})


def test_prompt_dataset_is_the_env_reset_prompt():
    ds = prompt_dataset(backend="interpreter", levels=(1,))
    assert ds.column_names == ["prompt", "task_id"]
    assert len(ds) == len(KernelEnv(backend="interpreter", levels=(1,)).tasks)
    for row in ds.select([0, 18, len(ds) - 1]):
        assert row["prompt"] == [{"role": "user", "content": env_prompt(row["task_id"])}]
    tools = prompt_dataset(backend="interpreter", task_ids=[SOFTMAX, RELU], max_turns=3, tools=True, repeat=2)
    assert tools["task_id"] == [SOFTMAX, RELU, SOFTMAX, RELU]
    assert tools[1]["prompt"][0]["content"] == tool_prompt(env_prompt(RELU, max_turns=3))


def test_completion_text_reads_plain_and_conversational_completions():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "reply"}]) == "reply"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "fb"},
                            {"role": "assistant", "content": "b"}]) == "b"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "x"}]}]) == "x"


def test_kernel_reward_scores_a_batch_in_one_parallel_submission(evaluator, bundled, monkeypatch):
    calls = []
    original = evaluator.map
    monkeypatch.setattr(evaluator, "map", lambda items, **kw: calls.append(list(items)) or original(calls[-1], **kw))
    reward = KernelReward(evaluator=evaluator)
    assert reward.__name__ == "kernel_reward" and reward.backend == "interpreter"
    completions = [[{"role": "assistant", "content": bundled[RELU].solution}], "garbage, no code",
                   [{"role": "assistant", "content": bundled[SOFTMAX].solution}]]
    metrics, extra = {}, {}
    got = reward(prompts=[None] * 3, completions=completions, task_id=[RELU, RELU, SOFTMAX],
                 completion_ids=None, log_metric=metrics.__setitem__, log_extra=extra.__setitem__)
    assert len(calls) == 1 and [t.id for t, _ in calls[0]] == [RELU, RELU, SOFTMAX]  # the whole batch at once
    env = KernelEnv(evaluator=evaluator, max_turns=1)
    honest = []
    for task_id, text in ((RELU, bundled[RELU].solution), (SOFTMAX, bundled[SOFTMAX].solution)):
        env.reset(options={"task_id": task_id})
        honest.append(env.step(text)[1])
    assert got == [honest[0], reward.reward_config.failure_value, honest[1]]
    assert min(honest) > 0
    assert [r.correct for r in reward.last_results] == [True, False, True]
    assert not any(r.hacks for r in reward.last_results)
    assert metrics == {"kernel/compiled": 2 / 3, "kernel/correct": 2 / 3, "kernel/hacked": 0.0}
    assert extra["kernel_verdict"] == ["correct", "failed at parse", "correct"]
    with pytest.raises(ValueError, match="no task"):
        reward(prompts=[None], completions=["x"], task_id=["L9/nope"])
    env.close()
    reward.close()


def test_grpo_trainer_runs_with_the_kernel_reward(evaluator, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    from agents.policies import Policy

    policy = Policy.tiny()
    reward = KernelReward(evaluator=evaluator)
    dataset = prompt_dataset(backend="interpreter", task_ids=[RELU, SOFTMAX])
    trainer = GRPOTrainer(model=policy.model, reward_funcs=reward, args=grpo_config(tmp_path),
                          train_dataset=dataset, processing_class=policy.tokenizer)
    trainer.train()
    assert trainer.state.global_step == 2
    logged = [row for row in trainer.state.log_history if "reward" in row]
    assert len(logged) == 2
    assert all("rewards/kernel_reward/mean" in row and "kernel/correct" in row for row in logged)
    assert len(reward.last_results) == 2 and {r.task_id for r in reward.last_results} <= {RELU, SOFTMAX}
    reward.close()


def test_tool_env_submit_kernel_gives_feedback_and_the_honest_reward(evaluator, bundled):
    from transformers.utils import get_json_schema

    make = tool_env_factory(evaluator=evaluator, max_turns=2)
    env = make()
    # what TRL 1.16 takes as tools: public functions of the class but reset and get_reward
    tools = [n for n, _ in inspect.getmembers(type(env), inspect.isfunction)
             if n not in ("reset", "get_reward") and not n.startswith("_")]
    assert tools == ["submit_kernel"]
    schema = get_json_schema(env.submit_kernel)["function"]
    assert schema["name"] == "submit_kernel" and schema["parameters"]["required"] == ["code"]

    assert env.get_reward() == 0.0  # never reset, never called
    assert env.reset(task_id=RELU, prompt=[{"role": "user", "content": ""}]) == tool_prompt(env_prompt(RELU, 2))
    assert env.reset(task_id=RELU, prompt=[{"role": "user", "content": "from a dataset"}]) == f"\n\n{TOOL_NOTE}"
    assert env.reset(task_id=RELU, prompt=[{"role": "user", "content": tool_prompt("p")}]) is None

    feedback = env.submit_kernel(extract_code(bundled[RELU].solution))  # bare code, as a tool call carries it
    assert feedback.startswith("Submission 1 of 2. Your kernel is correct") and "1 submission left" in feedback
    honest = KernelEnv(evaluator=evaluator, max_turns=1)
    honest.reset(options={"task_id": RELU})
    expected = honest.step(bundled[RELU].solution)[1]
    assert env.get_reward() == expected > 0
    assert "No submissions left" in env.submit_kernel("class ModelNew: pass")
    assert env.env.rewards == [expected, 0.0] and env.get_reward() == expected  # the best turn
    assert "episode is over" in env.submit_kernel("anything") and len(env.results) == 2

    last = KernelToolEnv(evaluator=evaluator, aggregate="last", max_turns=2)
    last.reset(task_id=RELU)
    last.submit_kernel(bundled[RELU].solution)  # a fenced reply works too
    last.submit_kernel("not code")
    assert last.get_reward() == 0.0
    honest.close()
    for e in (env, last):
        e._close()


def test_tool_template_renders_and_parses_tool_calls():
    from trl.chat_template_utils import is_chat_template_prefix_preserving, parse_response, supports_tool_calling

    from agents.policies import Policy

    tok = Policy.tiny(tokenizer="bpe").tokenizer
    assert not supports_tool_calling(tok)  # why the template exists
    use_tool_template(tok)
    assert supports_tool_calling(tok) and is_chat_template_prefix_preserving(tok)

    def submit_kernel(code: str) -> str:
        """Evaluate.

        Args:
            code: the source.
        """

    prefix = tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=[submit_kernel],
                                     add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    call = ('<tool_call>{"name": "submit_kernel", "arguments": {"code": "class ModelNew:\\n    pass"}}'
            '</tool_call><|end|>')
    parsed = parse_response(tok, tok(call, add_special_tokens=False)["input_ids"], prefix=prefix,
                            tools=[submit_kernel])
    code = {"code": "class ModelNew:\n    pass"}
    assert parsed["tool_calls"] == [{"type": "function", "function": {"name": "submit_kernel", "arguments": code}}]


def test_grpo_trainer_tool_loop_calls_submit_kernel(evaluator, bundled, tmp_path, monkeypatch):
    """The multi-turn path end to end. A random model never writes a tool call, so generation is scripted
    (one rollout submits the shipped answer, the other junk); the rest is TRL's own loop."""
    from trl import GRPOTrainer

    from agents.policies import Policy

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    policy = Policy.tiny(tokenizer="bpe")  # fewer tokens than the char tokenizer
    tok = use_tool_template(policy.tokenizer)

    def call(code):
        return f'<tool_call>{json.dumps({"name": "submit_kernel", "arguments": {"code": code}})}</tool_call><|end|>'

    answers = [call(extract_code(bundled[RELU].solution)), call("class ModelNew:\n    pass")]

    class Scripted(GRPOTrainer):
        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            replies = ["done<|end|>" if "<|tool|>" in tok.decode(ids) else answers[i % 2]
                       for i, ids in enumerate(prompt_ids)]
            return [tok(r, add_special_tokens=False)["input_ids"] for r in replies], None

    dataset = prompt_dataset(backend="interpreter", task_ids=[RELU], max_turns=2, tools=True)
    config = grpo_config(tmp_path, max_steps=1, max_completion_length=1024, max_tool_calling_iterations=2)
    trainer = Scripted(model=policy.model, args=config, train_dataset=dataset, processing_class=tok,
                       environment_factory=tool_env_factory(evaluator=evaluator, max_turns=2))
    trainer.train()
    row = next(r for r in trainer.state.log_history if "reward" in r)
    assert row["tools/call_frequency"] == 1.0 and row["tools/failure_frequency"] == 0.0
    rewards = [e.get_reward() for e in trainer.environments]
    assert rewards[0] > 0 and rewards[1] == 0.0
    assert row["rewards/KernelToolEnv/mean"] == pytest.approx(sum(rewards) / 2)
    assert [len(e.results) for e in trainer.environments] == [1, 1]
