"""Training configuration: one dataclass, algorithms as named presets of the algorithm library.

An algorithm is a recipe over the registries in ``agents.algorithms``: which advantage estimator, at
which level (per turn, or per trajectory and broadcast to its turns), which policy loss with which
options, which filters, and how samples are drawn. ``ALGORITHMS`` names the recipes; a config file
(JSON or TOML) or ``--set algo_options.KEY=VALUE`` overrides any field of the chosen one.

Every field carries a one-line ``help`` (``setting``), which ``kernel-agents train --list-settings``
prints. A user's mistake (an unknown key, a value of the wrong type or out of range, an unreadable
file) raises ``ConfigError``, one line that the CLI prints without a traceback.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import types
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A setting the user got wrong; the message is one line that says which and how."""


def setting(default: Any, help: str) -> Any:
    """A dataclass field with its ``--list-settings`` help; a dict or list default is copied per instance."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class AlgoConfig:
    """One RL recipe. Field names match the library's vocabulary (docs/algorithms.md)."""

    advantage: str = setting("trloo", "advantage estimator, a key of ADVANTAGE_ESTIMATORS")
    advantage_level: str = setting("turn", "where it applies: turn (per (task, turn)) or trajectory (broadcast)")
    gamma: float = setting(1.0, "discount of returns-to-go over turns")
    loss: str = setting("ppo_clip", "policy loss, a key of POLICY_LOSSES")
    loss_options: dict[str, Any] = setting({}, "keyword options of the loss (e.g. clip_low, clip_high, dual_clip)")
    agg: str = setting("token-mean", "how token losses aggregate, one of AGG_MODES")
    prs: bool = setting(False, "profiling-based rejection: drop correct turns whose kernels cover little runtime")
    prs_low: float = setting(0.3, "PRS: a correct turn covering at most this share of runtime is dropped")
    prs_width: float = setting(0.1, "PRS: coverage above prs_low over which P(keep) ramps up to 1")
    mismatch: str = setting("none", "sampler/trainer mismatch: none, reject, tis or reject+tis")
    mismatch_level: str = setting("turn", "mismatch ratio per turn or per trajectory")
    reject_lower: float = setting(0.999, "reject: lowest geometric-mean pi_old/mu kept")
    reject_upper: float = setting(1.001, "reject: highest geometric-mean pi_old/mu kept")
    token_veto: float | None = setting(1e-4, "reject: drop a turn when a token's pi/mu is below this (none: off)")
    tis_cap: float = setting(2.0, "tis: cap of the truncated importance weights")
    sampling: str = setting("group", "how samples are drawn, a key of COLLECTORS: group or reinforce_ada")
    ada_n: int = setting(4, "reinforce_ada: trajectories kept per task (balanced down-sampling)")
    ada_m: int = setting(4, "reinforce_ada: trajectories per active task per round")
    ada_rounds: int = setting(3, "reinforce_ada: most sampling rounds")
    ada_threshold: float = setting(0.7, "reinforce_ada: a reward above this counts as a positive")
    ada_exit: str = setting("positive", "reinforce_ada: when a task stops sampling: positive or balanced")
    ada_baseline: str = setting("mean", "reinforce_ada: counts (share of positives) or mean (of returns), over all")

    def validate(self) -> None:
        from .algorithms import ADVANTAGE_ESTIMATORS, ADVANTAGE_LEVELS, AGG_MODES, POLICY_LOSSES
        from .algorithms.sampling import EXIT_RULES
        from .collectors import COLLECTORS

        _check_types(self, "algo_options.")
        if self.advantage not in ADVANTAGE_ESTIMATORS:
            raise ConfigError(f"unknown advantage {self.advantage!r}; choose from {sorted(ADVANTAGE_ESTIMATORS)}")
        if self.loss not in POLICY_LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; choose from {sorted(POLICY_LOSSES)}")
        if self.agg not in AGG_MODES:
            raise ConfigError(f"unknown agg {self.agg!r}; choose from {AGG_MODES}")
        if self.advantage_level not in ADVANTAGE_LEVELS:
            raise ConfigError(f"advantage_level must be one of {sorted(ADVANTAGE_LEVELS)}")
        if self.mismatch not in ("none", "reject", "tis", "reject+tis"):
            raise ConfigError("mismatch must be 'none', 'reject', 'tis' or 'reject+tis'")
        if self.sampling not in COLLECTORS:
            raise ConfigError(f"sampling must be one of {sorted(COLLECTORS)}")
        if self.ada_exit not in EXIT_RULES:
            raise ConfigError(f"ada_exit must be one of {EXIT_RULES}")
        if self.ada_baseline not in ("counts", "mean"):
            raise ConfigError("ada_baseline must be 'counts' or 'mean'")
        _at_least(self, "algo_options.", ada_n=1, ada_m=1, ada_rounds=1, tis_cap=0, prs_width=0, gamma=0)
        takes = inspect.signature(ADVANTAGE_ESTIMATORS[self.advantage]).parameters
        missing = [name for name in COLLECTORS[self.sampling].provides if name not in takes]
        if missing:
            raise ConfigError(f"sampling {self.sampling!r} provides {', '.join(missing)}, which advantage "
                              f"{self.advantage!r} does not take (use global_mean)")


