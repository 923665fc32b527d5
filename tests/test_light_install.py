"""The query-only install (`make light`: `pip install -e .` without extras, so no torch) queries and serves a
bundle that the full install built, with the same answers, and says in one line what building needs."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import CORPUS_QUESTIONS, IN_CI, ROOT

from retriever import Retriever

pytestmark = pytest.mark.slow
LIGHT = ROOT / ".venv-light" / "bin"


@pytest.fixture(scope="module")
def light_bin() -> Path:
    if not (LIGHT / "python").exists():
        message = f"no query-only install at {LIGHT.parent}; make it with: make light"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return LIGHT


def _run(light_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(light_bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=300)


def test_the_light_install_has_no_torch(light_bin: Path) -> None:
    heavy = ("torch", "sentence_transformers", "transformers")
    probe = f"import importlib.util as u; print([m for m in {heavy!r} if u.find_spec(m)])"
    done = _run(light_bin, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_light_cli_answers_equal_the_full_installs(light_bin: Path, small_index: Path, mode: str) -> None:
    full = Retriever.open(small_index, encoder="torch")
    for question in CORPUS_QUESTIONS[:4]:
        done = _run(light_bin, "groundsearch", "query", str(small_index), question, "--json", "-k", "5", "--mode", mode)
        assert done.returncode == 0, done.stderr
        light_hits = json.loads(done.stdout)["hits"]
        expected = full.search(question, k=5, mode=mode)
        assert [h["passage_id"] for h in light_hits] == [h.passage_id for h in expected]
        assert [h["text"] for h in light_hits] == [h.text for h in expected]
        assert all(abs(a["score"] - b.score) < 1e-5 for a, b in zip(light_hits, expected, strict=True))


def test_light_info_works_and_build_names_the_extra(light_bin: Path, small_index: Path, tmp_path: Path) -> None:
    info = _run(light_bin, "groundsearch", "info", str(small_index))
    assert info.returncode == 0, info.stderr
    build = _run(light_bin, "groundsearch", "build", str(ROOT / "data" / "NOTICE"), "--out", str(tmp_path / "x.idx"))
    assert build.returncode == 1
    assert build.stderr.strip().splitlines() == [build.stderr.strip()]
    assert "needs the build extra" in build.stderr and 'pip install "groundsearch[build]"' in build.stderr
    assert not (tmp_path / "x.idx").exists()
    torch_side = _run(light_bin, "groundsearch", "query", str(small_index), "x", "--encoder", "torch")
    assert torch_side.returncode == 1
    assert "the torch encoder needs torch and sentence-transformers" in torch_side.stderr


def test_light_serve_answers(light_bin: Path, small_index: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(light_bin / "groundsearch"), "serve", str(small_index), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/search?q=complex+manifold&k=3&mode=dense"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.load(response)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the light server did not answer within 60 s"
                time.sleep(0.2)
        expected = Retriever.open(small_index).search("complex manifold", k=3, mode="dense")
        assert [h["passage_id"] for h in body["hits"]] == [h.passage_id for h in expected]
        # The remote client needs nothing beyond the light install either.
        client = (
            "from retriever import RemoteRetriever; "
            f"hits = RemoteRetriever('http://127.0.0.1:{port}').search('complex manifold', k=3, mode='dense'); "
            "print([h.passage_id for h in hits])"
        )
        remote = _run(light_bin, "python", "-c", client)
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout.strip() == str([h.passage_id for h in expected])
    finally:
        server.terminate()
        server.wait(timeout=30)
