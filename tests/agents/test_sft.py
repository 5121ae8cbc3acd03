"""Supervised warm start: the documented split, pairs from shipped answers and transcripts, the loss
going down, LoRA, and the CLI writing a policy that loads."""

import json

import pytest
import torch

from agents.cli import main
from agents.policies import Policy
from agents.sft import Pair, encode, evaluate_loss, held_out, pairs_from_tasks, pairs_from_transcripts, sft, split
from kernel_env import KernelEnv


def test_the_bundled_split_holds_out_every_fifth_task(bundled):
    train, held = split(bundled)
    by_level = {level: sum(t.startswith(f"L{level}/") for t in held) for level in (1, 2, 3)}
    assert by_level == {1: 7, 2: 3, 3: 1} and "L1/10_GELU" in held and "L1/19_ReLU" in train
    assert not set(train) & set(held) and len(train) + len(held) == len(bundled)
    assert held_out("L2/15_Anything") and not held_out("L1/19_ReLU") and not held_out("custom")


def test_a_task_pair_is_the_env_prompt_and_the_shipped_answer(bundled):
    (pair,) = pairs_from_tasks([bundled["L1/19_ReLU"]])
    prompt, _ = KernelEnv(tasks=[bundled["L1/19_ReLU"]], backend="interpreter", max_turns=1).reset(
        options={"task_id": "L1/19_ReLU"})
    assert pair.messages == ({"role": "user", "content": prompt},) and pair.reply == bundled["L1/19_ReLU"].solution


def test_transcripts_give_every_assistant_turn_its_context(tmp_path):
    episode = {"messages": [{"role": "user", "content": "task"}, {"role": "assistant", "content": "try 1"},
                            {"role": "user", "content": "wrong"}, {"role": "assistant", "content": "try 2"}],
               "correct": [False, True]}
    path = tmp_path / "episodes.jsonl"
    path.write_text(json.dumps(episode) + "\n\n" + json.dumps({"messages": episode["messages"][:2]}) + "\n")
    pairs = pairs_from_transcripts(path)
    assert [(len(p.messages), p.reply) for p in pairs] == [(3, "try 2"), (1, "try 1")]  # the wrong turn is skipped
    assert len(pairs_from_transcripts(path, correct_only=False)) == 3
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="episodes.jsonl:1: expected a JSON object with 'messages'"):
        pairs_from_transcripts(path)


@pytest.mark.parametrize("adapter", ["full", "lora", "remix"])
def test_sft_lowers_the_supervision_loss_of_the_tiny_model(bundled, adapter):
    pairs = pairs_from_tasks([bundled[t] for t in ("L1/19_ReLU", "L1/8_Sigmoid", "L1/9_Tanh", "L1/11_LeakyReLU")])
    policy = Policy.tiny(seed=0, tokenizer="bpe", hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    if adapter == "lora":
        pytest.importorskip("peft")
    policy.enable_adapter(adapter, {}, seed=0)
    routers = [p.detach().clone() for n, p in policy.model.named_parameters() if n.endswith("router")]
    encoded = [encode(policy, p, policy.max_context) for p in pairs]
    before = evaluate_loss(policy, encoded)
    history = sft(policy, pairs, epochs=4, lr=3e-3, batch_size=2, held=pairs[:1], log=lambda line: None)
    after = evaluate_loss(policy, encoded)
    # a random model's loss is mostly unigram statistics in the (tied) embeddings, which adapters do not adapt
    assert after < before - (0.5 if adapter == "full" else 0.1), (before, after)
    trained = [p for n, p in policy.model.named_parameters() if n.endswith("router")]
    assert len(trained) == (14 if adapter == "remix" else 0)  # ReMix's routers learn, from the RLOO estimate
    assert all(not torch.equal(a, b) for a, b in zip(routers, trained))
    assert history[0]["held_out_loss"] > history[-1]["held_out_loss"]
    assert sum(r.get("loss") is not None for r in history) == 8  # 4 epochs x 2 batches


def test_a_prompt_too_long_keeps_its_end():
    policy = Policy.tiny(seed=0, tokenizer="bpe")
    prompt, reply = encode(policy, Pair(({"role": "user", "content": "x " * 5000},), "answer"), 256)
    assert len(prompt) + len(reply) <= 256 and reply[-1] == policy.tokenizer.eos_token_id
    assert prompt == policy.encode_chat([{"role": "user", "content": "x " * 5000}])[-len(prompt):]


def test_the_cli_trains_on_the_train_tasks_and_writes_a_loadable_policy(tmp_path, capsys):
    out = tmp_path / "sft"
    assert main(["sft", "--levels", "3", "--epochs", "1", "--batch-size", "2", "--lr", "3e-3", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["pairs"] == 4 and summary["held_out_pairs"] == 1 and summary["steps"] == 2
    assert summary["held_out_loss_after"] < summary["held_out_loss_before"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert Policy.load(str(out / "policy")).num_parameters() > 0


def test_the_cli_trains_a_remix_adapter_with_its_settings(tmp_path, capsys):
    out = tmp_path / "sft"
    args = ["sft", "--levels", "3", "--epochs", "1", "--batch-size", "4", "--adapter", "remix",
            "--set", "remix.k=3", "--set", "remix.m=1", "--set", "remix.target_modules=q_proj,v_proj", "--out", str(out)]
    assert main(args) == 0
    loaded = Policy.load(str(out / "policy"))
    assert (loaded.remix.k, loaded.remix.m, loaded.remix.target_modules) == (3, 1, ["q_proj", "v_proj"])
    assert main(["sft", "--adapter", "remix", "--set", "remix.m=9", "--out", str(out)]) == 2
    assert "remix needs 1 <= m <= k, got m=9, k=4" in capsys.readouterr().err
    assert main(["sft", "--set", "lr=1", "--out", str(out)]) == 2
    assert "sft --set takes lora.KEY=VALUE or remix.KEY=VALUE" in capsys.readouterr().err


def test_the_cli_refuses_data_it_cannot_read(tmp_path, capsys):
    assert main(["sft", "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")]) == 2
    assert "neither 'bundled' nor a JSONL file" in capsys.readouterr().err