PPO_DRKERNEL = {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}

#: Named recipes. Why each choice: docs/algorithms.md.
ALGORITHMS: dict[str, dict[str, Any]] = {
    # Dr. Kernel: turn-level leave-one-out on returns-to-go, PPO-clip with dual clip, PRS, mismatch rejection.
    # Mismatch rejection as Dr. Kernel's training code does it: one geometric mean of pi_old/mu over all
    # tokens of the multi-turn trajectory, kept inside [0.999, 1.001] (mismatch_level="turn": per turn).
    "trloo": dict(advantage="trloo", advantage_level="turn", loss="ppo_clip", loss_options=PPO_DRKERNEL,
                  agg="seq-mean-token-sum", prs=True, mismatch="reject", mismatch_level="trajectory"),
    # TOPR: R minus the group mean, tapered off-policy REINFORCE (no clip, no KL).
    "topr": dict(advantage="dr_grpo", advantage_level="trajectory", loss="topr",
                 loss_options={"ratio_level": "trajectory"}, agg="token-mean"),
    # Reinforce-Ada as its reference script runs it (RLHFlow/Reinforce-Ada, scripts/run_reinforce_ada.sh and
    # the trainer's defaults): 8 samples per active prompt per round, at most 4 rounds, the balanced exit
    # (2 positives and 2 negatives seen), 4 kept, positive = reward > 0.7, the baseline the share of
    # positives over every sample drawn (global_stat_est; advantages not divided by the std), PPO clip
    # 0.2 / 0.28 with dual clip 10. ada_baseline="mean" uses the mean return instead (graded rewards).
    "reinforce_ada": dict(sampling="reinforce_ada", advantage="global_mean", advantage_level="turn",
                          loss="ppo_clip", loss_options={"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 10.0},
                          agg="token-mean", ada_m=8, ada_n=4, ada_rounds=4, ada_exit="balanced", ada_threshold=0.7,
                          ada_baseline="counts"),
    # RLOO: trajectory return, leave-one-out baseline, plain REINFORCE.
    "rloo": dict(advantage="rloo", advantage_level="trajectory", loss="reinforce", agg="token-mean"),
    # GRPO: mean/std-normalised group advantage, symmetric PPO clip, per-sequence token mean.
    "grpo": dict(advantage="grpo", advantage_level="trajectory", loss="ppo_clip",
                 loss_options={"clip_low": 0.2, "clip_high": 0.2, "dual_clip": None}, agg="seq-mean-token-mean"),
    # OPMD (Kimi k1.5): mean baseline, squared log-ratio regulariser towards pi_old.
    "opmd": dict(advantage="dr_grpo", advantage_level="trajectory", loss="opmd", loss_options={"tau": 0.1},
                 agg="token-mean"),
    # AsymRE: REINFORCE with the baseline a little below the mean (delta < 0).
    "asymre": dict(advantage="dr_grpo", advantage_level="trajectory", loss="asymre", loss_options={"delta": -0.1},
                   agg="token-mean"),
}


def recipe(name: str) -> AlgoConfig:
    """The named recipe as it stands before any override (not validated)."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return AlgoConfig(**copy.deepcopy(ALGORITHMS[name]))


def algorithm(name: str, **overrides) -> AlgoConfig:
    """The named recipe with ``overrides`` applied, validated."""
    base = recipe(name)
    _check_keys(overrides, AlgoConfig, f"{name} option", prefix="algo_options.")
    cfg = replace(base, **overrides)
    cfg.validate()
    return cfg


@dataclass
class TrainConfig:
    """Everything a training run needs; ``to_dict`` / ``from_dict`` round-trip through JSON."""

    algo: str = setting("trloo", f"the RL recipe: {', '.join(ALGORITHMS)}")
    algo_options: dict[str, Any] = setting({}, "overrides of the recipe's fields (algo_options.KEY, listed below)")
    env: str = setting("agents/TargetString-v0", "Gymnasium id of a text env")
    env_kwargs: dict[str, Any] = setting({}, "keyword arguments of the env (env_kwargs.KEY)")
    model: str = setting("tiny", "tiny, tiny:SEED, tiny-bpe, smollm2 or a .gguf file, a local path or a hub id")
    model_options: dict[str, Any] = setting({}, "tiny: its shape; otherwise from_pretrained keyword arguments")
    seed: int = setting(0, "seeds tasks, sampling and init; a resumed run replays the same choices")
    steps: int = setting(20, "training steps (collect + update)")
    tasks_per_step: int = setting(4, "tasks per step")
    group_size: int = setting(4, "trajectories per task: the baseline group")
    max_turns: int = setting(2, "turns per trajectory")
    # sampling
    max_new_tokens: int = setting(64, "tokens per response")
    temperature: float = setting(1.0, "sampling temperature (0: greedy)")
    top_p: float = setting(1.0, "nucleus sampling mass")
    top_k: int = setting(0, "top-k sampling (0: off)")
    max_context: int | None = setting(None, "prompt + response tokens (none: the model's limit)")
    system_prompt: str | None = setting(None, "a system message before each task (none: no system message)")
    generate_batch_size: int | None = setting(None, "prompts per generate call (none: all at once)")
    sampler: str = setting("hf", "hf: the policy's own generate; vllm: a vLLM engine (GPU, pip install vllm)")
    vllm_options: dict[str, Any] = setting({}, "VLLMSampler fields, e.g. gpu_memory_utilization")
    # optimisation
    lr: float = setting(1e-5, "AdamW learning rate (after warmup)")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    adam_betas: tuple[float, float] = setting((0.9, 0.999), "AdamW betas, e.g. 0.9,0.95")
    warmup_steps: int = setting(0, "steps of linear learning-rate warmup")
    epochs: int = setting(1, "passes over each collected batch")
    minibatches: int = setting(1, "optimizer steps per pass (PPO-style reuse of a batch)")
    micro_batch_size: int = setting(8, "rows per forward/backward; gradients accumulate over a minibatch")
    max_grad_norm: float = setting(1.0, "gradient clipping norm")
    # model
    device: str = setting("cpu", "torch device, e.g. cuda")
    dtype: str | None = setting(None, "model dtype, e.g. bfloat16 on GPUs (none: the model's)")
    adapter: str = setting("full", "which weights train: full, lora (needs peft) or remix (a mixture of LoRAs)")
    lora: dict[str, Any] = setting({}, "with adapter=lora: LoraSettings fields (lora.r, lora.alpha, ...)")
    remix: dict[str, Any] = setting({}, "with adapter=remix: ReMixSettings fields (remix.k, remix.m, remix.r, ...)")
    gradient_checkpointing: bool = setting(False, "trade compute for activation memory")
    # bookkeeping
    out_dir: str = setting("runs/train", "where metrics.jsonl, metrics.png and checkpoints/ go")
    checkpoint_every: int = setting(0, "steps between checkpoints (0: only at the end)")
    keep_checkpoints: int = setting(2, "checkpoints kept")
    resume: bool = setting(False, "continue from the latest checkpoint in out_dir")
    plot: bool = setting(True, "write metrics.png at the end")
    progress: bool = setting(True, "show a progress bar")

    def algorithm(self) -> AlgoConfig:
        return algorithm(self.algo, **self.algo_options)

    def validate(self) -> TrainConfig:
        """Types, ranges and the recipe, checked before anything loads; returns ``self``."""
        _check_types(self)
        _at_least(self, steps=0, tasks_per_step=1, group_size=1, max_turns=1, max_new_tokens=1,
                  temperature=0, top_k=0, max_context=1, generate_batch_size=1, lr=0, weight_decay=0,
                  warmup_steps=0, epochs=1, minibatches=1, micro_batch_size=1, max_grad_norm=0,
                  checkpoint_every=0, keep_checkpoints=1)
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(f"adam_betas must each be in [0, 1), got {self.adam_betas}")
        if self.sampler not in ("hf", "vllm"):
            raise ConfigError(f"sampler must be 'hf' or 'vllm', got {self.sampler!r}")
        self.adapter_settings()
        self.algorithm()
        return self

    @property
    def adapter_options(self) -> dict[str, Any]:
        """The chosen adapter's option mapping (``lora`` or ``remix``; none for full weights)."""
        return {"lora": self.lora, "remix": self.remix}.get(self.adapter, {})

    def adapter_settings(self):
        """The chosen adapter's settings object (None for full weights); ConfigError on a mistake."""
        from .adapters import ADAPTERS, adapter_settings

        if self.adapter not in ADAPTERS:
            raise ConfigError(f"adapter must be one of {', '.join(ADAPTERS)}, got {self.adapter!r}")
        for name in ("lora", "remix"):
            options = getattr(self, name)
            _check_keys(options, ADAPTERS[name], f"{name} setting", prefix=f"{name}.")
            if options and name != self.adapter:
                raise ConfigError(f"{name} settings are given but adapter is {self.adapter!r}; set adapter={name}")
            hints = field_types(ADAPTERS[name])
            for key, value in options.items():
                if not conforms(value, hints[key]):
                    raise ConfigError(f"{name}.{key} expects {type_name(hints[key])}, got {value!r}")
        try:
            return adapter_settings(self.adapter, self.adapter_options)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        _check_keys(data, cls, "config keys")
        data = dict(data)
        if isinstance(data.get("adam_betas"), list):
            data["adam_betas"] = tuple(data["adam_betas"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A JSON or TOML file holding any subset of the fields."""
        import tomllib

        path = Path(path)
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of settings")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def set(self, assignment: str) -> TrainConfig:
        """Apply ``KEY=VALUE``, VALUE read as KEY's type (``parse_value``).

        A dotted KEY reaches into a mapping: ``algo_options.KEY`` is typed by the recipe's field,
        ``algo_options.loss_options.KEY`` / ``env_kwargs.KEY`` by the value it replaces, when there is one.
        """
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
        name, *path = key.strip().split(".")
        _check_keys([name], TrainConfig, "setting")
        hints = field_types(TrainConfig)
        if not path:
            return replace(self, **{name: parse_value(raw, hints[name], name)})
        current = getattr(self, name)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"{name} is not a mapping; use --set {name}=VALUE")
        if name == "algo_options":
            _check_keys([path[0]], AlgoConfig, f"{self.algo} option", prefix="algo_options.")
            defaults, hints = asdict(recipe(self.algo)), field_types(AlgoConfig)
        elif name in ("lora", "remix"):
            from .adapters import ADAPTERS

            _check_keys([path[0]], ADAPTERS[name], f"{name} setting", prefix=f"{name}.")
            defaults, hints = {}, field_types(ADAPTERS[name])
        else:
            defaults, hints = {}, {}
        return replace(self, **{name: _assign(current or {}, defaults, hints, path, raw, key)})


def _assign(mapping: dict, defaults: dict, hints: dict, path: list[str], raw: str, key: str) -> dict:
    """``mapping`` with ``raw`` at ``path``; a missing level starts from ``defaults`` (the recipe's)."""
    head, rest = path[0], path[1:]
    known = mapping.get(head, defaults.get(head))
    if not rest:
        tp = hints.get(head, type(known) if known is not None else None)
        return {**mapping, head: parse_value(raw, tp, key)}
    if known is not None and not isinstance(known, dict):
        raise ConfigError(f"{key.rsplit('.', len(rest))[0]} is not a mapping")
    return {**mapping, head: _assign(dict(known or {}), {}, {}, rest, raw, key)}


# --------------------------------------------------------------------------------------------------
# typed values


BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def field_types(cls) -> dict[str, Any]:
    """Field name -> resolved type hint (the annotations are strings under ``from __future__``)."""
    return get_type_hints(cls)


def type_name(tp: Any) -> str:
    if tp is None or tp is Any:
        return "any"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def parse_value(raw: str, tp: Any, name: str) -> Any:
    """``raw`` read as type hint ``tp``: bools as true/false/yes/no/1/0, ``none`` for an optional,
    tuples and lists as ``a,b`` or ``[a, b]``, dicts as a JSON object. No type: JSON when it parses,
    else the string."""
    text = raw.strip()
    bad = ConfigError(f"{name} expects {type_name(tp)}, got {raw!r}")
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        options = [a for a in args if a is not type(None)]
        if str in options and not (text.startswith("[") or "," in text):
            return raw  # a plain word is the string option (target_modules=all-linear)
        for option in sorted(options, key=lambda a: a is str):  # str | list[str]: a,b is the list
            try:
                return parse_value(raw, option, name)
            except ConfigError:
                pass
        raise bad
    if tp is None or tp is Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    if tp is bool:
        if text.lower() not in BOOLS:
            raise bad
        return BOOLS[text.lower()]
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise bad from None
    if tp is str:
        return raw
    if (origin or tp) in (tuple, list):
        parts = [p for p in text.strip("[]()").split(",") if p.strip()]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(parts) != len(args):
                raise bad
            return tuple(parse_value(p, a, name) for p, a in zip(parts, args))
        item = args[0] if args else None
        return (origin or tp)(parse_value(p, item, name) for p in parts)
    if (origin or tp) is dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ConfigError(f'{name} expects a JSON object like {{"key": 1}}, got {raw!r}')
        return value
    raise bad


def conforms(value: Any, tp: Any) -> bool:
    """Whether ``value`` has type hint ``tp`` (an int passes as a float; element types of tuples count)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp in (int, float):
        return isinstance(value, (int, float) if tp is float else int) and not isinstance(value, bool)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return isinstance(value, tuple) and len(value) == len(args) and all(map(conforms, value, args))
    return isinstance(value, origin or tp)


def _check_types(obj, prefix: str = "") -> None:
    for name, tp in field_types(type(obj)).items():
        value = getattr(obj, name)
        if not conforms(value, tp):
            raise ConfigError(f"{prefix}{name} expects {type_name(tp)}, got {value!r}")


def _at_least(obj, prefix: str = "", **lows: float) -> None:
    for name, low in lows.items():
        value = getattr(obj, name)
        if value is not None and value < low:
            raise ConfigError(f"{prefix}{name} must be at least {low}, got {value}")


def _check_keys(keys, cls, what: str, prefix: str = "") -> None:
    """Unknown keys of ``cls`` raise one ConfigError, with the close matches difflib finds."""
    known = [f.name for f in fields(cls)]
    unknown = [k for k in keys if k not in known]
    if unknown:
        close = sorted({m for k in unknown for m in difflib.get_close_matches(k, known, n=3)})
        guess = f" (did you mean {', '.join(repr(prefix + m) for m in close)}?)" if close else ""
        raise ConfigError(f"unknown {what} {', '.join(repr(prefix + k) for k in sorted(unknown))}{guess}; "
                          "kernel-agents train --list-settings lists them")
