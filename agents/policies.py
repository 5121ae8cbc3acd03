"""LLM policies: a ``transformers`` causal LM behind a chat template, with the two views RL needs.

- The *sampler* view (``Policy.generate``): batched sampling that returns the text, the token ids and
  the sampler's own log-probs of the sampled tokens (log mu). Those are what an inference engine
  (vLLM, ``VLLMSampler``) would report, and what mismatch correction compares against.
- The *trainer* view (``Policy.logprobs``): log-probs of given (prompt, response) token ids under the
  current weights (log pi), with gradients, padded into [B, T] with a response mask.

Token ids travel with every sample, so the trainer never re-tokenises text (re-tokenising sampled
text is a classic source of silent sampler/trainer mismatch).

``Policy.load("tiny")`` builds a ~1.4M-parameter Llama with a byte-level BPE tokenizer trained on a
small in-code corpus: no download, deterministic for a seed, fast on a CPU. Any other spec is a local
path or a Hugging Face hub id (``from_pretrained``). LoRA goes through ``peft`` (optional dependency);
ReMix, a mixture of LoRAs, is ``agents.remix``.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .adapters import LoraSettings, ReMixSettings, adapter_settings

# --------------------------------------------------------------------------------------------------
# the tiny preset: tokenizer and model built locally

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]

# Enough Python / Triton / prose for the BPE merges to cover the words the envs and the toy env use.
_TINY_CORPUS = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl

class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        out = torch.empty_like(x)
        n = x.numel()
        BLOCK_SIZE = 1024
        grid = (triton.cdiv(n, BLOCK_SIZE),)
        relu_kernel[grid](x, out, n, BLOCK_SIZE=BLOCK_SIZE)
        return out

@triton.jit
def relu_kernel(x_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    y = tl.where(x > 0, x, 0.0)
    tl.store(out_ptr + offsets, y, mask=mask)

def get_inputs():
    return [torch.randn(batch_size, dim)]

def get_init_inputs():
    return []

acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
for k in range(0, K, BLOCK_K):
    a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k, other=0.0)
    b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k, other=0.0)
    acc += tl.dot(a, b)
tl.store(c_ptrs, acc, mask=c_mask)
x = tl.exp(x - tl.max(x, axis=0)); s = tl.sum(x, axis=0); y = x / s
'''
_TINY_PROSE = (
    "Here is a PyTorch program. Write a faster version of this program with custom Triton kernels. "
    "Answer with exactly one python code block that defines class ModelNew. The output was correct. "
    "The output was wrong. Your answer scored. characters right. Try again. You have more turns. "
    "Turn of the episode is over. compiled speedup coverage reward target word say secret the a an "
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 cat dog sun kernel triton load store"
)


def build_tiny_tokenizer(kind: str = "char", vocab_size: int = 512):
    """A tokenizer built locally, with a minimal chat template; deterministic.

    - ``"char"``: one token per printable ASCII character (103 tokens with the specials); other
      characters become ``<|unk|>``. A small action space: the toy env is learnable in seconds.
    - ``"bpe"``: byte-level BPE trained on a small in-code Python/Triton corpus (``vocab_size``
      tokens); any text encodes and decodes exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "char":
        alphabet = [c for c in string.printable if c not in "\x0b\x0c\r"]
        vocab = {t: i for i, t in enumerate(TINY_SPECIAL_TOKENS + ["<|unk|>"] + alphabet)}
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
        tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
        tok.decoder = decoders.Fuse()
        unk = "<|unk|>"
    elif kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=TINY_SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator([_TINY_CORPUS, _TINY_PROSE] * 4, trainer=trainer)
        unk = None
    else:
        raise ValueError(f"unknown tiny tokenizer {kind!r}; expected 'char' or 'bpe'")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>", unk_token=unk)
    fast.add_special_tokens({"additional_special_tokens": TINY_SPECIAL_TOKENS[2:]})
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


