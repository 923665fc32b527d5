"""Write the bundle's torch-free query encoder: the model's transformer as an ONNX graph, plus its tokenizer.

Only a sentence-transformers pipeline of Transformer + Pooling (mean, CLS or max) + optional Normalize is
exported: those are the steps `retriever.onnx_encoder` re-does with numpy. Any other model (prompts, dense
layers, lower-casing, truncated dimensions) gets no ONNX encoder and the manifest says why; its queries
then go through torch as before.

The export is checked before it is kept: the graph and the model itself embed a few hundred of the corpus's
own passages and as many question-length texts, and the build fails if any pair's cosine is below
`MIN_COSINE`. The figures go into the manifest, so a user can see how close the two are.

Exporting takes a few seconds, so the graph is cached per model (weights sha256) and exporter versions under
`cache_dir()`; the parity check runs on every build whether the graph came from the cache or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index_build.faults import BuildError
from retriever.bundle import (
    ENCODER_DIR,
    ONNX_DATA_NAME,
    ONNX_NAME,
    TOKENIZER_NAME,
    QueryEncoderInfo,
    atomic_path,
    embedding_text,
    sha256_file,
)
from retriever.model import Encoder
from retriever.onnx_encoder import POOLINGS, OnnxEncoder
from retriever.store import PassageStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

OPSET = 17
MIN_COSINE = 0.99999
PARITY_PASSAGES = 128  # and as many question-length texts: 256 texts, a few seconds on a CPU
QUESTION_WORDS = 12
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CACHE_SUMS = "sha256.json"


class Unsupported(Exception):
    """This model's pipeline has a step the ONNX query encoder does not re-do; the message says which."""


