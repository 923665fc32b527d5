"""The staging directory a build works in (`wiki.idx.partial/`): made, matched against the options of the
build that left it, its state file saved, and finally swapped into place.

A build writes nothing outside it until `publish`, so `--out` holds either nothing, the previous index, or
the new finished one; a rerun with the same options resumes whatever stages the staging directory holds.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from index_build.budget import format_size
from index_build.faults import BuildError, stage_io
from index_build.state import STATE_NAME, BuildState, load_state, save_state
from retriever.bundle import MANIFEST_NAME

SHARDS_DIR = "shards"
FAISS_PARTS_DIR = "faiss-parts"  # the trained index and the added blocks, while the FAISS stage runs


def staging_path(out: Path) -> Path:
    """Where a build of `out` works until it is finished: `wiki.idx.partial` beside `wiki.idx`."""
    return out.with_name(out.name + ".partial")


def check_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise BuildError(f"{out} exists and is not a directory; choose another --out")
    if (out / MANIFEST_NAME).exists():
        if not force:
            raise BuildError(f"{out} already holds a finished index; use --force to replace it")
        return
    if any(out.iterdir()):
        raise BuildError(f"{out} exists and is not an index; choose another --out (nothing was changed)")


def identity_of(options: Any, corpora: list[Any]) -> dict[str, Any]:
    """What a staging directory must match to be resumed: the options and each source file's size and mtime."""
    return {
        "options": asdict(options),
        "sources": [
            {
                "path": str(Path(c.path).resolve()),
                "format": c.format,
                "size": Path(c.path).stat().st_size,
                "mtime_ns": Path(c.path).stat().st_mtime_ns,
            }
            for c in corpora
        ],
    }


def open_staging(staging: Path, identity: dict[str, Any]) -> tuple[BuildState, bool]:
    """The state of the unfinished build in `staging`, or a new one in a new directory; and whether it is new."""
    state = load_state(staging)
    if state is not None:
        if state.identity != identity:
            differences = _differences(state.identity, identity)
            raise BuildError(
                f"{staging} holds an unfinished build with other options ({differences}); "
                f"run it with the same options to resume, or delete {staging}"
            )
        return state, False
    with stage_io("staging", staging):
        if staging.exists():
            shutil.rmtree(staging)  # no state file: a build killed before it wrote one, nothing to keep
        staging.mkdir(parents=True)
    state = BuildState(identity)
    save_state(staging, state)
    return state, True


# How `groundsearch build` spells each BuildOptions field; tuning_queries has no flag (library callers only).
_FLAGS = {
    "index_factory": "--index",
    "lexical": "--lexical/--no-lexical",
    "onnx": "--onnx/--no-onnx",
    "keep_vectors": "--keep-vectors/--no-keep-vectors",
}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = [
        f"{_FLAGS.get(key, '--' + key.replace('_', '-')) if key != 'tuning_queries' else 'tuning_queries'} was "
        f"{_shown(key, old['options'].get(key))}, now {_shown(key, value)}"
        for key, value in new["options"].items()
        if old["options"].get(key) != value
    ]
    if old["sources"] != new["sources"]:
        diffs.append("the corpus files differ (paths, sizes or modification times)")
    return "; ".join(diffs)


def _shown(key: str, value: Any) -> str:
    if key == "memory_budget" and isinstance(value, int):
        return format_size(value)
    return repr(value)


def publish(staging: Path, out: Path) -> None:
    """Swap the finished staging directory into place; the old index goes only after the new one is there."""
    # The state file goes last: a build killed in here finds a staging directory with a manifest and a state
    # file, and only has to finish this swap.
    with stage_io("publish", out):
        shutil.rmtree(staging / SHARDS_DIR, ignore_errors=True)
        shutil.rmtree(staging / FAISS_PARTS_DIR, ignore_errors=True)
        old = out.with_name(out.name + ".old")
        if out.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
        os.replace(staging, out)
        if old.exists():
            shutil.rmtree(old)
        (out / STATE_NAME).unlink(missing_ok=True)
