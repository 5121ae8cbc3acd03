"""Shared pieces of the agents training tests: the toy run settings and scripted samplers."""

import torch

from agents.policies import Generation, Policy

# The toy settings every learning test uses (seconds per algorithm on one CPU core).
TOY_SHAPE = {"hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 256}
TOY_RUN = dict(
    env="agents/TargetString-v0",
    tasks_per_step=4,
    group_size=8,
    max_turns=2,
    max_new_tokens=4,
    lr=3e-3,
    minibatches=2,
    micro_batch_size=64,
    model_options=TOY_SHAPE,
    progress=False,
)


class ScriptedSampler:
    """A sampler that answers ``answer(prompt_text, k)``; its log-probs are the policy's own (mu = pi),
    shifted by ``logprob_shift`` to fake a sampler/trainer mismatch."""

    def __init__(self, policy: Policy, answer, logprob_shift: float = 0.0):
        self.policy, self.answer, self.shift, self.calls = policy, answer, logprob_shift, 0

    def generate(self, prompts, params, *, seed=None, batch_size=None):
        tok = self.policy.tokenizer
        out = []
        for k, prompt in enumerate(prompts):
            text = self.answer(tok.decode(prompt), k)
            ids = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
            with torch.no_grad():
                logp, _ = self.policy.logprobs([prompt], [ids], temperature=params.temperature or 1.0)
            lps = [x + self.shift for x in logp[0].tolist()]
            out.append(Generation(text=text, token_ids=ids, logprobs=lps, finished=True))
        self.calls += 1
        return out
