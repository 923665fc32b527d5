"""The index bundle format, defined once: `index_build` writes it and `retriever` reads it.

A bundle is one directory::

    wiki.idx/
      manifest.json     written last; its presence is what makes a bundle finished
      passages.sqlite   documents and passages (see retriever.store for the schema)
      index.faiss       the FAISS index; its ids are passage ids
      lexical/          the BM25 index (tantivy) over the same passages, same ids (see retriever.lexical)
      encoder/          the query encoder: an ONNX graph, its weights and its tokenizer (see retriever.onnx_encoder),
                        so that a query needs neither torch nor sentence-transformers
      vectors.f32.npy   every passage vector as float32, row = passage id, and
      vectors.keys.npy  each row's reuse key: what a later `build --reuse` looks vectors up by (see ReusableVectors)

Every file is written under a temporary name and renamed, so a crash never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from retriever.errors import IndexCorrupt, IndexNotFound

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
STORE_NAME = "passages.sqlite"
FAISS_NAME = "index.faiss"
ENCODER_DIR = "encoder"
ONNX_NAME = f"{ENCODER_DIR}/model.onnx"
ONNX_DATA_NAME = f"{ENCODER_DIR}/model.onnx.data"  # the weights, beside the graph, so that onnxruntime maps them
TOKENIZER_NAME = f"{ENCODER_DIR}/tokenizer.json"
VECTORS_F32_NAME = "vectors.f32.npy"
VECTOR_KEYS_NAME = "vectors.keys.npy"
# Bumped whenever what goes into a reuse key changes (index_build.vector_keys), so that keys made the old way
# are refused by name instead of never matching.
VECTOR_KEY_VERSION = 1

# What the model embeds for a passage. The title and section give a passage the context its text often
# lacks ("He was born in ..."); they are never part of what a search returns.
TEXT_TEMPLATE = "{title}\n{section}\n{text}"


def embedding_text(title: str, section: str, text: str, template: str = TEXT_TEMPLATE) -> str:
    return template.format(title=title, section=section, text=text)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    weights_sha256: str
    dimension: int


@dataclass(frozen=True)
class QueryEncoderInfo:
    """How to turn a query into the index's vectors without the model's own code (retriever.onnx_encoder).

    `onnx`, `onnx_data` (its weights) and `tokenizer` name bundle files; the graph maps token ids to token
    embeddings, and pooling and normalisation are applied after it exactly as the sentence-transformers
    pipeline does. `weights_sha256` is
    the model the graph was exported from (the manifest's model); `parity` is what the build measured between
    this graph and the model itself ({"texts", "max_abs_diff", "min_cosine"}).
    """

    onnx: str
    onnx_sha256: str
    onnx_data: str
    onnx_data_sha256: str
    tokenizer: str
    tokenizer_sha256: str
    weights_sha256: str
    max_length: int
    pooling: str
    normalize: bool
    inputs: list[str]
    pad_id: int
    pad_token: str
    parity: dict[str, Any]
    opset: int

    def files(self) -> dict[str, tuple[str, str]]:
        """(bundle path, sha256) of its files, under the keys the manifest's `files` gives them."""
        return {
            "onnx": (self.onnx, self.onnx_sha256),
            "onnx_data": (self.onnx_data, self.onnx_data_sha256),
            "tokenizer": (self.tokenizer, self.tokenizer_sha256),
        }


@dataclass(frozen=True)
class ReusableVectors:
    """The exact vectors a bundle keeps so that a build of a newer dump (`build --reuse`) takes them for its
    unchanged passages instead of embedding them again.

    `vectors` and `keys` name bundle files: float32 (passages, dimension) and uint8 (passages, 32), row i being
    passage i. A row's key is the sha256 of what decides its vector: `key_version`, the model's
    `weights_sha256` and `max_length` (its truncation, in tokens), and the text embedded (`text_template`
    applied; index_build.vector_keys). The fields are repeated here so that a bundle whose keys cannot match a
    build's is refused with the reason, before any lookup.
    """

    vectors: str
    keys: str
    key_version: int
    weights_sha256: str
    max_length: int
    text_template: str
    dimension: int


@dataclass(frozen=True)
class FileInfo:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SourceInfo:
    path: str
    format: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    model: ModelInfo
    faiss_factory: str
    search_params: dict[str, Any]
    documents: int
    passages: int
    sources: list[SourceInfo]
    files: dict[str, FileInfo]
    build_options: dict[str, Any]
    package_version: str
    created_at: str
    metric: str = "inner_product"
    normalized: bool = True
    text_template: str = TEXT_TEMPLATE
    format_version: int = FORMAT_VERSION
    # Absent in bundles built before the lexical index existed: they search in dense mode only.
    lexical: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Approximate indexes: the build's measured recall@10 against exact search, and the search_params it chose
    # ({"recall@10", "target", "met", "queries", "params", "tried": [[value, recall], ...]}; see
    # index_build.tuning). None for exact indexes, and absent from bundles built before it was measured.
    ann: dict[str, Any] | None = None
    # The torch-free query encoder (retriever.onnx_encoder); None in bundles built before it existed or built
    # without it, and then `no_query_encoder` says why (e.g. a model that is not Transformer + Pooling).
    query_encoder: QueryEncoderInfo | None = None
    no_query_encoder: str | None = None
    # The match-confidence model for this bundle's embedding model (retriever.confidence.Calibration as a dict);
    # None when none was fitted for the model, and then `no_confidence` says why. Absent in older bundles.
    confidence: dict[str, Any] | None = None
    no_confidence: str | None = None
    # The float32 vectors and reuse keys kept for `build --reuse`; None for `--no-keep-vectors` and in bundles
    # built before they were kept.
    reusable_vectors: ReusableVectors | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        data["model"] = ModelInfo(**data["model"])
        data["sources"] = [SourceInfo(**s) for s in data["sources"]]
        data["files"] = {k: FileInfo(**v) for k, v in data["files"].items()}
        if data.get("query_encoder") is not None:
            data["query_encoder"] = QueryEncoderInfo(**data["query_encoder"])
        if data.get("reusable_vectors") is not None:
            data["reusable_vectors"] = ReusableVectors(**data["reusable_vectors"])
        return cls(**data)


def read_manifest(bundle: str | os.PathLike[str], check_files: bool = True) -> Manifest:
    """Read and check a bundle's manifest, with an error that says what is wrong with the path; with
    `check_files`, also that every file it lists is there with its recorded size (a cheap check for opening)."""
    path = Path(bundle)
    if not path.exists():
        raise IndexNotFound(f"{path}: no such index (build one with: groundsearch build CORPUS --out {path})")
    if not path.is_dir():
        raise IndexNotFound(f"{path}: not an index bundle (an index is a directory holding {MANIFEST_NAME})")
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.exists():
        hint = " (an unfinished build: run the same build command again to resume)" if any(path.iterdir()) else ""
        raise IndexNotFound(f"{path}: not an index bundle, {MANIFEST_NAME} is missing{hint}")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest = Manifest.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexCorrupt(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorrupt(
            f"{path}: index format {manifest.format_version}, this groundsearch reads format {FORMAT_VERSION}; "
            "rebuild the index"
        )
    for info in manifest.files.values() if check_files else ():
        if info.name.startswith(f"{ENCODER_DIR}/"):
            continue  # checked by sha256 when the ONNX encoder is opened; the torch encoder does without them
        file = path / info.name
        if not file.exists():
            raise IndexCorrupt(f"{path}: {info.name} is missing; rebuild the index")
        size = file.stat().st_size
        if size != info.size:
            raise IndexCorrupt(f"{path}: {info.name} is {size} bytes, the manifest says {info.size}; rebuild the index")
    return manifest


def package_version() -> str:
    """The installed groundsearch's version, as manifests record it and as builds and servers report it."""
    try:
        return importlib.metadata.version("groundsearch")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_info(path: Path, root: Path | None = None) -> FileInfo:
    """Size and hash of a bundle file, named relative to the bundle (`root`; default: the file's folder)."""
    name = path.relative_to(root).as_posix() if root is not None else path.name
    return FileInfo(name=name, size=path.stat().st_size, sha256=sha256_file(path))


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write to; on success it is renamed over `final`.

    The rename is atomic on POSIX filesystems, so readers see the old file or the complete new one.
    On failure the temporary file is removed.
    """
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_open(final: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    with atomic_path(final) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def bundle_info(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """What `groundsearch info` and the web API report: the manifest plus the files' sizes on disk."""
    path = Path(bundle)
    manifest = read_manifest(path)
    sizes: dict[str, int] = {}
    for info in manifest.files.values():
        # A directory's files (the lexical index) are summed under "dir/".
        top, _, rest = info.name.partition("/")
        key = f"{top}/" if rest else info.name
        sizes[key] = sizes.get(key, 0) + info.size  # as recorded: read_manifest checked the sizes it needs
    sizes[MANIFEST_NAME] = (path / MANIFEST_NAME).stat().st_size
    total = sum(sizes.values())
    return {
        "path": str(path),
        "manifest": asdict(manifest),
        "file_sizes": sizes,
        "total_bytes": total,
        "bytes_per_passage": round(total / manifest.passages, 1) if manifest.passages else None,
    }
