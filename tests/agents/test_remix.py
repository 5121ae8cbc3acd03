"""ReMix: equal fixed weights over the active LoRAs, Plackett-Luce routing, the router's RLOO gradient
estimator unbiased (and a biased look-alike caught), and ReMix in SFT, checkpoints and RL."""

import itertools
import math

import pytest
import torch
from torch import nn

from agents.adapters import ReMixSettings
from agents.policies import Policy, SamplingParams
from agents import remix
from agents.remix import (
    ReMixLinear,
    attach,
    backward_rloo,
    layers_of,
    plackett_luce_log_prob,
    rloo_advantages,
    routing_log_prob,
    sampled_routing,
)


def layer(k=4, m=2, r=2, d_in=3, d_out=2, seed=0) -> ReMixLinear:
    torch.manual_seed(seed)
    mixed = ReMixLinear(nn.Linear(d_in, d_out), ReMixSettings(k=k, m=m, r=r, alpha=r))
    with torch.no_grad():  # B starts at zero (the layer starts as its base); make every LoRA matter
        mixed.lora_B.normal_()
        mixed.router.normal_()
    return mixed


def test_active_loras_are_weighted_equally_and_the_weights_are_not_learnt():
    mixed = layer(k=4, m=2)
    x = torch.randn(5, 3)
    chosen = torch.tensor([[0, 1], [2, 3], [3, 0], [1, 2], [2, 0]])
    by_hand = torch.stack([
        mixed.base(x[t]) + sum(mixed.lora_B[i] @ (mixed.lora_A[i] @ x[t]) for i in row) / 2
        for t, row in enumerate(chosen.tolist())])
    assert torch.allclose(mixed.mix(x, chosen), by_hand, atol=1e-6)
    assert torch.allclose(mixed.mix(x, chosen.flip(-1)), by_hand, atol=1e-6)  # the order of a draw is no weight
    top = mixed(x)  # outside sampled routing: the router's top m, deterministic, and no gradient to the router
    assert torch.equal(top, mixed.mix(x, (x @ mixed.router.T).topk(2).indices))
    top.sum().backward()
    assert mixed.router.grad is None and mixed.lora_A.grad is not None
    with torch.no_grad():  # a LoRA that is not routed to contributes nothing
        mixed.lora_B[1].add_(1.0)
    assert torch.allclose(mixed.mix(x, chosen)[2], by_hand[2], atol=1e-6)  # token 2 uses LoRAs 3 and 0
    assert not torch.allclose(mixed.mix(x, chosen)[0], by_hand[0])  # token 0 uses LoRA 1


