"""``TrainConfig.set`` reads each value as its field's type; mistakes are one-line ``ConfigError``s."""

import pytest

from agents.config import ALGORITHMS, ConfigError, TrainConfig, algorithm, parse_value


@pytest.mark.parametrize("assignment, field, value", [
    ("steps=7", "steps", 7),
    ("lr=3e-4", "lr", 3e-4),
    ("temperature=1", "temperature", 1.0),
    ("plot=no", "plot", False),
    ("resume=YES", "resume", True),
    ("gradient_checkpointing=1", "gradient_checkpointing", True),
    ("progress=off", "progress", False),
    ("model=tiny:3", "model", "tiny:3"),
    ("system_prompt=Be brief = be fast", "system_prompt", "Be brief = be fast"),
    ("max_context=none", "max_context", None),
    ("max_context=512", "max_context", 512),
    ("dtype=null", "dtype", None),
    ("adam_betas=0.9,0.95", "adam_betas", (0.9, 0.95)),
    ("adam_betas=[0.8, 0.9]", "adam_betas", (0.8, 0.9)),
    ('lora={"r": 16}', "lora", {"r": 16}),
    ('model_options={"hidden_size": 64}', "model_options", {"hidden_size": 64}),
    ("env_kwargs.backend=interpreter", "env_kwargs", {"backend": "interpreter"}),
    ("lora.r=8", "lora", {"r": 8}),
    ("remix.k=6", "remix", {"k": 6}),
    ("remix.target_modules=q_proj,v_proj", "remix", {"target_modules": ["q_proj", "v_proj"]}),
])
def test_values_are_read_as_the_fields_type(assignment, field, value):
    got = getattr(TrainConfig().set(assignment), field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("assignment, message", [
    ("lr=abc", "lr expects float, got 'abc'"),
    ("steps=1.5", "steps expects int, got '1.5'"),
    ("plot=maybe", "plot expects bool, got 'maybe'"),
    ("max_context=lots", "max_context expects int | None, got 'lots'"),
    ("adam_betas=0.9", "adam_betas expects tuple[float, float], got '0.9'"),
    ("lora=16", "lora expects a JSON object"),
    ("lora.rank=8", "unknown lora setting 'lora.rank'"),
    ("remix.m=two", "remix.m expects int, got 'two'"),
    ("stepz=3", "unknown setting 'stepz' (did you mean 'steps'?)"),
    ("lr.x=1", "lr is not a mapping"),
    ("=1", "--set expects KEY=VALUE"),
    ("algo_options.prs=perhaps", "algo_options.prs expects bool, got 'perhaps'"),
    ("algo_options.ada_n=2.5", "algo_options.ada_n expects int, got '2.5'"),
    ("algo_options.clip=0.3", "unknown trloo option 'algo_options.clip'"),
    ("algo_options.loss_options.clip_low=wide", "algo_options.loss_options.clip_low expects float, got 'wide'"),
])
def test_a_bad_assignment_names_the_field_its_type_and_the_value(assignment, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig().set(assignment)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_algo_options_are_typed_by_the_recipe():
    cfg = TrainConfig(algo="trloo").set("algo_options.prs=false").set("algo_options.token_veto=none")
    assert cfg.algorithm().prs is False and cfg.algorithm().token_veto is None
    assert TrainConfig().set("algo_options.ada_threshold=1").algo_options == {"ada_threshold": 1.0}
    # a nested loss option starts from the recipe's, and is typed by the value it replaces
    loss = TrainConfig(algo="trloo").set("algo_options.loss_options.clip_high=0.3").algorithm().loss_options
    assert loss == {**ALGORITHMS["trloo"]["loss_options"], "clip_high": 0.3}
    assert TrainConfig(algo="opmd").set("algo_options.loss_options.tau=1").algorithm().loss_options == {"tau": 1.0}
    # a value the recipe leaves at None has no type to go by: JSON, else the string
    grpo = TrainConfig(algo="grpo").set("algo_options.loss_options.dual_clip=3")
    assert grpo.algorithm().loss_options["dual_clip"] == 3


def test_validate_checks_types_ranges_and_the_recipe():
    assert TrainConfig().validate() == TrainConfig()
    for changes, message in [
        ({"lr": "abc"}, "lr expects float, got 'abc'"),  # e.g. from a config file
        ({"group_size": 0}, "group_size must be at least 1, got 0"),
        ({"lr": -1.0}, "lr must be at least 0"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"adam_betas": (0.9, 1.0)}, "adam_betas must each be in [0, 1)"),
        ({"sampler": "tgi"}, "sampler must be 'hf' or 'vllm'"),
        ({"algo": "ppo"}, "unknown algorithm 'ppo'; choose from trloo"),
        ({"algo_options": {"prz": True}}, "unknown trloo option 'algo_options.prz' (did you mean 'algo_options.prs'?)"),
        ({"algo_options": {"prs": "yes"}}, "algo_options.prs expects bool, got 'yes'"),
        ({"algo_options": {"ada_rounds": 0}}, "algo_options.ada_rounds must be at least 1"),
        ({"algo_options": {"ada_exit": "never"}}, "ada_exit must be one of"),
    ]:
        with pytest.raises(ConfigError) as err:
            TrainConfig().with_(**changes).validate()
        assert message in str(err.value), changes
    with pytest.raises(ValueError, match="unknown loss"):  # ConfigError is a ValueError: old callers still catch it
        algorithm("rloo", loss="nope")


def test_config_files_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        TrainConfig.load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid toml"):
        TrainConfig.load(tmp_path / "bad.toml")
    (tmp_path / "typo.json").write_text('{"stepz": 3}')
    with pytest.raises(ConfigError, match="unknown config keys 'stepz' \\(did you mean 'steps'\\?\\)"):
        TrainConfig.load(tmp_path / "typo.json")


def test_parse_value_without_a_type_reads_json_then_the_string():
    assert parse_value("[1, 2]", None, "x") == [1, 2]
    assert parse_value("interpreter", None, "x") == "interpreter"
    assert parse_value("a,b", tuple, "x") == ("a", "b")


@pytest.mark.parametrize("changes, message", [
    ({"adapter": "qlora"}, "adapter must be one of full, lora, remix, got 'qlora'"),
    ({"lora": {"r": 8}}, "lora settings are given but adapter is 'full'; set adapter=lora"),
    ({"adapter": "remix", "remix": {"m": 5}}, "remix needs 1 <= m <= k, got m=5, k=4"),
    ({"adapter": "remix", "remix": {"samples": 1}}, "samples >= 2"),
    ({"adapter": "remix", "remix": {"k": "4"}}, "remix.k expects int, got '4'"),
])
def test_adapter_mistakes_are_one_line(changes, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**changes).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_chosen_adapter_gets_its_settings():
    from agents.adapters import LoraSettings, ReMixSettings

    assert TrainConfig().validate().adapter_settings() is None
    assert TrainConfig(adapter="lora", lora={"r": 4}).adapter_settings() == LoraSettings(r=4)
    cfg = TrainConfig().set("adapter=remix").set("remix.k=6").set("remix.m=3")
    assert cfg.adapter_settings() == ReMixSettings(k=6, m=3) and cfg.adapter_options == {"k": 6, "m": 3}
