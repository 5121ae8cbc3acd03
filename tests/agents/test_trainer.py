"""The trainer's pieces: config, advantages by level, collectors, batches, filters, metrics, accumulation,
checkpoints, resume."""

import json
import math

import gymnasium as gym
import pytest
import torch
from agents_helpers import TOY_RUN, ScriptedSampler

from agents.algorithms import ADVANTAGE_ESTIMATORS, rloo
from agents.batch import Batch
from agents.collectors import COLLECTORS
from agents.config import ALGORITHMS, AlgoConfig, TrainConfig, algorithm
from agents.policies import Policy
from agents.rollout import EnvPool, Rollout, Trajectory, TurnSample
from agents.trainer import compute_advantages, latest_checkpoint, train, update

ALGOS = ["trloo", "topr", "reinforce_ada", "rloo", "grpo", "opmd", "asymre"]


def toy_config(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(**{**TOY_RUN, "out_dir": str(tmp_path / "run"), "plot": False, **kw})


# -- config ------------------------------------------------------------------------------------------


def test_every_issue_algorithm_is_a_valid_recipe():
    assert sorted(ALGORITHMS) == sorted(ALGOS)
    for name in ALGOS:
        algorithm(name).validate()
    drkernel = algorithm("trloo")
    assert (drkernel.advantage, drkernel.loss, drkernel.prs, drkernel.mismatch) == ("trloo", "ppo_clip", True, "reject")
    assert drkernel.loss_options == {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}
    assert algorithm("grpo", agg="token-mean").agg == "token-mean"
    with pytest.raises(ValueError, match="unknown algorithm"):
        algorithm("dpo")
    with pytest.raises(ValueError, match="unknown loss"):
        algorithm("rloo", loss="nope")


def test_config_round_trips_through_json_toml_and_set(tmp_path):
    cfg = TrainConfig(algo="grpo", steps=7, algo_options={"agg": "token-mean"}, env_kwargs={"max_turns": 2})
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    (tmp_path / "c.toml").write_text('algo = "topr"\nsteps = 3\nadam_betas = [0.9, 0.95]\n[algo_options]\nprs = true\n')
    toml = TrainConfig.load(tmp_path / "c.toml")
    assert (toml.algo, toml.steps, toml.adam_betas, toml.algorithm().prs) == ("topr", 3, (0.9, 0.95), True)
    changed = cfg.set("lr=0.5").set("algo_options.prs=true").set("env_kwargs.backend=interpreter")
    assert changed.lr == 0.5 and changed.algorithm().prs and changed.env_kwargs == {"max_turns": 2,
                                                                                   "backend": "interpreter"}
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"stepz": 1})


# -- advantages --------------------------------------------------------------------------------------


def rows(rewards, groups, trajs, turns):
    return {"rewards": torch.tensor(rewards), "group_ids": torch.tensor(groups), "traj_ids": torch.tensor(trajs),
            "turns": torch.tensor(turns)}