def test_a_routing_is_a_plackett_luce_draw_of_m_distinct_loras():
    logits = torch.tensor([1.0, 0.0, -0.5, 0.3])
    orders = list(itertools.permutations(range(4), 2))
    probs = {o: math.exp(plackett_luce_log_prob(logits, torch.tensor(o))) for o in orders}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
    z = sum(math.exp(v) for v in logits.tolist())
    assert probs[(0, 1)] == pytest.approx(math.exp(1) / z * math.exp(0) / (z - math.exp(1)), rel=1e-6)
    mixed = layer(k=4, m=2, d_in=4)
    with torch.no_grad():
        mixed.router.copy_(torch.eye(4) * logits)  # x = ones -> these logits for every token
    n = 20000
    with sampled_routing(mixed):
        chosen, log_prob = mixed.route(torch.ones(n, 4))
    assert (chosen[:, 0] != chosen[:, 1]).all()
    for order, p in probs.items():
        seen = ((chosen[:, 0] == order[0]) & (chosen[:, 1] == order[1])).float().mean().item()
        assert abs(seen - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3, (order, seen, p)
    assert torch.allclose(log_prob.exp(), torch.tensor([probs[tuple(c)] for c in chosen.tolist()]), atol=1e-5)


# -- the router's gradient estimator ---------------------------------------------------------------

TOKENS = 2  # a sequence of two tokens, each routed: 12 x 12 joint routings to sum over exactly


def toy_loss(out: torch.Tensor) -> torch.Tensor:
    """Per row: a squared error of both tokens' outputs against fixed targets."""
    target = torch.tensor([[0.5, -1.0], [2.0, 0.3]])
    return ((out - target) ** 2).sum((-1, -2))


def exact_gradient(mixed: ReMixLinear, x: torch.Tensor) -> list[torch.Tensor]:
    """d/dtheta of E_S[loss] by summing over every ordered routing of both tokens."""
    logits = x @ mixed.router.T
    orders = [torch.tensor(o) for o in itertools.permutations(range(mixed.k), mixed.m)]
    expected = 0.0
    for first, second in itertools.product(orders, orders):
        chosen = torch.stack([first, second])
        log_p = plackett_luce_log_prob(logits, chosen).sum()
        expected = expected + log_p.exp() * toy_loss(mixed.mix(x, chosen).unsqueeze(0))[0]
    return list(torch.autograd.grad(expected, [mixed.router, mixed.lora_A, mixed.lora_B]))


def estimates(mixed: ReMixLinear, x: torch.Tensor, batches=60, rows=100, samples=2):
    """Per batch of ``rows`` independent replicas: ``backward_rloo``'s mean gradient (flattened)."""
    out = []
    xs = x.expand(rows, *x.shape)
    for _ in range(batches):
        mixed.zero_grad(set_to_none=True)
        backward_rloo(mixed, lambda: toy_loss(mixed(xs)), [TOKENS] * rows, samples, scale=1 / rows)
        out.append(torch.cat([p.grad.flatten() for p in (mixed.router, mixed.lora_A, mixed.lora_B)]))
    return torch.stack(out)


def self_inclusive(losses):
    """A look-alike with the mean over all N routings (itself included) as the baseline: biased."""
    return losses - losses.mean(0, keepdim=True)


def test_the_router_gradient_estimator_is_unbiased_within_4_standard_errors(monkeypatch):
    torch.manual_seed(0)
    mixed = layer(k=3, m=2, r=2)
    x = torch.randn(TOKENS, 3)
    exact = torch.cat([g.flatten() for g in exact_gradient(mixed, x)])
    router = slice(0, mixed.router.numel())
    torch.manual_seed(1)
    rloo = estimates(mixed, x)
    mean, se = rloo.mean(0), rloo.std(0) / math.sqrt(len(rloo))
    assert exact[router].abs().max() > 0.1  # the router has a real gradient to get right
    assert ((mean - exact).abs() <= 4 * se + 1e-6).all(), ((mean - exact) / se)
    torch.manual_seed(1)
    monkeypatch.setattr(remix, "rloo_advantages", self_inclusive)
    biased = estimates(mixed, x)  # halves the score term at N = 2: the test must see it
    b_mean, b_se = biased.mean(0), biased.std(0) / math.sqrt(len(biased))
    assert ((b_mean - exact).abs()[router] > 4 * b_se[router]).any()


def test_each_routing_is_judged_against_the_mean_of_the_others():
    losses = torch.tensor([[1.0, 2.0], [3.0, 5.0], [2.0, 2.0]])
    assert torch.equal(rloo_advantages(losses), torch.tensor([[-1.5, -1.5], [1.5, 3.0], [0.0, -1.5]]))
    with pytest.raises(ValueError, match="at least 2"):
        rloo_advantages(losses[:1])


def test_backward_rloo_replays_what_it_drew_and_returns_the_mean_loss():
    mixed = layer(k=3, m=2)
    xs = torch.randn(4, TOKENS, 3)
    seen = []

    def row_loss():
        out = mixed(xs)
        seen.append((torch.is_grad_enabled(), mixed.drawn.clone(), toy_loss(out).detach()))
        return toy_loss(out)

    mean = backward_rloo(mixed, row_loss, [TOKENS] * 4, samples=3)
    drawn, replayed = seen[:3], seen[3:]
    assert [g for g, *_ in drawn] == [False] * 3 and [g for g, *_ in replayed] == [True] * 3
    assert all(torch.equal(a[1], b[1]) and torch.allclose(a[2], b[2]) for a, b in zip(drawn, replayed))
    assert torch.allclose(mean, torch.stack([loss for *_, loss in drawn]).mean(0))
    assert mixed.router.grad is not None and mixed.drawn is None and mixed.replay is None


def test_padding_is_left_out_of_the_routing_log_prob():
    mixed = layer(k=3, m=1)
    with sampled_routing(mixed) as layers:
        mixed(torch.randn(2, 4, 3))
        per_token = mixed.log_prob
        got = routing_log_prob(layers, [4, 2])
    assert torch.allclose(got, torch.stack([per_token[0].sum(), per_token[1, 2:].sum()]))
    assert mixed.log_prob is None and not mixed.sampling  # the context cleans up


# -- ReMix on a policy ----------------------------------------------------------------------------


def small_policy() -> Policy:
    return Policy.tiny(seed=0, tokenizer="bpe", hidden_size=64, intermediate_size=128, num_hidden_layers=2)


def test_attach_wraps_every_linear_but_the_head_and_freezes_the_rest():
    policy = small_policy().enable_remix(ReMixSettings(k=3, m=2, r=2))
    layers = layers_of(policy.model)
    assert len(layers) == 2 * 7  # q k v o gate up down, in 2 layers
    trainable = {n.rsplit(".", 1)[-1] for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A", "lora_B", "router"}
    only_q = attach(small_policy().model, ReMixSettings(target_modules=["q_proj"]))
    assert len(only_q) == 2
    with pytest.raises(ValueError, match="no linear layer"):
        attach(small_policy().model, ReMixSettings(target_modules=["nope"]))


def test_a_remix_policy_starts_as_its_base_and_round_trips(tmp_path):
    base = small_policy()
    policy = small_policy().enable_remix(ReMixSettings(k=3, m=2, r=2))
    prompts, responses = [policy.encode_chat([{"role": "user", "content": "relu"}])], [[20, 21, 22]]
    with torch.no_grad():
        assert torch.allclose(policy.logprobs(prompts, responses)[0], base.logprobs(prompts, responses)[0], atol=1e-6)
        for layer_ in layers_of(policy.model):
            layer_.lora_B.normal_(std=0.1)
        before = policy.logprobs(prompts, responses)[0]
    path = policy.save(tmp_path / "remix")
    assert (path / "remix.pt").exists() and not (path / "model.safetensors").exists()
    loaded = Policy.load(str(path))
    assert loaded.remix == policy.remix
    with torch.no_grad():
        assert torch.allclose(loaded.logprobs(prompts, responses)[0], before, atol=1e-6)
    gen = loaded.generate(prompts, params=SamplingParams(4, 0.0))
    assert len(gen[0].token_ids) >= 1  # the sampler view routes by top m too
