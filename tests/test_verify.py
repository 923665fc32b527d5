"""`groundsearch verify`: a good bundle passes; each kind of damage, and an edited source, is caught and named."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from groundsearch.cli import app
from index_build import BuildOptions, RunOptions, build_index

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(partial_xml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "partial.idx"
    build_index([partial_xml], out, BuildOptions(), RunOptions(progress=False, workers=1))
    return out


@pytest.fixture()
def bundle(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.idx"
    shutil.copytree(built, copy)
    return copy


def verify(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["verify", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_good_bundle_and_its_source_pass(bundle: Path, partial_xml: Path) -> None:
    code, out, err = verify(str(bundle), "--source", str(partial_xml))
    assert code == 0, err
    assert out.startswith(f"verified {bundle}: ") and out.strip().endswith("no differences")
    assert "passages re-derived" in out and "source files" in out
    code, out, _ = verify(str(bundle), "--json")
    document = json.loads(out)
    assert code == 0 and document["ok"] is True and document["difference_count"] == 0
    assert document["checked"]["files"] >= 5  # store, FAISS, ONNX graph, weights, tokenizer, lexical files


def test_a_changed_byte_in_the_store_is_named(bundle: Path) -> None:
    store = bundle / "passages.sqlite"
    data = bytearray(store.read_bytes())
    data[len(data) - 100] ^= 0xFF
    store.write_bytes(bytes(data))
    code, _, err = verify(str(bundle))
    assert code == 1
    assert "passages.sqlite: sha256 " in err and "the manifest says" in err


def test_a_truncated_faiss_file_is_named(bundle: Path) -> None:
    faiss_file = bundle / "index.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-4096])
    code, out, _ = verify(str(bundle), "--json")
    document = json.loads(out)
    assert code == 1
    assert any(d.startswith("index.faiss: ") and "bytes, the manifest says" in d for d in document["differences"])


def test_a_passage_edited_with_its_hash_left_alone_is_named(bundle: Path) -> None:
    with sqlite3.connect(bundle / "passages.sqlite") as conn:
        conn.execute("UPDATE passages SET text = replace(text, 'the', 'a') WHERE id = 3")
    code, _, err = verify(str(bundle))
    assert code == 1
    assert "passage 3: text sha256 " in err


def test_a_damaged_onnx_encoder_is_named(bundle: Path) -> None:
    weights = bundle / "encoder" / "model.onnx.data"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0x01
    weights.write_bytes(bytes(data))
    code, _, err = verify(str(bundle))
    assert code == 1
    assert "encoder/model.onnx.data: sha256 " in err


def test_a_source_with_one_edited_article_is_caught_and_named(bundle: Path, partial_xml: Path, tmp_path: Path) -> None:
    text = partial_xml.read_text(encoding="utf-8")
    target = "is a [[slab serif]] typeface designed in 2001"
    assert text.count(target) == 1, "the test's article is not in the dump as expected"
    edited = tmp_path / "edited" / partial_xml.name
    edited.parent.mkdir()
    edited.write_text(text.replace(target, "is a [[slab serif]] typeface designed in 2002"), encoding="utf-8")
    code, out, err = verify(str(bundle), "--source", str(edited), "--json")
    document = json.loads(out)
    assert code == 1
    differences = document["differences"]
    assert (
        differences[0] == f"{partial_xml.name}: not the file the index was built from (sha256 differs); articles follow"
    )
    passages = [d for d in differences[1:] if d.startswith("passage ")]
    assert passages and all("article 'Archer (typeface)'" in d and "text, sha256 differ" in d for d in passages)


def test_verify_of_something_that_is_not_a_bundle(tmp_path: Path) -> None:
    code, _, err = verify(str(tmp_path / "nothing.idx"))
    assert code == 1
    assert "no such index" in err