def test_trajectory_level_advantages_are_broadcast_to_every_turn():
    # task 0: trajectories 0 (two turns, return 1.5) and 1 (one turn, 0.2); task 1: trajectories 2, 3
    r = rows([1.0, 0.5, 0.2, 0.3, 0.9], [0, 0, 0, 1, 1], [0, 0, 1, 2, 3], [0, 1, 0, 0, 0])
    adv = compute_advantages(AlgoConfig(advantage="rloo", advantage_level="trajectory"), r)
    expected = rloo(torch.tensor([1.5, 0.2, 0.3, 0.9]), group_ids=torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(adv, expected[[0, 0, 1, 2, 3]])


def test_turn_level_trloo_uses_returns_to_go_per_turn_group():
    r = rows([1.0, 0.5, 0.2, 0.0, 0.4], [0, 0, 0, 0, 0], [0, 0, 1, 1, 2], [0, 1, 0, 1, 0])
    algo = AlgoConfig(advantage="trloo", advantage_level="turn")
    adv = compute_advantages(algo, r)
    assert torch.allclose(adv, ADVANTAGE_ESTIMATORS["trloo"](r["rewards"], group_ids=r["group_ids"],
                                                            traj_ids=r["traj_ids"], turns=r["turns"]))
    # returns-to-go: traj 0: (1.5, 0.5), traj 1: (0.2, 0.0), traj 2: (0.4,); turn 0 group of 3, turn 1 of 2
    assert torch.allclose(adv, torch.tensor([1.5 - 0.3, 0.5 - 0.0, 0.2 - 0.95, 0.0 - 0.5, 0.4 - 0.85]))
    single = rows([1.0, 0.2, 0.4], [0, 0, 0], [0, 1, 2], [0, 0, 0])  # one turn: TRLOO is RLOO
    assert torch.allclose(compute_advantages(algo, single),
                          compute_advantages(AlgoConfig(advantage="rloo", advantage_level="trajectory"), single))


def test_global_baseline_advantages_subtract_the_given_means():
    r = rows([1.0, 0.0, 0.5], [0, 0, 1], [0, 1, 2], [0, 0, 0])
    adv = compute_advantages(algorithm("reinforce_ada"), r, baseline_means=torch.tensor([0.25, 0.25, 0.5]))
    assert torch.allclose(adv, torch.tensor([0.75, -0.25, 0.0]))


def test_config_names_a_registered_level_and_collector():
    with pytest.raises(ValueError, match="advantage_level"):
        algorithm("rloo", advantage_level="episode")
    with pytest.raises(ValueError, match="sampling"):
        algorithm("rloo", sampling="adaptive")
    with pytest.raises(ValueError, match="provides baseline_means, which advantage 'grpo' does not take"):
        algorithm("reinforce_ada", advantage="grpo")
    assert algorithm("reinforce_ada").advantage == "global_mean"


# -- collectors ----------------------------------------------------------------------------------------


class ScriptedRollouts:
    """``rollouts`` stand-in: trajectory j of task ``task`` in call ``round_`` gets turn rewards
    ``rewards(task, round_, j)``; records (tasks, seed, first_traj) per call."""

    def __init__(self, rewards):
        self.rewards, self.calls = rewards, []

    def __call__(self, tasks, *, group_size, seed, first_traj=0):
        round_ = len(self.calls)
        self.calls.append((list(tasks), seed, first_traj))
        trajs = []
        for k, task in enumerate(tasks):
            for j in range(group_size):
                tid = first_traj + len(trajs)
                traj = Trajectory(group=k, traj=tid, task_id=task)
                traj.turns = [TurnSample(group=k, traj=tid, turn=t, task_id=task, prompt_ids=[1], response_ids=[2],
                                         sampler_logprobs=[0.0], text="", reward=r)
                              for t, r in enumerate(self.rewards(task, round_, j))]
                trajs.append(traj)
        return Rollout(trajectories=trajs, generated_tokens=len(trajs))


def test_group_collector_draws_group_size_per_task_and_needs_nothing_else():
    collector = COLLECTORS["group"]
    rollouts = ScriptedRollouts(lambda task, round_, j: [0.5])
    config = TrainConfig(group_size=3)
    got = collector.collect(rollouts, ["a", "b"], algorithm("rloo"), config, seed=5)
    assert rollouts.calls == [(["a", "b"], 5, 0)] and len(got.rollout.trajectories) == 6
    assert got.advantage_inputs == {} and got.stats == {}
    assert collector.envs_per_task(algorithm("rloo"), config) == 3


def test_reinforce_ada_collector_baseline_is_the_mean_return_over_every_collected_trajectory():
    # task a is never positive (2 rounds, 4 trajectories, 2 kept); b is positive at once (1 round, 2 kept)
    def rewards(task, round_, j):
        return [1.0, 0.0] if task == "b" else [0.1 + 0.1 * (2 * round_ + j), 0.05]

    rollouts = ScriptedRollouts(rewards)
    algo = algorithm("reinforce_ada", ada_n=2, ada_m=2, ada_rounds=2, gamma=0.5, ada_exit="positive",
                     ada_baseline="mean")
    got = COLLECTORS["reinforce_ada"].collect(rollouts, ["a", "b", "a"], algo, TrainConfig(), seed=10)
    assert rollouts.calls == [(["a", "b"], 10, 0), (["a"], 10 + 7919, 4)]  # unique trajectory ids across rounds
    assert got.stats == {"ada_rounds": 2, "ada_samples": 6}
    kept = got.rollout.samples
    assert [s.group for s in kept] == [0, 0, 0, 0, 1, 1, 1, 1] and got.rollout.generated_tokens == 6
    # a, turn 0: mean of (0.1, 0.2, 0.3, 0.4) + 0.5 * 0.05 over all four collected; turn 1: 0.05. b: 1.0 and 0.0
    by_turn = {(0, 0): 0.25 + 0.025, (0, 1): 0.05, (1, 0): 1.0, (1, 1): 0.0}
    expected = torch.tensor([by_turn[(s.group, s.turn)] for s in kept], dtype=torch.float64)
    assert torch.allclose(got.advantage_inputs["baseline_means"], expected)
    assert COLLECTORS["reinforce_ada"].envs_per_task(algo, TrainConfig()) == 2
    # the step's reward is measured on all 6 trajectories drawn, not on the kept (positive-leaning) groups
    assert len(got.measured.trajectories) == 6 and got.measured.samples[0].reward == pytest.approx(0.1)
    drawn = [0.1, 0.05, 0.2, 0.05, 1.0, 0.0, 1.0, 0.0, 0.3, 0.05, 0.4, 0.05]
    assert sorted(s.reward for s in got.measured.samples) == pytest.approx(sorted(drawn))
    assert COLLECTORS["group"].collect(rollouts, ["a"], algo, TrainConfig(group_size=1), seed=0).measured is None


def test_the_reinforce_ada_recipe_is_its_reference_scripts():
    """RLHFlow/Reinforce-Ada: round_repeat 8, max_rounds 4, final_keep_per_prompt 4, positive_threshold
    0.7, reinforce_ada_choice balanced, global_stat_est, clip 0.2 / 0.28, clip_ratio_c 10."""
    algo = algorithm("reinforce_ada")
    assert (algo.ada_m, algo.ada_rounds, algo.ada_n, algo.ada_threshold, algo.ada_exit, algo.ada_baseline) == \
        (8, 4, 4, 0.7, "balanced", "counts")
    assert algo.loss_options == {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 10.0}


def test_the_count_baseline_is_the_share_of_positives_over_every_sample():
    """Task a draws 1.0, 0.0 and exits (one positive, one negative: balanced for n=2); b draws 1.0, 0.9,
    then 0.8, 0.1. Baselines, over every sample: a 1/2, b 3/4 (the reference's mean of 1 per positive
    and 0 per negative; the mean reward would give b 0.7)."""
    def rewards(task, round_, j):
        table = {"a": [[1.0], [0.0]], "b": [[1.0], [0.9], [0.8], [0.1]]}
        return table[task][2 * round_ + j]

    rollouts = ScriptedRollouts(rewards)
    algo = algorithm("reinforce_ada", ada_n=2, ada_m=2, ada_rounds=2)
    got = COLLECTORS["reinforce_ada"].collect(rollouts, ["a", "b"], algo, TrainConfig(), seed=0)
    assert got.stats == {"ada_rounds": 2, "ada_samples": 6}
    share = {0: 1 / 2, 1: 3 / 4}
    assert torch.allclose(got.advantage_inputs["baseline_means"],
                          torch.tensor([share[s.group] for s in got.rollout.samples], dtype=torch.float64))


# -- batch -------------------------------------------------------------------------------------------


def test_batch_take_keeps_rows_together_and_cuts_tokens_to_their_longest_response():
    logp = torch.arange(12.0).reshape(3, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    batch = Batch(prompts=[[1], [2, 2], [3, 3, 3]], responses=[[7, 7], [8, 8, 8, 8], [9]],
                  rows={"rewards": torch.tensor([0.1, 0.2, 0.3])}, old_logp=logp, behavior_logp=-logp, mask=mask,
                  loss_mask=mask, token_weights=None, advantages=torch.tensor([1.0, 2.0, 3.0]))
    micro = batch.take([2, 0])
    assert len(micro) == 2 and micro.prompts == [[3, 3, 3], [1]] and micro.responses == [[9], [7, 7]]
    assert torch.equal(micro.old_logp, logp[[2, 0], :2]) and torch.equal(micro.behavior_logp, -logp[[2, 0], :2])
    assert torch.equal(micro.mask, mask[[2, 0], :2]) and micro.token_weights is None
    assert micro.advantages.tolist() == [3.0, 1.0] and micro.rows["rewards"].tolist() == pytest.approx([0.3, 0.1])
    assert micro.tokens == 3 + 1 + 1 + 2 and batch.tokens == 3 + 6 + 4


# -- update ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("agg", ["seq-mean-token-sum", "seq-mean-token-mean"])
def test_gradient_accumulation_matches_one_big_batch(agg):
    """Micro-batches of 2 accumulate exactly the gradient of one pass over all 6 rows."""
    policy = Policy.tiny(seed=0, hidden_size=64, num_hidden_layers=1, intermediate_size=128)
    prompts = [policy.encode_chat([{"role": "user", "content": "x" * (3 + i)}]) for i in range(6)]
    responses = [[20 + i] * (1 + i % 3) for i in range(6)]
    with torch.no_grad():
        old, mask = policy.logprobs(prompts, responses)
    adv = torch.linspace(-1, 1, 6)
    algo = AlgoConfig(advantage="rloo", loss="reinforce", agg=agg)
    grads = []
    for micro in (64, 2):
        policy.model.zero_grad()
        opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.0)
        cfg = TrainConfig(micro_batch_size=micro, max_grad_norm=1e9)
        batch = Batch(prompts=prompts, responses=responses, rows={}, old_logp=old, behavior_logp=old, mask=mask,
                      loss_mask=mask, token_weights=None, advantages=adv)
        update(policy, opt, algo, cfg, batch, seed=0)
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_the_gradient_does_not_depend_on_the_micro_batch_size(agg):
    """8 rows of unequal lengths, 3 of them rejected (masked out): micro-batches of 1, 2 and all 8 give
    one gradient. Normalising each micro-batch by its own tokens or rows and weighting it by its rows
    (the first trainer) gave cosine 0.80 and norm ratio 0.60 between sizes 1 and 8."""
    policy = Policy.tiny(seed=0, hidden_size=64, num_hidden_layers=1, intermediate_size=128)
    prompts = [policy.encode_chat([{"role": "user", "content": "x" * (3 + i)}]) for i in range(8)]
    responses = [[20 + i] * (1 + 2 * (i % 4)) for i in range(8)]
    with torch.no_grad():
        old, mask = policy.logprobs(prompts, responses)
    loss_mask = mask.clone()
    loss_mask[[1, 4, 6]] = False  # rejected rows: still in the batch, out of the loss
    adv = torch.linspace(-1, 1, 8)
    algo = AlgoConfig(advantage="rloo", loss="reinforce", agg=agg)
    grads = []
    for micro in (1, 2, 8):
        policy.model.zero_grad()
        opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.0)
        batch = Batch(prompts=prompts, responses=responses, rows={}, old_logp=old, behavior_logp=old, mask=mask,
                      loss_mask=loss_mask, token_weights=None, advantages=adv)
        update(policy, opt, algo, TrainConfig(micro_batch_size=micro, max_grad_norm=1e9), batch, seed=0)
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert grads[0].abs().sum() > 0
    for g in grads[1:]:
        assert torch.allclose(g, grads[0], atol=1e-5, rtol=1e-4), (agg, float((g - grads[0]).abs().max()))


