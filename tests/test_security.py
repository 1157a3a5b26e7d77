"""The package never unpickles untrusted files nor evaluates strings: a grep over its source.

Rules (DEVELOPERS' standards): tensors go through safetensors; ``torch.load`` only with
``weights_only=True`` (where a foreign format forces it); no ``pickle.load(s)``; YAML only
through ``safe_load``; ``np.load`` never with ``allow_pickle=True``; no ``eval``/``exec``
of strings (``model.eval()`` is a method call and fine).
"""

from __future__ import annotations

import re
from pathlib import Path

import vidistill

SRC = Path(vidistill.__file__).parent
FILES = sorted(SRC.rglob("*.py"))


def _calls(text: str, name: str) -> list[str]:
    """The full text of every ``name(...)`` call (balanced parentheses)."""
    out = []
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\(", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(text[m.start() : i + 1])
    return out


def test_the_grep_sees_the_package():
    assert len(FILES) > 50 and any(f.name == "prepare.py" for f in FILES)


def test_torch_load_only_with_weights_only():
    bad = [
        f"{f.relative_to(SRC)}: {c[:80]}"
        for f in FILES
        for c in _calls(f.read_text(), "torch.load")
        if "weights_only=True" not in c
    ]
    assert not bad, bad


def test_no_unpickling_yaml_load_or_eval():
    patterns = {
        "pickle.load": r"\bpickle\.loads?\(",
        "dill/cloudpickle": r"\b(dill|cloudpickle)\b",
        "yaml.load": r"\byaml\.(unsafe_)?load\(",
        "np.load(allow_pickle=True)": r"allow_pickle\s*=\s*True",
        "eval/exec": r"(?<![\w.])(eval|exec)\(",
        "torch.jit.load": r"\btorch\.jit\.load\(",
    }
    bad = [
        f"{f.relative_to(SRC)}:{n}: {what}: {line.strip()}"
        for f in FILES
        for n, line in enumerate(f.read_text().splitlines(), 1)
        for what, pat in patterns.items()
        if re.search(pat, line) and not line.lstrip().startswith("#")
    ]
    assert not bad, bad


def test_the_torch_load_grep_would_catch_an_unsafe_call():
    text = "x = torch.load(path,\n    map_location='cpu')\ny = torch.load(p, weights_only=True)"
    calls = _calls(text, "torch.load")
    assert len(calls) == 2 and "weights_only=True" not in calls[0]
