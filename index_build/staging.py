"""The staging directory a build works in (`wiki.idx.partial/`): made, matched against the options of the
build that left it, its state file saved, and finally swapped into place.

A build writes nothing outside it until `publish`, so `--out` holds either nothing, the previous index, or
the new finished one; a rerun with the same options resumes whatever stages the staging directory holds.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from index_build.faults import BuildError, stage_io
from retriever.bundle import MANIFEST_NAME, atomic_open

STATE_NAME = "build-state.json"
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


def open_staging(staging: Path, identity: dict[str, Any]) -> dict[str, Any]:
    state_path = staging / STATE_NAME
    if state_path.exists():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state["identity"] != identity:
            differences = _differences(state["identity"], identity)
            raise BuildError(
                f"{staging} holds an unfinished build with other options ({differences}); "
                f"run it with the same options to resume, or delete {staging}"
            )
        state["created_now"] = False
        return state
    with stage_io("staging", staging):
        if staging.exists():
            shutil.rmtree(staging)  # no state file: a build killed before it wrote one, nothing to keep
        staging.mkdir(parents=True)
    state = {"identity": identity, "created_now": True}
    save_state(staging, state)
    return state


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = [
        f"--{key.replace('_', '-')} was {old['options'].get(key)!r}, now {value!r}"
        for key, value in new["options"].items()
        if old["options"].get(key) != value
    ]
    if old["sources"] != new["sources"]:
        diffs.append("the corpus files differ (paths, sizes or modification times)")
    return "; ".join(diffs)


def save_state(staging: Path, state: dict[str, Any]) -> None:
    with stage_io("build state", staging / STATE_NAME), atomic_open(staging / STATE_NAME, "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in state.items() if k != "created_now"}, fh, indent=2)


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
