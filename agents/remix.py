"""ReMix: a mixture of LoRAs per linear layer with fixed, equal routing weights and a router trained
by reinforcement (Qiu et al., 2026, arXiv 2603.10160).

Learnt softmax routing weights collapse onto one LoRA; ReMix gives each of the ``m`` active LoRAs the
same weight 1/m, so the choice of LoRAs is discrete and the router cannot learn by backpropagation.
It learns as a policy instead: a routing S (for every token, at every adapted layer) is drawn from the
router, the supervision loss of the sequence under S is the (negative) reward, and the gradient of
E_S[loss] is estimated with REINFORCE and a leave-one-out baseline over ``samples`` routings (RLOO):

    grad ~= 1/N sum_j [ grad loss_j + (loss_j - mean_{i != j} loss_i) * grad log p(S_j) ]

A routing is a Plackett-Luce draw of m distinct LoRAs (Gumbel-top-m on the router's logits); its
log-probability is the ordered draw's, which keeps the estimator exact without summing over orders.
The N routings are drawn in no-grad forwards first (the baseline needs every loss), then each is
replayed with gradients and backpropagated at once, so memory holds one graph, not N.
Outside ``sampled_routing`` (generation, evaluation, RL) each token takes the router's top m, so the
sampler and the trainer see one deterministic network: RL trains the LoRAs, the router keeps what
SFT taught it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .adapters import ReMixSettings


class ReMixLinear(nn.Module):
    """``base(x) + alpha/r * 1/m * sum over the m routed LoRAs of B_i A_i x``; ``base`` stays frozen."""

    def __init__(self, base: nn.Linear, settings: ReMixSettings):
        super().__init__()
        self.base = base
        self.k, self.m, self.scale = settings.k, settings.m, settings.alpha / settings.r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(settings.k, settings.r, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(settings.k, base.out_features, settings.r, **like))  # starts as base
        self.router = nn.Parameter(torch.empty(settings.k, base.in_features, **like))
        for a in self.lora_A:  # LoRA's own init of A, per expert
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        nn.init.normal_(self.router, std=1 / math.sqrt(base.in_features))
        self.sampling = False  # set by ``sampled_routing``
        self.replay: Tensor | None = None  # a routing to use again (``replayed_routing``)
        self.drawn: Tensor | None = None  # the last routing drawn or replayed, [..., m]
        self.log_prob: Tensor | None = None  # its log-prob under the router, per token

    def route(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The m active LoRAs of each token ([..., m]) and, when sampling, the draw's log-prob ([...])."""
        logits = nn.functional.linear(x, self.router).float()
        if self.replay is not None:
            return self.replay, plackett_luce_log_prob(logits, self.replay)
        if not self.sampling:
            return logits.topk(self.m, dim=-1).indices, None
        gumbel = -torch.empty_like(logits).exponential_().log()
        chosen = (logits.detach() + gumbel).topk(self.m, dim=-1).indices  # sorted: the order of the draw
        return chosen, plackett_luce_log_prob(logits, chosen)

    def mix(self, x: Tensor, chosen: Tensor) -> Tensor:
        """The layer's output with the LoRAs ``chosen`` ([..., m]) active, each weighted 1/m."""
        gate = torch.zeros(*chosen.shape[:-1], self.k, device=x.device, dtype=x.dtype)
        gate.scatter_(-1, chosen, 1.0 / self.m)
        hidden = torch.einsum("...i,kri->...kr", x, self.lora_A) * gate.unsqueeze(-1)
        return self.base(x) + self.scale * torch.einsum("...kr,kor->...o", hidden, self.lora_B)

    def forward(self, x: Tensor) -> Tensor:
        chosen, self.log_prob = self.route(x)
        if self.log_prob is not None:
            self.drawn = chosen
        return self.mix(x, chosen)


def plackett_luce_log_prob(logits: Tensor, chosen: Tensor) -> Tensor:
    """log p of drawing ``chosen`` ([..., m], in order) without replacement from softmax(``logits``)."""
    taken = torch.zeros_like(logits, dtype=torch.bool)
    total = torch.zeros(logits.shape[:-1], device=logits.device, dtype=logits.dtype)
    for j in range(chosen.shape[-1]):
        pick = chosen[..., j : j + 1]
        total = total + logits.gather(-1, pick).squeeze(-1) - logits.masked_fill(taken, -math.inf).logsumexp(-1)
        taken = taken.scatter(-1, pick, True)
    return total


