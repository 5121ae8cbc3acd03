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
    for expected in ("subclasses torch.Tensor", "monkeypatches a module", "calls gc.get_objects",
                     "try/except around a kernel launch", "side stream", "casts to lower precision"):
        assert expected in text, expected
    assert "thread" not in text  # importing threading (for a Lock) is no evidence; starting a Thread is
    spawn = parse_submission("```python\nimport threading\nclass ModelNew:\n    def forward(self, x):\n"
                             "        threading.Thread(target=print).start()\n```")
    assert any("spawns concurrent work" in f for f in spawn.findings)


def test_honest_solutions_have_no_findings(bundled):
    for task in bundled.values():
        assert parse_submission(task.solution).findings == [], task.id


def test_the_block_evaluated_is_the_last_that_defines_modelnew_and_feedback_names_it(evaluator, bundled):
    from helpers import KERNEL

    solution = KERNEL + "\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return relu(x)\n"
    usage = "model = ModelNew()\nprint(model(torch.randn(4, 4)))\n"
    reply = f"Solution:\n```python\n{solution}```\nUsage:\n```python\n{usage}```\n"
    sub = parse_submission(reply)
    assert "relu_kernel" in sub.kernels and sub.findings[0].startswith("evaluated code block 1 of 2")
    r = evaluator.evaluate(bundled["L1/19_ReLU"], reply)
    assert r.clean and r.feedback.startswith("(Evaluated code block 1 of 2: the last one that defines ModelNew.)")
    assert parse_submission(f"```python\n{solution}```").findings == []  # one block: nothing to say


def test_replies_are_decoded_tolerantly_and_bad_ones_get_a_parse_result(evaluator, bundled):
    from helpers import KERNEL

    from kernel_env.evaluator.submission import MAX_REPLY_CHARS, decode_reply

    code = KERNEL + "\n\nclass ModelNew(nn.Module):\n    def forward(self, x):  # caf\xe9\n        return relu(x)\n"
    raw = f"```python\n{code}```\n".encode("latin-1")  # one byte that is not UTF-8
    assert evaluator.evaluate(bundled["L1/19_ReLU"], decode_reply(raw)).clean
    binary = evaluator.evaluate(bundled["L1/19_ReLU"], decode_reply(bytes(range(256)) * 4))
    assert binary.stage == "parse" and "binary data" in binary.error
    huge = evaluator.evaluate(bundled["L1/19_ReLU"], "```python\n" + "#" * MAX_REPLY_CHARS + "\n```")
    assert huge.stage == "parse" and "more than the" in huge.error


def test_an_except_block_that_only_reraises_is_no_fallback():
    code = '''import triton
@triton.jit
def k(x_ptr):
    pass
class ModelNew:
    def forward(self, x):
        try:
            k[(1,)](x)
        except RuntimeError as exc:
            print("launch failed")
            raise ValueError(f"kernel k failed: {exc}") from exc
        return x
'''
    assert not any("try/except" in f for f in parse_submission(f"```python\n{code}```").findings)
    fallback = code.replace('raise ValueError(f"kernel k failed: {exc}") from exc', "return x * 2")
    assert any("try/except" in f for f in parse_submission(f"```python\n{fallback}```").findings)
