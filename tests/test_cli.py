"""The CLI through typer's runner, and once as a real subprocess; user mistakes are one line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from groundsearch.cli import app

runner = CliRunner()


def test_every_command_has_help_with_an_example() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("build", "query", "info", "serve", "eval", "diff"):
        assert command in result.output
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Example: groundsearch " + command in sub.output


def test_query_prints_cited_passages(small_index: Path) -> None:
    result = runner.invoke(app, ["query", str(small_index), "Haitian politician and police chief", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "Dany Toussaint" in result.output and "oldid=" in result.output


def test_query_json_as_a_subprocess(small_index: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "groundsearch",
            "query",
            str(small_index),
            "hotel in Prince Edward Island",
            "-k",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["query"] == "hotel in Prince Edward Island" and len(document["hits"]) == 3
    top = document["hits"][0]
    assert top["title"] == "Hotel Charlottetown" and top["rank"] == 1
    for key in ("passage_id", "score", "text", "url", "revision", "start", "end", "sha256", "section", "permalink"):
        assert key in top


def test_info_reports_counts_and_sizes(small_index: Path) -> None:
    result = runner.invoke(app, ["info", str(small_index)])
    assert result.exit_code == 0, result.output
    assert "passages" in result.output and "all-MiniLM-L6-v2" in result.output and "per passage" in result.output
    assert "confidence   calibrated; bars dense 0." in result.output
    as_json = json.loads(runner.invoke(app, ["info", str(small_index), "--json"]).output)
    assert as_json["manifest"]["passages"] > 0 and as_json["total_bytes"] > 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["query", "{idx}", ""], "empty query"),
        (["query", "{idx}", "airport", "-k", "0"], "k must be"),
        (["query", "{missing}", "airport"], "no such index"),
        (["info", "{missing}"], "no such index"),
        (["query", "{file}", "airport"], "not an index bundle"),
    ],
)
def test_user_mistakes_are_one_line_errors(small_index: Path, tmp_path: Path, args: list[str], message: str) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello")
    paths = {"idx": str(small_index), "missing": str(tmp_path / "nope.idx"), "file": str(a_file)}
    result = runner.invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
