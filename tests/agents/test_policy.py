"""The policy: tiny preset, chat template, sampler log-probs vs trainer log-probs, save/load, LoRA."""

import pytest
import torch

from agents.algorithms import mismatch_metrics
from agents.policies import Policy, SamplingParams, build_tiny_tokenizer
from agents.rollout import pad_rows

CHATS = [
    [{"role": "user", "content": "Say the secret word 0."}],
    [{"role": "user", "content": "A much longer prompt, so the batch needs padding: def f(x): return x"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "cat"}, {"role": "user", "content": "again"}],
]


def sampler_vs_trainer(policy, params, seed=0):
    prompts = [policy.encode_chat(c) for c in CHATS] * 2
    gens = policy.generate(prompts, params, seed=seed)
    with torch.no_grad():
        logp, mask = policy.logprobs(prompts, [g.token_ids for g in gens], temperature=params.temperature)
    mu = pad_rows([g.logprobs for g in gens])
    return gens, logp, mu, mask


def test_tiny_preset_is_small_seeded_and_local():
    a, b, c = Policy.tiny(seed=0), Policy.tiny(seed=0), Policy.tiny(seed=1)
    assert 1_000_000 <= a.num_parameters() <= 3_000_000
    sa, sb, sc = (p.model.state_dict() for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.spec == "tiny:0" and Policy.load("tiny:1").spec == "tiny:1"
    assert Policy.load("tiny-bpe").tokenizer.vocab_size > 256


def test_tokenizers_round_trip():
    code = "@triton.jit\ndef k(x_ptr, BLOCK: tl.constexpr):\n    tl.store(x_ptr, 0.0)  # ok\n"
    char = build_tiny_tokenizer("char")
    assert char.decode(char.encode(code, add_special_tokens=False)) == code
    assert len(char.encode("abc", add_special_tokens=False)) == 3
    bpe = build_tiny_tokenizer("bpe")
    text = code + "é → 中文"
    assert bpe.decode(bpe.encode(text, add_special_tokens=False)) == text
    assert len(bpe.encode(code, add_special_tokens=False)) < 0.6 * len(code)  # the merges know Triton


def test_chat_template_opens_the_assistant_turn(tiny):
    tok = tiny.tokenizer
    ids = tiny.encode_chat(CHATS[2])
    assert ids[-1] == tok.convert_tokens_to_ids("<|assistant|>")
    assert tok.decode(ids) == "<|user|>hi<|end|><|assistant|>cat<|end|><|user|>again<|end|><|assistant|>"


def test_generate_returns_text_ids_and_logprobs(tiny):
    params = SamplingParams(max_new_tokens=12)
    gens, *_ = sampler_vs_trainer(tiny, params, seed=3)
    again, *_ = sampler_vs_trainer(tiny, params, seed=3)
    eos = tiny.tokenizer.eos_token_id
    for g in gens:
        assert 1 <= len(g.token_ids) == len(g.logprobs) <= 12
        assert g.finished == (g.token_ids[-1] == eos) and eos not in g.token_ids[:-1]
        assert g.text == tiny.decode(g.token_ids[:-1] if g.finished else g.token_ids)
        assert all(lp <= 0 for lp in g.logprobs)
    assert [g.token_ids for g in gens] == [g.token_ids for g in again]  # seeded


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_and_trainer_logprobs_agree(tiny, temperature):
    """Same weights, same distribution: left padding, positions and temperature handled alike."""
    _, logp, mu, mask = sampler_vs_trainer(tiny, SamplingParams(max_new_tokens=10, temperature=temperature))
    assert mask.sum() > 0
    assert (logp - mu).abs()[mask].max() < 1e-4
    assert float(mismatch_metrics(logp, mu, mask)["mismatch_kl_k3"]) < 1e-8


def test_top_k_makes_a_measurable_mismatch(tiny):
    """A truncated sampler puts more mass on what it keeps: mu >= pi on every sampled token."""
    _, logp, mu, mask = sampler_vs_trainer(tiny, SamplingParams(max_new_tokens=10, top_k=5))
    assert ((mu - logp)[mask] >= -1e-5).all()
    assert float(mismatch_metrics(logp, mu, mask)["mismatch_kl_k1"]) > 1.0


def test_trainer_logprobs_mask_padding_and_gradients(tiny):
    prompts = [tiny.encode_chat(c) for c in CHATS]
    responses = [[10, 11, 12], [13], []]
    logp, mask = tiny.logprobs(prompts, responses)
    assert logp.shape == (3, 3) and mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert (logp[~mask] == 0).all() and (logp[mask] < 0).all()
    logp.sum().backward()
    grads = [p.grad for p in tiny.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    alone, _ = tiny.logprobs(prompts[:1], responses[:1])  # padding does not change a row's log-probs
    assert torch.allclose(alone[0], logp[0], atol=1e-5)


def test_save_and_load_round_trip(tiny, tmp_path):
    opt = torch.optim.AdamW(tiny.trainable_parameters(), lr=1e-2)
    prompts, responses = [tiny.encode_chat(CHATS[0])], [[20, 21, 22]]
    loss = -tiny.logprobs(prompts, responses)[0].sum()
    loss.backward()
    opt.step()
    with torch.no_grad():
        before = tiny.logprobs(prompts, responses)[0]
    path = str(tiny.save(tmp_path / "p"))
    loaded = Policy.load(path)
    with torch.no_grad():
        after = loaded.logprobs(prompts, responses)[0]
    assert torch.allclose(before, after, atol=1e-6)
    assert loaded.tokenizer.chat_template == tiny.tokenizer.chat_template and loaded.spec == path


def test_lora_trains_adapters_only_and_round_trips(tmp_path):
    pytest.importorskip("peft")
    from agents.policies import LoraSettings

    policy = Policy.tiny(seed=0).enable_lora(LoraSettings(r=4, alpha=8))
    trainable, total = policy.num_parameters(trainable_only=True), policy.num_parameters()
    assert 0 < trainable < total / 5
    base = {k: v.clone() for k, v in policy.model.state_dict().items() if "lora_" not in k}
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    prompts, responses = [policy.encode_chat(CHATS[0])], [[20, 21, 22]]
    for _ in range(2):
        opt.zero_grad()
        (-policy.logprobs(prompts, responses)[0].sum()).backward()
        opt.step()
    state = policy.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in base.items())  # the base stays frozen
    with torch.no_grad():
        before = policy.logprobs(prompts, responses)[0]
    loaded = Policy.load(str(policy.save(tmp_path / "lora")))
    assert loaded.lora is not None and (tmp_path / "lora" / "adapter_config.json").exists()
    with torch.no_grad():
        assert torch.allclose(before, loaded.logprobs(prompts, responses)[0], atol=1e-6)


def test_vllm_sampler_says_what_is_missing():
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        from agents.policies import VLLMSampler

        with pytest.raises(ImportError, match="pip install vllm"):
            VLLMSampler(model="x")
    else:
        pytest.skip("vllm is installed; the adapter needs a GPU run")
