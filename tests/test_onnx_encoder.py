"""The bundle's ONNX query encoder: same vectors and answers as the model, no torch at query time, refused
when altered, and absent (with the reason) for a model it cannot re-do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS_QUESTIONS, ROOT
from typer.testing import CliRunner

from groundsearch.cli import app
from retriever import IndexCorrupt, Retriever, read_manifest
from retriever.bundle import ONNX_DATA_NAME, ONNX_NAME, TOKENIZER_NAME
from retriever.model import Encoder
from retriever.onnx_encoder import OnnxEncoder

pytestmark = pytest.mark.slow
HEAVY = ("torch", "transformers", "sentence_transformers")


def test_manifest_records_the_encoder_and_its_measured_parity(small_index: Path) -> None:
    manifest = read_manifest(small_index)
    info = manifest.query_encoder
    assert info is not None and manifest.no_query_encoder is None
    assert (info.max_length, info.pooling, info.normalize) == (256, "mean", True)
    assert info.weights_sha256 == manifest.model.weights_sha256
    assert info.parity["texts"] == 2 * 128  # 128 of the 425 passages and their first words
    assert info.parity["min_cosine"] >= 0.99999
    assert info.parity["max_abs_diff"] < 1e-5
    for name in (ONNX_NAME, ONNX_DATA_NAME, TOKENIZER_NAME):
        assert (small_index / name).is_file()
    assert {"onnx", "onnx_data", "tokenizer"} <= set(manifest.files)


def test_onnx_vectors_equal_the_models_on_questions_and_long_passages(small_index: Path) -> None:
    manifest = read_manifest(small_index)
    onnx = OnnxEncoder.from_manifest(small_index, manifest)
    torch_encoder = Encoder(manifest.model.name, device="cpu")
    long_text = "Aristotle\nEthics\n" + "virtue is a settled disposition of the mind " * 60  # > 256 tokens
    texts = [*CORPUS_QUESTIONS, "x", "  spaced   out  ", "naïve café – Zürich 東京", long_text]
    ours, theirs = onnx.encode(texts), torch_encoder.encode(texts)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    assert float((ours * theirs).sum(axis=1).min()) >= 0.99999
    assert float(np.abs(ours - theirs).max()) < 1e-5
    # One text alone or in a padded batch gives the same vector.
    assert np.allclose(onnx.encode([long_text])[0], ours[-1], atol=1e-6)
    assert onnx.encode([]).shape == (0, 384)


def test_onnx_and_torch_give_the_same_answers_in_every_mode(small_index: Path) -> None:
    onnx, torch_side = Retriever.open(small_index), Retriever.open(small_index, encoder="torch")
    assert type(onnx.encoder).__name__ == "OnnxEncoder" and type(torch_side.encoder).__name__ == "Encoder"
    for mode in ("dense", "hybrid"):
        a = onnx.search_batch(CORPUS_QUESTIONS, k=10, mode=mode)
        b = torch_side.search_batch(CORPUS_QUESTIONS, k=10, mode=mode)
        assert [[h.passage_id for h in row] for row in a] == [[h.passage_id for h in row] for row in b]
        scores_a = np.array([[h.score for h in row] for row in a])
        scores_b = np.array([[h.score for h in row] for row in b])
        assert np.allclose(scores_a, scores_b, atol=1e-5)


_NO_TORCH_SCRIPT = """
import json, sys
from pathlib import Path
from retriever import Retriever
from web import create_app
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from groundsearch.cli import app

index = Path(sys.argv[1])
hits = Retriever.open(index).search("complex manifold", k=3)
assert hits and hits[0].text
runner = CliRunner()
for args in (["query", str(index), "complex manifold", "--json", "-k", "2"], ["info", str(index)]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
client = TestClient(create_app(index))
assert client.get("/api/search", params={"q": "complex manifold", "mode": "dense"}).status_code == 200
assert client.get("/", params={"q": "complex manifold"}).status_code == 200
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "sentence_transformers"))
print(json.dumps(heavy))
"""


def test_query_side_never_imports_torch(small_index: Path) -> None:
    """Library, CLI query and info, and the web app, in one fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_SCRIPT, str(small_index)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_torch_encoder_still_imports_torch(small_index: Path) -> None:
    """The counter-check: the same probe sees torch when the torch encoder is asked for."""
    script = (
        "import sys; from retriever import Retriever; "
        f"Retriever.open({str(small_index)!r}, encoder='torch').search('complex manifold'); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("True")


@pytest.fixture()
def bundle_copy(small_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.idx"
    shutil.copytree(small_index, copy)
    return copy


@pytest.mark.parametrize("name", [ONNX_NAME, ONNX_DATA_NAME, TOKENIZER_NAME])
def test_an_altered_encoder_file_is_refused_with_a_way_out(bundle_copy: Path, name: str) -> None:
    path = bundle_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=r"sha256 .* the manifest says .*--encoder torch"):
        Retriever.open(bundle_copy)
    result = CliRunner().invoke(app, ["query", str(bundle_copy), "complex manifold"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "rebuild the index" in lines[0]
    # The torch encoder does without the ONNX files, and still checks the model's weights.
    assert Retriever.open(bundle_copy, encoder="torch").search("complex manifold", k=1)


def test_a_missing_encoder_file_is_refused(bundle_copy: Path) -> None:
    (bundle_copy / ONNX_DATA_NAME).unlink()
    with pytest.raises(IndexCorrupt, match=r"model.onnx.data is missing.*--encoder torch"):
        Retriever.open(bundle_copy, encoder="onnx")
    result = CliRunner().invoke(app, ["query", str(bundle_copy), "complex manifold", "--encoder", "torch"])
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(app, ["info", str(bundle_copy)])
    assert info.exit_code == 0, info.output


def test_unknown_encoder_name_is_a_one_line_error(small_index: Path) -> None:
    result = CliRunner().invoke(app, ["query", str(small_index), "x", "--encoder", "tensorflow"])
    assert result.exit_code == 1
    assert "unknown encoder 'tensorflow'; the encoders are auto, onnx, torch" in result.stderr


def test_a_bundle_without_the_encoder_queries_through_torch(bundle_copy: Path) -> None:
    """Bundles built before the ONNX encoder existed (or with --no-onnx): auto falls back, onnx says why."""
    manifest_path = bundle_copy / "manifest.json"
    data = json.loads(manifest_path.read_text())
    for key in ("onnx", "onnx_data", "tokenizer"):
        del data["files"][key]
    data.pop("query_encoder")
    data.pop("no_query_encoder")
    manifest_path.write_text(json.dumps(data))
    shutil.rmtree(bundle_copy / "encoder")
    retriever = Retriever.open(bundle_copy)
    assert type(retriever.encoder).__name__ == "Encoder"
    assert retriever.search("complex manifold", k=1)
    with pytest.raises(Exception, match="has no ONNX query encoder"):
        Retriever.open(bundle_copy, encoder="onnx")
