"""Extracting code from LLM replies and the static findings read from it."""

import pytest

from kernel_env.evaluator.submission import SubmissionError, extract_code, parse_submission

BODY = "import torch\nclass ModelNew(torch.nn.Module):\n    pass\n"


def test_last_python_block_wins_and_prose_is_ignored():
    reply = f"First try:\n```python\nx = 1\n```\nBetter:\n```python\n{BODY}```\nDone."
    assert extract_code(reply) == BODY


def test_missing_language_tag_crlf_and_other_tags():
    assert extract_code(f"Here:\n```\n{BODY}```\n".replace("\n", "\r\n")) == BODY
    assert extract_code(f"```py\n{BODY}```") == BODY
    reply = f"```python\n{BODY}```\n```bash\nrm -rf /\n```"
    assert extract_code(reply) == BODY  # a trailing shell block is not python


def test_bare_code_is_accepted_and_no_code_is_an_error():
    assert extract_code(BODY) == BODY
    with pytest.raises(SubmissionError, match="no ```python code block"):
        extract_code("I think you should use a GEMM.")


def test_syntax_error_and_missing_modelnew_are_reported_for_the_llm():
    with pytest.raises(SubmissionError, match="syntax error on line 1"):
        parse_submission("```python\ndef broken(:\n```")
    with pytest.raises(SubmissionError, match="no top-level class ModelNew"):
        parse_submission("```python\nclass Model: pass\n```")


def test_static_findings_are_evidence():
    code = '''
import threading, gc, torch, triton
import triton.language as tl

@triton.jit
def k(x_ptr):
    pass

class Lazy(torch.Tensor):
    pass

class ModelNew(torch.nn.Module):
    def forward(self, x):
        torch.cuda.synchronize = lambda: None
        gc.get_objects()
        try:
            k[(1,)](x)
        except Exception:
            return torch.relu(x)
        s = torch.cuda.Stream()
        return x.half().float()
'''
    sub = parse_submission(f"```python\n{code}```")
    assert sub.kernels == ["k"]
    text = "\n".join(sub.findings)
    for expected in ("imports threading", "subclasses torch.Tensor", "monkeypatches a module", "calls gc.get_objects",
                     "try/except around a kernel launch", "side stream", "casts to lower precision"):
        assert expected in text, expected


def test_honest_solutions_have_no_findings(bundled):
    for task in bundled.values():
        assert parse_submission(task.solution).findings == [], task.id