# --------------------------------------------------------------------------------------------------
# attaching to a model, and sampled routing


def attach(model: nn.Module, settings: ReMixSettings, seed: int = 0) -> list[ReMixLinear]:
    """Replace the target linear layers of ``model`` by ``ReMixLinear``; freeze everything else.

    ``target_modules="all-linear"``: every ``nn.Linear`` but the output head (as peft's option does);
    a list: the layers whose name ends with one of its entries."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    targets = settings.target_modules

    def wanted(name: str, module: nn.Module) -> bool:
        if not isinstance(module, nn.Linear) or module is head:
            return False
        return targets == "all-linear" or any(name == t or name.endswith("." + t) for t in targets)

    found = [(name, module) for name, module in model.named_modules() if wanted(name, module)]
    if not found:
        raise ValueError(f"remix found no linear layer matching target_modules={targets!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    layers = []
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's stream alone
        torch.manual_seed(seed)
        for name, module in found:
            parent_name, _, child = name.rpartition(".")
            layer = ReMixLinear(module, settings)
            setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
            layers.append(layer)
    return layers


def layers_of(model: nn.Module) -> list[ReMixLinear]:
    return [m for m in model.modules() if isinstance(m, ReMixLinear)]


@contextmanager
def sampled_routing(model: nn.Module) -> Iterator[list[ReMixLinear]]:
    """Inside, every ReMix layer draws its routing and records it and its log-prob."""
    layers = layers_of(model)
    for layer in layers:
        layer.sampling = True
    try:
        yield layers
    finally:
        for layer in layers:
            layer.sampling, layer.replay, layer.drawn, layer.log_prob = False, None, None, None


@contextmanager
def replayed_routing(layers: Sequence[ReMixLinear], routing: Sequence[Tensor]) -> Iterator[None]:
    """Inside, each layer routes as ``routing`` says (one drawn earlier) and records its log-prob."""
    for layer, chosen in zip(layers, routing, strict=True):
        layer.replay = chosen
    try:
        yield
    finally:
        for layer in layers:
            layer.replay = None


def routing_log_prob(layers: Sequence[ReMixLinear], lengths: Sequence[int]) -> Tensor:
    """log p of the last forward's routing, per row ([B]): all layers, the real tokens of each row.

    Rows are left-padded to the longest (``Policy``'s layout), so row i's tokens are its last
    ``lengths[i]``; padding routes too, but it cannot touch the loss, so it is left out."""
    per_token = sum(layer.log_prob for layer in layers)  # [B, T]
    width = per_token.shape[-1]
    n = torch.tensor(list(lengths), device=per_token.device).unsqueeze(1)
    real = torch.arange(width, device=per_token.device).unsqueeze(0) >= width - n
    return (per_token * real).sum(-1)


def rloo_advantages(losses: Tensor) -> Tensor:
    """Each routing's loss minus the mean of the other routings' losses, per row ([N, B])."""
    n = losses.shape[0]
    if n < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 routings")
    return losses - (losses.sum(0, keepdim=True) - losses) / (n - 1)


def backward_rloo(model: nn.Module, row_loss: Callable[[], Tensor], lengths: Sequence[int], samples: int,
                  scale: float = 1.0) -> Tensor:
    """Accumulate into ``.grad`` the estimate of d/dtheta E_S[scale * sum of row losses] over ``samples``
    routings S; returns the mean loss per row over them ([B], no grad).

    ``row_loss()`` runs the model and returns each row's loss ([B]). The routings are drawn without
    gradients; each is then replayed and backpropagated through loss + (loss - leave-one-out mean) *
    log p(S): the pathwise gradient of the LoRAs plus the REINFORCE gradient of the routers."""
    with torch.no_grad(), sampled_routing(model) as layers:
        losses, routings = [], []
        for _ in range(samples):
            losses.append(row_loss())
            routings.append([layer.drawn for layer in layers])
    losses = torch.stack(losses)
    advantages = rloo_advantages(losses)
    for routing, advantage in zip(routings, advantages):
        with replayed_routing(layers, routing):
            surrogate = row_loss() + advantage * routing_log_prob(layers, lengths)
            (surrogate.sum() * (scale / samples)).backward()
    for layer in layers:
        layer.drawn = layer.log_prob = None
    return losses.mean(0)