def cache_dir() -> Path:
    """Where exported graphs are kept between builds: $GROUNDSEARCH_CACHE, else the user's cache folder."""
    if "GROUNDSEARCH_CACHE" in os.environ:
        return Path(os.environ["GROUNDSEARCH_CACHE"]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "groundsearch" / "onnx"


def export_query_encoder(
    model: SentenceTransformer,
    weights_sha256: str,
    staging: Path,
    passages: list[str],
    known: np.ndarray | None = None,
) -> tuple[QueryEncoderInfo | None, str | None]:
    """Write encoder/ into `staging` and return its manifest record, or (None, why) for a model it cannot do.

    `model` must be the float32 CPU model: parity is measured against it. `passages` are texts as the build
    embeds them (template applied); their first words stand in for questions. `known` may hold the model's
    vectors of `passages` already (a CPU build's own shards), which saves encoding the long texts again.
    """
    try:
        transformer, pooling = _pipeline(model)
    except Unsupported as exc:
        return None, str(exc)
    tokenizer = transformer.tokenizer
    inputs = [name for name in _INPUTS if name in _forward_inputs(transformer.auto_model)]
    folder = staging / ENCODER_DIR
    folder.mkdir(exist_ok=True)
    onnx_path, tokenizer_path = staging / ONNX_NAME, staging / TOKENIZER_NAME
    _write_graph(transformer.auto_model, inputs, weights_sha256, staging)
    with atomic_path(tokenizer_path) as tmp:
        tmp.write_text(_tokenizer_json(tokenizer), encoding="utf-8")
    info = QueryEncoderInfo(
        onnx=ONNX_NAME,
        onnx_sha256=sha256_file(onnx_path),
        onnx_data=ONNX_DATA_NAME,
        onnx_data_sha256=sha256_file(staging / ONNX_DATA_NAME),
        tokenizer=TOKENIZER_NAME,
        tokenizer_sha256=sha256_file(tokenizer_path),
        weights_sha256=weights_sha256,
        max_length=int(transformer.max_seq_length),
        pooling=pooling,
        normalize=True,
        inputs=inputs,
        pad_id=int(tokenizer.pad_token_id),
        pad_token=str(tokenizer.pad_token),
        parity={},
        opset=OPSET,
    )
    texts = parity_texts(passages)
    ours = _onnx_vectors(model, staging, info, texts)
    parity = compare_vectors(ours, _model_vectors(model, texts, known))
    if parity["min_cosine"] < MIN_COSINE and known is not None:
        # Shards made on a GPU (fp16) are not the CPU model's own float32 vectors: ask the model itself.
        parity = compare_vectors(ours, _model_vectors(model, texts))
    if parity["min_cosine"] < MIN_COSINE:
        raise BuildError(
            f"the ONNX query encoder differs from the model (lowest cosine {parity['min_cosine']:.7f} over "
            f"{parity['texts']} texts, below {MIN_COSINE}); build with --no-onnx to query through torch"
        )
    return dataclasses.replace(info, parity=parity), None


def _tokenizer_json(tokenizer: Any) -> str:
    """The fast tokenizer as tokenizer.json, without the truncation and padding that transformers leaves set
    from whatever it last encoded (which would make the file, and the bundle, differ from build to build);
    the query encoder sets both itself."""
    from tokenizers import Tokenizer

    clean = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    clean.no_truncation()
    clean.no_padding()
    return clean.to_str()


def parity_texts(passages: list[str]) -> list[str]:
    """The passages themselves and their first words, the length of a question."""
    return [*passages, *(" ".join(text.split()[:QUESTION_WORDS]) for text in passages)]


def measure_parity(
    model: SentenceTransformer, staging: Path, info: QueryEncoderInfo, texts: list[str]
) -> dict[str, Any]:
    """Largest absolute difference and lowest cosine between the graph's vectors and the model's own."""
    return compare_vectors(_onnx_vectors(model, staging, info, texts), _model_vectors(model, texts))


def compare_vectors(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """The parity record of two sets of unit vectors, row for row."""
    return {
        "texts": len(ours),
        "max_abs_diff": float(np.abs(ours - theirs).max()) if len(ours) else 0.0,
        "min_cosine": float((ours * theirs).sum(axis=1).min()) if len(ours) else 1.0,
    }


def _onnx_vectors(model: SentenceTransformer, staging: Path, info: QueryEncoderInfo, texts: list[str]) -> np.ndarray:
    from retriever.pipelined_encode import embedding_dimension

    return OnnxEncoder(staging, info, "parity", int(embedding_dimension(model) or 0)).encode(texts, batch_size=32)


def _model_vectors(model: SentenceTransformer, texts: list[str], known: np.ndarray | None = None) -> np.ndarray:
    """The model's unit vectors of `texts`, the first `len(known)` of which may be given."""
    done = 0 if known is None else len(known)
    rest = model.encode(texts[done:], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    rest = np.asarray(rest, dtype=np.float32).reshape(len(texts) - done, -1)
    return rest if known is None else np.concatenate([np.asarray(known, dtype=np.float32), rest])


def _pipeline(model: SentenceTransformer) -> tuple[Any, str]:
    """(Transformer module, pooling mode) of a pipeline this module can re-do; else Unsupported. Whether the
    pipeline ends in Normalize or not, groundsearch normalises every vector (its metric is the cosine)."""
    modules: list[Any] = list(model)
    kinds = [type(m).__name__ for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise Unsupported(f"the model's pipeline is {' + '.join(kinds)}, not Transformer + Pooling (+ Normalize)")
    transformer: Any = modules[0]
    pooling: Any = modules[1]
    if getattr(model, "default_prompt_name", None) or getattr(model, "prompts", None) and any(model.prompts.values()):
        raise Unsupported("the model adds prompts to its inputs")
    if getattr(model, "truncate_dim", None):
        raise Unsupported("the model truncates its vectors (truncate_dim)")
    if getattr(transformer, "do_lower_case", False):
        raise Unsupported("the model lower-cases its inputs itself (do_lower_case)")
    if getattr(transformer, "tokenizer", None) is None or not getattr(transformer.tokenizer, "is_fast", False):
        raise Unsupported("the model has no fast (tokenizers) tokenizer")
    if transformer.tokenizer.pad_token_id is None:
        raise Unsupported("the model's tokenizer has no padding token")
    mode = _pooling_mode(pooling.get_config_dict())
    if mode not in POOLINGS:
        raise Unsupported(f"the model pools with {mode!r}; the ONNX encoder does {', '.join(POOLINGS)}")
    return transformer, mode


def _pooling_mode(config: dict[str, Any]) -> str:
    """The one pooling mode of a Pooling config, in sentence-transformers 6's form or the older flags."""
    if config.get("include_prompt") is False:
        return "mean without prompt"
    if isinstance(config.get("pooling_mode"), str):
        return str(config["pooling_mode"])
    flags = {
        "mean": "pooling_mode_mean_tokens",
        "cls": "pooling_mode_cls_token",
        "max": "pooling_mode_max_tokens",
        "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
        "weightedmean": "pooling_mode_weightedmean_tokens",
        "lasttoken": "pooling_mode_lasttoken",
    }
    chosen = [mode for mode, flag in flags.items() if config.get(flag)]
    return chosen[0] if len(chosen) == 1 else "+".join(chosen) or "none"


def _forward_inputs(auto_model: Any) -> set[str]:
    return set(inspect.signature(auto_model.forward).parameters)


def _write_graph(auto_model: Any, inputs: list[str], weights_sha256: str, staging: Path) -> None:
    """Export the transformer (token ids -> token embeddings) into `staging`, through the per-model cache."""
    import onnx
    import torch
    import transformers

    versions = f"torch{torch.__version__}-transformers{transformers.__version__}-onnx{onnx.__version__}"
    cached = cache_dir() / f"{weights_sha256[:32]}-{versions}-opset{OPSET}-{'-'.join(inputs)}"
    names = (Path(ONNX_NAME).name, Path(ONNX_DATA_NAME).name)
    if _cache_is_whole(cached, names):
        _copy_graph(cached, names, staging)
        return
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=".export-", dir=cached.parent))
    except OSError:  # no writable cache (a read-only home): export without keeping it
        fresh = Path(tempfile.mkdtemp(prefix=".export-", dir=staging))
    try:
        _export(auto_model, inputs, fresh / names[0])
        _copy_graph(fresh, names, staging)
        sums = {name: sha256_file(fresh / name) for name in names}
        (fresh / _CACHE_SUMS).write_text(json.dumps(sums), encoding="utf-8")
        shutil.rmtree(cached, ignore_errors=True)  # a damaged earlier export
        # Another build may have cached the same graph meanwhile (the rename then fails): theirs is as good.
        with contextlib.suppress(OSError):
            os.rename(fresh, cached)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _copy_graph(folder: Path, names: tuple[str, ...], staging: Path) -> None:
    for name, final in zip(names, (ONNX_NAME, ONNX_DATA_NAME), strict=True):
        with atomic_path(staging / final) as tmp_final:
            shutil.copyfile(folder / name, tmp_final)


def _cache_is_whole(cached: Path, names: tuple[str, ...]) -> bool:
    """Whether a cached export is there and unchanged: a damaged cache would fail every later build."""
    try:
        sums = json.loads((cached / _CACHE_SUMS).read_text(encoding="utf-8"))
        return all(sha256_file(cached / name) == sums[name] for name in names)
    except (OSError, ValueError, KeyError):
        return False


def _export(auto_model: Any, inputs: list[str], path: Path) -> None:
    import torch

    class Tokens(torch.nn.Module):
        """Keyword arguments, since positional order of `forward` differs between transformers versions."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    # A padded example: a graph traced on an all-ones mask could drop the mask as a no-op.
    ids = torch.tensor([[101, 2000, 2001, 2002, 2003, 102], [101, 2000, 102, 0, 0, 0]], dtype=torch.long)
    feeds = {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids)}
    axes = {name: {0: "batch", 1: "sequence"} for name in [*inputs, "token_embeddings"]}
    wrapper = Tokens(auto_model).eval()
    # The tracer warns about every shape-dependent branch of the model's code; the parity check is what
    # tells whether the traced graph is right, so the warnings are only noise in a build's output.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(feeds[name] for name in inputs),
            str(path),
            input_names=inputs,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    # The weights move to a file of their own beside the graph: onnxruntime then maps them instead of parsing
    # and copying them out of the graph, which opens a query process faster and with 85 MB less memory.
    import onnx

    graph = onnx.load(str(path))
    onnx.save_model(
        graph,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=Path(ONNX_DATA_NAME).name,
        size_threshold=1024,
    )


def export_for_build(
    staging: Path, encoder: Encoder, store: PassageStore, passages: int, shards: list[Path] | None = None
) -> tuple[QueryEncoderInfo | None, str | None]:
    """The build's export: (record, why none). Parity is measured against a float32 CPU copy of the model,
    whatever device the build embedded on. The build's `shards` hold the model's vectors of the passages, bit
    for bit the same from every CPU back-end (in process, a device pool, Ray), so the record is too; shards
    made on a GPU fail the check and the model re-encodes."""
    cpu = encoder if encoder.device == "cpu" else Encoder(encoder.identity.name, device="cpu")
    ids = sorted({int(i) for i in np.linspace(0, passages - 1, min(PARITY_PASSAGES, passages))}) if passages else []
    fetched = store.fetch(ids)
    texts = [embedding_text(p.title, p.section, p.text) for p in (fetched[i] for i in ids)]
    known = _shard_rows(shards, ids) if shards else None
    return export_query_encoder(cpu.sentence_transformer, encoder.identity.weights_sha256, staging, texts, known)


def files_match(staging: Path, info: QueryEncoderInfo) -> bool:
    """Whether the encoder files a killed build exported are still there, whole."""
    return all(
        (staging / name).is_file() and sha256_file(staging / name) == digest for name, digest in info.files().values()
    )


def _shard_rows(shards: list[Path], ids: list[int]) -> np.ndarray:
    """Rows `ids` of the embedding shards (every shard but the last holds the same number of rows)."""
    per_shard = len(np.load(shards[0], mmap_mode="r"))
    # Each shard a row comes from is mapped once, the others not at all.
    opened = {number: np.load(shards[number], mmap_mode="r") for number in {i // per_shard for i in ids}}
    return np.stack([opened[i // per_shard][i % per_shard] for i in ids])