@dataclass
class TinyModelConfig:
    """Shape of the tiny Llama (defaults: ~1.35M parameters with the character vocabulary)."""

    tokenizer: str = "char"  # "char" or "bpe" (see ``build_tiny_tokenizer``)
    vocab_size: int = 512  # BPE only
    hidden_size: int = 192
    intermediate_size: int = 512
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    max_position_embeddings: int = 2048


def build_tiny_model(tokenizer, config: TinyModelConfig, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's stream
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model


# --------------------------------------------------------------------------------------------------
# sampling results and settings


@dataclass
class SamplingParams:
    """How responses are sampled. ``top_p < 1`` / ``top_k > 0`` make the sampler's distribution differ
    from the trainer's full softmax: that gap is real mismatch, and the filters are there for it."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class Generation:
    """One sampled response: its text, token ids (with the final EOS when it stopped) and log mu per token."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finished: bool  # ended with EOS (False: cut at max_new_tokens)


# --------------------------------------------------------------------------------------------------
# the policy


class Policy:
    """A causal LM and its tokenizer; ``generate`` samples, ``logprobs`` scores with gradients."""

    def __init__(self, model, tokenizer, *, spec: str = "", device: str | torch.device = "cpu"):
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec  # how to rebuild the base model ("tiny:0", a path, a hub id)
        self.device = torch.device(device)
        self.lora: LoraSettings | None = None
        self.remix: ReMixSettings | None = None
        self.options: dict[str, Any] = {}  # the tiny preset's shape, to rebuild the base under a LoRA adapter
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model.to(self.device)

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def tiny(cls, seed: int = 0, device: str = "cpu", **shape) -> Policy:
        """The offline preset: a randomly initialised tiny Llama and a locally built tokenizer.

        ``shape``: fields of ``TinyModelConfig`` (e.g. ``tokenizer="bpe"``, ``hidden_size=128``).
        """
        config = TinyModelConfig(**shape)
        tokenizer = build_tiny_tokenizer(config.tokenizer, config.vocab_size)
        spec = "tiny" + ("-bpe" if config.tokenizer == "bpe" else "") + f":{seed}"
        policy = cls(build_tiny_model(tokenizer, config, seed), tokenizer, spec=spec, device=device)
        policy.options = {k: v for k, v in shape.items() if k != "tokenizer"}
        return policy

    @classmethod
    def from_pretrained(
        cls, path: str, *, device: str = "cpu", dtype: str | torch.dtype | None = None, **kwargs
    ) -> Policy:
        """A local checkpoint or a hub id (the hub needs network). ``dtype``: e.g. "bfloat16" on GPUs."""
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        shared = ("trust_remote_code", "revision", "cache_dir", "local_files_only", "token")
        tokenizer = AutoTokenizer.from_pretrained(path, **{k: v for k, v in kwargs.items() if k in shared})
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        model = AutoModelForCausalLM.from_pretrained(path, **{dtype_key: dtype}, **kwargs)
        if tokenizer.chat_template is None:
            raise ValueError(f"{path} has no chat template; use an instruct/chat model or set tokenizer.chat_template")
        return cls(model, tokenizer, spec=str(path), device=device)

    @classmethod
    def load(cls, spec: str, *, device: str = "cpu", dtype: str | None = None, seed: int = 0,
             **options) -> Policy:
        """Build or load a policy from a spec string.

        - ``"tiny"`` / ``"tiny-bpe"``, optionally ``":SEED"``: the offline preset (``options``: its shape);
        - ``"smollm2"`` or a path to a ``.gguf`` file: a GGUF chat model, converted once into the cache
          (``agents.gguf``);
        - a directory written by ``save`` (full weights, or a LoRA adapter over its recorded base);
        - any other local path or hub id: ``from_pretrained`` (``options`` go to it).
        """
        from .gguf import converted, find_gguf, is_gguf

        name, _, seed_text = spec.partition(":")
        if name in ("tiny", "tiny-bpe"):
            shape = {"tokenizer": "bpe"} if name == "tiny-bpe" else {}
            return cls.tiny(seed=int(seed_text) if seed_text else seed, device=device, **shape, **options)
        if is_gguf(spec):
            policy = cls.from_pretrained(str(converted(find_gguf(spec))), device=device, dtype=dtype, **options)
            policy.spec = spec  # a LoRA checkpoint rebuilds its base from the preset, not the cache path
            return policy
        meta_file = Path(spec) / "policy.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        if meta.get("lora") or meta.get("remix"):
            policy = cls.load(meta["base"], device=device, dtype=dtype, seed=seed, **meta.get("options", {}))
            if meta.get("lora"):
                policy.load_adapter(spec, LoraSettings(**meta["lora"]))
            else:
                policy.enable_remix(ReMixSettings(**meta["remix"]))
                state = torch.load(Path(spec) / "remix.pt", map_location=policy.device, weights_only=True)
                unexpected = policy.model.load_state_dict(state, strict=False).unexpected_keys
                if unexpected:
                    raise ValueError(f"{spec}/remix.pt does not fit its base model: {unexpected[:3]}")
            return policy
        return cls.from_pretrained(spec, device=device, dtype=dtype, **options)  # its spec: this path

    def enable_adapter(self, adapter: str, options: dict[str, Any] | None = None, seed: int = 0) -> Policy:
        """``full`` (every weight trains), ``lora`` or ``remix`` with its settings' fields as ``options``."""
        settings = adapter_settings(adapter, dict(options or {}))
        if adapter == "lora":
            return self.enable_lora(settings, seed=seed)
        if adapter == "remix":
            return self.enable_remix(settings, seed=seed)
        return self

    def enable_remix(self, settings: ReMixSettings | None = None, seed: int = 0) -> Policy:
        """Wrap the target linear layers with ReMix mixtures of LoRAs (``agents.remix``); only they train."""
        from .remix import attach

        self.remix = settings or ReMixSettings()
        attach(self.model, self.remix, seed=seed)
        return self

    def enable_lora(self, settings: LoraSettings | None = None, seed: int = 0) -> Policy:
        """Wrap the model with LoRA adapters (``pip install peft``); only the adapters train.

        The adapters' random init is seeded, so a run is reproducible.
        """
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise ImportError("LoRA needs peft: pip install peft (or pip install 'kernel-env[agents]')") from exc
        settings = settings or LoraSettings()
        config = LoraConfig(
            r=settings.r,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=settings.target_modules,
            task_type="CAUSAL_LM",
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = get_peft_model(self.model, config)
        self.lora = settings
        return self

    def load_adapter(self, path: str | Path, settings: LoraSettings) -> Policy:
        from peft import PeftModel

        self.model = PeftModel.from_pretrained(self.model, str(path), is_trainable=True).to(self.device)
        self.lora = settings
        return self

    def save(self, path: str | Path) -> Path:
        """Write a directory ``Policy.load`` reads back: weights (or the LoRA adapter) and the tokenizer."""
        from transformers.utils import logging as hf_logging

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a checkpoint per step should not print a bar per shard
        try:
            if self.remix:  # the adapter alone, like a LoRA checkpoint; the base is rebuilt from its spec
                trained = {n for n, p in self.model.named_parameters() if p.requires_grad}
                state = {n: t for n, t in self.model.state_dict().items() if n in trained}
                torch.save(state, path / "remix.pt")
            else:
                self.model.save_pretrained(path)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.tokenizer.save_pretrained(path)
        meta = {"base": self.spec, "options": self.options, "lora": asdict(self.lora) if self.lora else None,
                "remix": asdict(self.remix) if self.remix else None}
        (path / "policy.json").write_text(json.dumps(meta, indent=2))
        return path

    # -- facts --------------------------------------------------------------------------------------

    @property
    def max_context(self) -> int:
        config = self.model.config
        return int(getattr(config, "max_position_embeddings", None) or 4096)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad or not trainable_only)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def without_dropout(self) -> Policy:
        """Every dropout of the model (and of its config, and LoRA's) set to 0, in place; returns self.

        The sampler draws in eval mode; the trainer scores pi_old and trains pi in train mode (gradient
        checkpointing needs it). With dropout on, pi_old is not the sampler's distribution even at step
        0, and mismatch rejection drops every turn of a checkpoint trained with dropout."""
        for module in self.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            for name, value in list(vars(module).items()):  # functional dropout rates (attention_dropout)
                if "dropout" in name and isinstance(value, float):
                    setattr(module, name, 0.0)
        config = getattr(self.model, "config", None)
        for name, value in list(vars(config).items()) if config is not None else []:
            if "dropout" in name and isinstance(value, float):
                setattr(config, name, 0.0)
        return self

    # -- text <-> tokens ----------------------------------------------------------------------------

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation, ending with the assistant's turn opener."""
        ids = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in some versions
            ids = ids["input_ids"]
        return list(ids)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    # -- sampler view -------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, *, seed: int | None = None,
                 batch_size: int | None = None) -> list[Generation]:
        """Sample one response per prompt (token ids); returns text, ids and the sampler's log-probs."""
        out: list[Generation] = []
        step = batch_size or len(prompts) or 1
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(prompts), step):
            out.extend(self._generate_batch(prompts[start : start + step], params))
        return out

    def _generate_batch(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Generation]:
        from transformers import GenerationConfig

        if not prompts:
            return []
        was_training = self.model.training
        self.model.eval()
        input_ids, attention = _left_pad(prompts, self.tokenizer.pad_token_id, self.device)
        greedy = params.temperature <= 0
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=1.0 if greedy else params.top_p,  # explicit: None would fall back to library defaults
            top_k=0 if greedy else params.top_k,  # (top_k=50 there), silently truncating the sampler
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        result = self.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
        if was_training:
            self.model.train()
        new_tokens = result.sequences[:, input_ids.shape[1] :]  # [B, S]
        scores = torch.stack(result.scores, dim=1).float()  # [B, S, V], after temperature / top-k / top-p
        logp = torch.log_softmax(scores, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        eos = self.tokenizer.eos_token_id
        gens = []
        for row, row_logp in zip(new_tokens.tolist(), logp.tolist()):
            n = row.index(eos) + 1 if eos in row else len(row)
            ids = row[:n]
            finished = bool(ids) and ids[-1] == eos
            text = self.decode(ids[:-1] if finished else ids)
            gens.append(Generation(text=text, token_ids=ids, logprobs=row_logp[:n], finished=finished))
        return gens

    # -- trainer view -------------------------------------------------------------------------------

    def logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """log pi of each response token given its prompt: (logp [B, R], mask [B, R]), response-aligned.

        Rows are left-padded so every response ends at the last position; only the logits of the
        last R + 1 positions are materialised (``logits_to_keep``), which keeps memory at
        B x R x V instead of B x L x V for long prompts. Grad flows when grad mode is on.
        """
        lengths = [len(r) for r in responses]
        width = max(lengths, default=0)
        if width == 0:
            empty = torch.zeros(len(responses), 0, device=self.device)
            return empty, empty.bool()
        seqs = [list(p) + list(r) for p, r in zip(prompts, responses)]
        input_ids, attention = _left_pad(seqs, self.tokenizer.pad_token_id, self.device)
        position_ids = (attention.long().cumsum(-1) - 1).clamp(min=0)
        inputs = dict(input_ids=input_ids, attention_mask=attention, position_ids=position_ids)
        try:
            out = self.model(**inputs, logits_to_keep=width + 1)
        except TypeError:  # models / transformers versions without logits_to_keep
            out = self.model(**inputs)
        logits = out.logits[:, -(width + 1) : -1].float()  # position k predicts the token at k + 1: [B, width, V]
        n = torch.tensor(lengths, device=self.device).unsqueeze(1)
        j = torch.arange(width, device=self.device).unsqueeze(0)
        mask = j < n
        index = (width - n + j).clamp(min=0, max=width - 1)  # response token j of row i sits at width - n_i + j
        logits = logits.gather(1, index.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        targets = input_ids[:, -width:].gather(1, index)
        if temperature > 0 and temperature != 1.0:
            logits = logits / temperature
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return logp * mask, mask

    def entropy_of(self, logp: Tensor, mask: Tensor) -> float:
        """Mean negative log-prob of the sampled tokens (a cheap entropy proxy for the logs)."""
        m = mask.float()
        return float(-(logp.detach() * m).sum() / m.sum().clamp(min=1))


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[Tensor, Tensor]:
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            attention[i, width - len(r) :] = 1
    return ids.to(device), attention.to(device)


# --------------------------------------------------------------------------------------------------
# optional vLLM sampler


@dataclass
class VLLMSampler:
    """Sampling through vLLM (``pip install vllm``, GPU): same ``generate`` contract as ``Policy``.

    vLLM's kernels differ from the trainer's, so its log-probs (mu) differ from the trainer's (pi)
    even at identical weights; keep mismatch correction on (``mismatch="reject"`` or ``"tis"``). On
    versions that have it, pass ``engine_kwargs={"logprobs_mode": "processed_logprobs"}`` so mu is the
    distribution actually sampled (after temperature / top-p), not the raw one.
    ``sync(policy)`` pushes the trainer's weights into the engine after each update. It uses the
    in-process worker of vLLM's V0 engine; newer (V1-only) versions need a worker extension for
    weight updates and raise ``NotImplementedError`` here. Untested in this repository (no GPU in CI).
    """

    model: str
    gpu_memory_utilization: float = 0.4
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise ImportError("VLLMSampler needs vllm (pip install vllm; NVIDIA GPU)") from exc
        from vllm import LLM

        self.llm = LLM(model=self.model, gpu_memory_utilization=self.gpu_memory_utilization, **self.engine_kwargs)

    def generate(self, prompts, params: SamplingParams, *, seed: int | None = None, batch_size=None):
        from vllm import SamplingParams as VParams
        from vllm.inputs import TokensPrompt

        vparams = VParams(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            logprobs=0,  # the sampled token's log-prob
        )  # no per-request seed: it would make the G samples of a group identical (seed the engine instead)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], vparams, use_tqdm=False)
        gens = []
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = [d[t].logprob if d and t in d else math.nan for t, d in zip(ids, c.logprobs or [])]
            finished = c.finish_reason == "stop"
            gens.append(Generation(text=c.text, token_ids=ids, logprobs=lps, finished=finished))
        return gens

    def sync(self, policy: Policy) -> None:
        """Load the trainer's weights into the engine (LoRA: merged for the copy, then unmerged)."""
        model = policy.model
        if policy.remix:
            raise NotImplementedError("vLLM has no ReMix layers; sample with the policy itself (sampler='hf')")
        if policy.lora:
            model.merge_adapter()
        try:
            state = {
                k.replace("base_model.model.", "").replace(".base_layer", ""): v.detach()
                for k, v in model.state_dict().items()
                if "lora_" not in k
            }
            self._load_weights(list(state.items()))
        finally:
            if policy.lora:
                model.unmerge_adapter()

    def _load_weights(self, weights: list) -> None:
        engine = self.llm.llm_engine
        executor = getattr(engine, "model_executor", None)
        worker = getattr(executor, "driver_worker", None)
        if worker is not None:  # vLLM 0.6-0.8 (V0 engine, single GPU)
            worker.model_runner.model.load_weights(weights)
            return
        raise NotImplementedError(
            "this vLLM version has no in-process driver worker; sync weights with its collective_rpc / "
            "weight-update API (see the README section on vLLM)"
        )