def test_topr_tapers_by_the_whole_trajectory_whatever_the_micro_batches():
    """Two trajectories of two turns, the sampler's mu below pi_old: each turn's taper is
    clip(pi(tau)/mu(tau), 0, 1) over both of its trajectory's turns (TOPR), computed once where all
    turns are at hand (rest_of_trajectory), so micro-batches of 1 give the full batch's gradient."""
    from agents.algorithms import rest_of_trajectory, topr

    per_row = torch.tensor([[0.5, 0.25], [1.0, 0.0], [2.0, 0.0]])
    row_mask = torch.tensor([[1, 1], [1, 0], [1, 0]], dtype=torch.bool)
    rest = rest_of_trajectory(per_row, torch.zeros(3, 2), row_mask, torch.tensor([7, 7, 9]))
    assert rest.tolist() == [1.0, 0.75, 0.0]  # row 0: row 1's 1.0; row 1: row 0's 0.75; row 2: alone

    policy = Policy.tiny(seed=0, hidden_size=64, num_hidden_layers=1, intermediate_size=128)
    prompts = [policy.encode_chat([{"role": "user", "content": "y" * (2 + i)}]) for i in range(4)]
    responses = [[30 + i] * (1 + i % 2) for i in range(4)]
    with torch.no_grad():
        old, mask = policy.logprobs(prompts, responses)
    behavior = old - 0.3 * mask  # mu < pi: ratios above 1 would not taper, so shift a trajectory the other way
    behavior[2:] = old[2:] + 0.2 * mask[2:]
    traj_ids, adv = torch.tensor([0, 0, 1, 1]), torch.tensor([-1.0, -1.0, -0.5, 0.5])
    rows = {"traj_log_ratio_rest": rest_of_trajectory(old, behavior, mask, traj_ids)}
    whole, _ = topr(old, old, adv, mask, behavior_logp=behavior, traj_ids=traj_ids)  # every turn at hand
    split, _ = topr(old, old, adv, mask, behavior_logp=behavior, traj_log_ratio_rest=rows["traj_log_ratio_rest"])
    assert torch.allclose(whole, split)
    algo = AlgoConfig(advantage="rloo", loss="topr", loss_options={"ratio_level": "trajectory"}, agg="token-mean")
    grads = []
    for micro in (1, 4):
        policy.model.zero_grad()
        batch = Batch(prompts=prompts, responses=responses, rows=dict(rows), old_logp=old, behavior_logp=behavior,
                      mask=mask, loss_mask=mask, token_weights=None, advantages=adv)
        update(policy, torch.optim.SGD(policy.trainable_parameters(), lr=0.0), algo,
               TrainConfig(micro_batch_size=micro, max_grad_norm=1e9), batch, seed=0)
        grads.append(torch.cat([p.grad.flatten() for p in policy.trainable_parameters()]))
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)


