"""Exporting the query encoder for other models: one it can re-do, one it cannot (and says why), and the
parity measurement that would stop a build whose graph differed from its model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index_build import BuildOptions, RunOptions, build_index
from index_build.onnx_export import Unsupported, _pipeline, measure_parity
from retriever import Retriever, read_manifest
from retriever.model import Encoder

pytestmark = pytest.mark.slow
QUESTIONS = ["anarchism", "a boy with a magic watch", "complex manifold"]


def _build(corpus: Path, out: Path, **options: object) -> Path:
    build_index([corpus], out, BuildOptions(**options), RunOptions(progress=False, workers=1))  # type: ignore[arg-type]
    return out


def test_another_models_encoder_is_exported_and_matches_it(tiny_model: Path, partial_xml: Path, tmp_path: Path) -> None:
    """A model other than the default (random weights, one layer, no Normalize module, max length 128)."""
    out = _build(partial_xml, tmp_path / "tiny.idx", model=str(tiny_model))
    manifest = read_manifest(out)
    info = manifest.query_encoder
    assert info is not None
    assert (info.max_length, info.pooling, info.normalize) == (128, "mean", True)
    assert info.parity["min_cosine"] >= 0.99999
    onnx, torch_side = Retriever.open(out), Retriever.open(out, encoder="torch")
    assert type(onnx.encoder).__name__ == "OnnxEncoder"
    assert np.allclose(onnx.encode(QUESTIONS), torch_side.encode(QUESTIONS), atol=1e-5)
    ours, theirs = (
        onnx.search_batch(QUESTIONS, k=5, mode="dense"),
        torch_side.search_batch(QUESTIONS, k=5, mode="dense"),
    )
    for a, b in zip(ours, theirs, strict=True):
        assert [h.passage_id for h in a] == [h.passage_id for h in b]


@pytest.fixture(scope="module")
def dense_layer_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a Dense layer after pooling: a pipeline the ONNX encoder does not re-do."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models  # type: ignore[no-redef]
    import torch

    torch.manual_seed(1)
    base = SentenceTransformer(str(tiny_model), device="cpu")
    folder = tmp_path_factory.mktemp("dense") / "dense-model"
    dense = models.Dense(in_features=384, out_features=384)
    SentenceTransformer(modules=[base[0], base[1], dense], device="cpu").save(str(folder))
    return folder


def test_a_model_it_cannot_export_gets_no_encoder_and_the_reason(
    dense_layer_model: Path, partial_xml: Path, tmp_path: Path
) -> None:
    out = _build(partial_xml, tmp_path / "dense.idx", model=str(dense_layer_model))
    manifest = read_manifest(out)
    assert manifest.query_encoder is None
    assert (
        manifest.no_query_encoder
        == "the model's pipeline is Transformer + Pooling + Dense, not Transformer + Pooling (+ Normalize)"
    )
    assert not (out / "encoder").exists()
    retriever = Retriever.open(out)
    assert type(retriever.encoder).__name__ == "Encoder"
    assert retriever.search("anarchism", k=1, mode="dense")
    with pytest.raises(Exception, match=r"no ONNX query encoder \(the model's pipeline is"):
        Retriever.open(out, encoder="onnx")


def test_unsupported_pipelines_are_named(dense_layer_model: Path) -> None:
    model = Encoder(str(dense_layer_model), device="cpu").sentence_transformer
    with pytest.raises(Unsupported, match="Transformer \\+ Pooling \\+ Dense"):
        _pipeline(model)


def test_parity_catches_a_graph_from_other_weights(small_index: Path, tiny_model: Path) -> None:
    """The default model's graph measured against another model: the build's check would refuse it."""
    info = read_manifest(small_index).query_encoder
    assert info is not None
    texts = ["who founded the company", "a television series about a boy with a magic watch"]
    other = Encoder(str(tiny_model), device="cpu").sentence_transformer
    same = Encoder("all-MiniLM-L6-v2", device="cpu").sentence_transformer
    assert measure_parity(same, small_index, info, texts)["min_cosine"] >= 0.99999
    assert measure_parity(other, small_index, info, texts)["min_cosine"] < 0.9


def test_no_onnx_builds_without_it(partial_xml: Path, tmp_path: Path) -> None:
    out = _build(partial_xml, tmp_path / "plain.idx", onnx=False)
    manifest = read_manifest(out)
    assert manifest.query_encoder is None and manifest.no_query_encoder == "built with --no-onnx"
    assert not (out / "encoder").exists()
    assert type(Retriever.open(out).encoder).__name__ == "Encoder"


def test_a_damaged_export_cache_is_exported_again(
    partial_xml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROUNDSEARCH_CACHE", str(tmp_path / "cache"))
    first = read_manifest(_build(partial_xml, tmp_path / "a.idx"))
    (cached,) = (tmp_path / "cache" / "onnx").iterdir()
    weights = cached / "model.onnx.data"
    data = bytearray(weights.read_bytes())
    data[4096] ^= 0x01
    weights.write_bytes(bytes(data))
    second = read_manifest(_build(partial_xml, tmp_path / "b.idx"))
    assert first.query_encoder is not None and second.query_encoder is not None
    assert second.query_encoder.onnx_data_sha256 == first.query_encoder.onnx_data_sha256
    assert second.query_encoder.parity["min_cosine"] >= 0.99999
    assert [p.name for p in (tmp_path / "cache" / "onnx").iterdir()] == [cached.name]  # no temporary left
