"""`groundsearch build --gpus`: on a machine without CUDA (CI's), `all` falls back to the CPU and builds the
same index as no flag; ids it lacks, or --gpus beside --device/--ray, are one-line errors with nothing left."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import cli_build, nothing_left

from retriever import Retriever

QUERIES = ["anarchism", "a boy with a magic watch", "Alabama"]


def test_gpus_all_without_cuda_embeds_on_the_cpu_like_no_flag(
    tmp_path: Path, partial_xml: Path, tiny_model: Path
) -> None:
    assert not torch.cuda.is_available(), "this test is about the CPU fallback"
    common = [str(partial_xml), "--model", str(tiny_model), "--workers", "1"]
    code, err = cli_build(*common, "--out", str(tmp_path / "gpus.idx"), "--gpus", "all")
    assert code == 0, err
    assert "no CUDA device" in err and "embedding on the CPU" in err, err
    assert len(err.strip().splitlines()) == 1
    code, err = cli_build(*common, "--out", str(tmp_path / "plain.idx"))
    assert code == 0, err
    fallback, plain = Retriever.open(tmp_path / "gpus.idx"), Retriever.open(tmp_path / "plain.idx")
    for got, want in zip(fallback.search_batch(QUERIES, k=5), plain.search_batch(QUERIES, k=5), strict=True):
        assert [(h.passage_id, h.score) for h in got] == [(h.passage_id, h.score) for h in want]


def test_gpu_ids_this_machine_lacks_are_one_line_errors(tmp_path: Path, partial_xml: Path) -> None:
    out = tmp_path / "x.idx"
    code, err = cli_build(str(partial_xml), "--out", str(out), "--gpus", "0,1")
    assert code == 1 and "--gpus 0,1" in err and "no CUDA device" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert nothing_left(out)


def test_gpus_is_not_combined_with_device_or_ray(tmp_path: Path, partial_xml: Path) -> None:
    out = tmp_path / "x.idx"
    for other in (["--device", "cpu"], ["--ray", "local"]):
        code, err = cli_build(str(partial_xml), "--out", str(out), "--gpus", "all", *other)
        assert code == 1 and "give --gpus alone" in err, err
        assert nothing_left(out)


def test_malformed_gpus_value(tmp_path: Path, partial_xml: Path) -> None:
    out = tmp_path / "x.idx"
    code, err = cli_build(str(partial_xml), "--out", str(out), "--gpus", "0,,1")
    assert code == 1 and "--gpus" in err and len(err.strip().splitlines()) == 1, err
    assert nothing_left(out)