def test_pi_old_is_the_sampler_at_step_0_for_a_checkpoint_with_dropout(tmp_path):
    """With attention dropout 0.1 the first trainer scored pi_old with dropout on: the trloo recipe's
    mismatch filter rejected every turn (rejected_share 1.0). Dropout is off for RL."""
    policy = Policy.tiny(seed=0)
    policy.model.config.attention_dropout = 0.1
    for module in policy.model.modules():
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = 0.1
    first = train(toy_config(tmp_path, algo="trloo", steps=1), policy=policy).history[0]
    assert first["rejected_share"] == 0.0 and first["mismatch_kl"] < 1e-6
    assert policy.model.config.attention_dropout == 0.0


# -- a run: artifacts, metrics, checkpoints, resume ---------------------------------------------------


METRIC_KEYS = {"step", "reward", "best_reward", "correct", "fast_1", "hack_rate", "coverage", "clip_fraction",
               "mismatch_kl", "rejected_share", "prs_kept", "loss", "grad_norm", "tokens_per_s", "gen_tokens_per_s",
               "train_tokens_per_s", "response_tokens", "context_cut_share"}


def test_a_short_run_writes_metrics_plot_and_a_loadable_checkpoint(tmp_path):
    result = train(toy_config(tmp_path, algo="trloo", steps=3, plot=True, group_size=2, checkpoint_every=2))
    out = result.out_dir
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and lines == result.history
    assert METRIC_KEYS <= set(lines[0])
    first = lines[0]
    assert first["fast_1"] is None and first["coverage"] is None  # the toy env measures no speed: none invented
    assert first["correct"] is not None and 0 <= first["reward"] <= 1 and first["hack_rate"] == 0
    assert first["mismatch_kl"] < 1e-6 and first["rejected_share"] == 0  # same weights: Dr. Kernel's band keeps all
    assert first["tokens_per_s"] > 0 and first["turns"] == 4 * 2 * 2
    assert (out / "metrics.png").stat().st_size > 1000 and json.loads((out / "config.json").read_text())["steps"] == 3
    ckpt = latest_checkpoint(out)
    assert ckpt.name == "step_000003" and (out / "checkpoints" / "step_000002").exists()
    loaded = Policy.load(str(ckpt / "policy"))
    prompt = [loaded.encode_chat([{"role": "user", "content": "Say the secret word 0."}])]
    with torch.no_grad():
        assert torch.allclose(loaded.logprobs(prompt, [[20, 21]])[0], result.policy.logprobs(prompt, [[20, 21]])[0])


