"""The README's framework examples run, against a real bundle in place of `wiki.idx`, so that they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

SECTION = "## Question-answering frameworks"


def framework_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_has_an_example_per_framework() -> None:
    blocks = framework_examples()
    for module in ("langchain", "llamaindex", "haystack", "dspy"):
        assert sum(f"retriever.integrations.{module} import" in block for block in blocks) == 1, module


@pytest.mark.parametrize("block", framework_examples(), ids=lambda b: re.findall(r"integrations\.(\w+)", b)[0])
def test_readme_example_runs(block: str, small_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert '"wiki.idx"' in block
    code = block.replace('"wiki.idx"', repr(str(small_index)))
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out.strip(), "the example printed nothing"