@pytest.mark.parametrize("adapter, options", [("full", {}), ("lora", {"r": 4, "alpha": 8}),
                                               ("remix", {"k": 3, "m": 2, "r": 2})], ids=["full", "lora", "remix"])
def test_resume_replays_the_uninterrupted_run(tmp_path, adapter, options):
    if adapter == "lora":
        pytest.importorskip("peft")
    kw = dict(algo="grpo", group_size=4, adapter=adapter, **({adapter: options} if options else {}))
    straight = train(toy_config(tmp_path / "a", steps=4, **kw))
    train(toy_config(tmp_path / "b", steps=2, **kw))
    resumed = train(toy_config(tmp_path / "b", steps=4, resume=True, **kw))
    assert [r["step"] for r in resumed.history] == [1, 2, 3, 4]
    assert (resumed.policy.lora is not None) == (adapter == "lora")
    assert (resumed.policy.remix is not None) == (adapter == "remix")
    for a, b in zip(straight.history, resumed.history):
        for key in ("reward", "loss", "grad_norm", "response_tokens"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["step"], key)
    assert any(r["loss"] != 0 for r in straight.history[2:])  # the replayed steps did learn something


# -- filters and kernel-style metrics on a scripted env ------------------------------------------------


class KernelLike(gym.Env):
    """Answers 'fast' are correct with speedup 2, 'slow' correct with speedup 0.5, 'hack' flagged.
    Coverage comes from the constructor: PRS keeps a correct turn with P = clip((cov - 0.3) / 0.1, 0, 1)."""

    def __init__(self, coverage=1.0):
        self.coverage = coverage
        self.observation_space = self.action_space = gym.spaces.Text(100)

    task_ids = ("k0", "k1")

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.task = (options or {}).get("task_id", "k0")
        return f"write kernel {self.task}", {"task_id": self.task}

    def step(self, action):
        word = action.split()[0]
        correct = word in ("fast", "slow", "hack")
        info = {"task_id": self.task, "correct": correct, "hacks": ["no_own_kernel_launched"] if word == "hack" else [],
                "speedup": {"fast": 2.0, "slow": 0.5, "hack": 9.0}.get(word), "coverage": self.coverage if correct else None}
        reward = 0.0 if info["hacks"] or not correct else 1.0 + info["speedup"]
        return "ok", reward, False, True, info


def scripted_run(tmp_path, coverage, answers, algo="trloo", shift=0.0, **kw):
    policy = Policy.tiny(seed=0, hidden_size=64, num_hidden_layers=1, intermediate_size=128)
    sampler = ScriptedSampler(policy, lambda prompt, k: answers[k % len(answers)], logprob_shift=shift)
    pool = EnvPool([KernelLike(coverage) for _ in range(4)])
    cfg = TrainConfig(algo=algo, steps=1, tasks_per_step=2, group_size=2, max_turns=1, progress=False, plot=False,
                      out_dir=str(tmp_path / f"{algo}{coverage}{shift}"), **kw)
    return train(cfg, policy=policy, pool=pool, sampler=sampler).history[0]


def test_kernel_metrics_count_correct_fast_and_hacked_turns(tmp_path):
    m = scripted_run(tmp_path, 1.0, ["fast", "slow", "hack", "junk"])
    assert m["correct"] == 0.75 and m["hack_rate"] == 0.25
    assert m["fast_1"] == 0.25  # per trajectory: only the 'fast' one; the hacked 9x does not count
    assert m["coverage"] == 1.0 and m["speedup"] == pytest.approx((2.0 + 0.5) / 2)  # clean turns only
    assert m["reward"] == pytest.approx((3.0 + 1.5 + 0 + 0) / 4)


def test_prs_drops_correct_turns_with_low_coverage_only(tmp_path):
    low = scripted_run(tmp_path, 0.1, ["fast", "junk"])
    assert low["prs_kept"] == 0.5  # every correct turn rejected, every incorrect one kept
    high = scripted_run(tmp_path, 0.9, ["fast", "junk"])
    assert high["prs_kept"] == 1.0
    off = scripted_run(tmp_path, 0.1, ["fast", "junk"], algo="rloo")
    assert off["prs_kept"] == 1.0  # PRS belongs to the trloo recipe only


def test_mismatch_rejection_drops_turns_outside_the_band(tmp_path):
    shifted = scripted_run(tmp_path, 1.0, ["fast", "junk"], shift=0.01)  # mu = pi * e^0.01 on every token
    assert shifted["mismatch_kl"] > 0 and shifted["rejected_share"] == 1.0 and shifted["kept_token_share"] == 0.0
    assert shifted["optimizer_steps"] == 0  # nothing left to learn from: no step taken
    exact = scripted_run(tmp_path, 1.0, ["fast", "junk"], shift=0.0)
    assert exact["rejected_share"] == 0.0 and exact["optimizer_steps"] == 1
    tis = scripted_run(tmp_path, 1.0, ["fast", "junk"], algo="rloo", shift=0.01,
                       algo_options={"mismatch": "tis"})
    assert tis["rejected_share"] == 0.0 and tis["optimizer_steps"] == 1 and tis["mismatch_kl"] > 0


def test_trloo_rejects_by_the_whole_trajectory_as_dr_kernel_does():
    """Trajectory A: turn 1 has log pi_old/mu = +0.003 on its one token, turn 2 -0.001 on each of its
    three: the trajectory's geometric mean is exp(0) = 1, inside [0.999, 1.001], so both turns stay,
    although turn 1 alone (exp(0.003) = 1.003) is outside. Trajectory B: +0.002 everywhere, out."""
    from agents.trainer import apply_filters

    mask = torch.tensor([[1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    shift = torch.tensor([[0.003, 0, 0], [-0.001] * 3, [0.002, 0.002, 0], [0.002] * 3])
    behavior = torch.full((4, 3), -1.0)
    rows = {"traj_ids": torch.tensor([0, 0, 1, 1]), "correct": torch.zeros(4), "coverage": torch.ones(4)}
    algo = algorithm("trloo", prs=False)
    assert algo.mismatch_level == "trajectory"
    kept, *_ = apply_filters(algo, rows, behavior + shift, behavior, mask, torch.Generator().manual_seed(0))
    assert kept.any(-1).tolist() == [True, True, False, False] and torch.equal(kept[:2], mask[:2])
    per_turn, *_ = apply_filters(algorithm("trloo", prs=False, mismatch_level="turn"), rows, behavior + shift,
                                 behavior, mask, torch.Generator().manual_seed(0))
    assert per_turn.any(-1).tolist() == [False, True, False, False]


def test_reinforce_ada_samples_in_rounds_and_keeps_n_per_task(tmp_path):
    m = scripted_run(tmp_path, 1.0, ["junk"], algo="reinforce_ada",
                     algo_options={"ada_n": 2, "ada_m": 2, "ada_rounds": 3})
    assert m["ada_rounds"] == 3 and m["ada_samples"] == 2 * 2 * 3  # never positive: every round runs
    assert m["trajectories"] == 2 * 2
    solved = scripted_run(tmp_path, 1.0, ["fast"], algo="reinforce_ada",
                          algo_options={"ada_n": 2, "ada_m": 2, "ada_rounds": 3, "ada_threshold": 0.5,
                                        "ada_exit": "positive", "ada_baseline": "mean"})
    assert solved["ada_rounds"] == 1 and solved["advantage_abs"] == 0.0  # all equal to the global mean
    assert not math.isnan(solved["loss"])


def test_rl_trains_remix_loras_through_top_m_routing_and_leaves_the_routers(tmp_path):
    """In RL the sampler and the trainer route by top m (one deterministic network, so pi_old is mu);
    the LoRAs learn from the policy gradient, the routers keep what SFT taught them."""
    policy = Policy.tiny(seed=0).enable_remix()
    start = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    result = train(toy_config(tmp_path, steps=2, algo="grpo", group_size=4), policy=policy)
    assert result.history[0]["mismatch_kl"] < 1e-6
    now = dict(result.policy.model.named_parameters())
    changed = {n.rsplit(".", 1)[-1] for n, p in now.items() if not torch.equal(p.detach(), start[n])}
    assert changed == {"lora_A", "lora_B"}
