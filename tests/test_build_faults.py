"""A build that meets a fault of the machine (a full disk, a file size limit, permissions, a read-only
filesystem, a file deleted under it) stops with one line naming the stage and the file, exit status 1, and
keeps its staging directory, so that the same command, run again once the cause is gone, resumes to the
index an uninterrupted build makes. Anything unexpected is one line too, naming a log with the traceback.

The faults are real, injected into a child process running the real CLI at a known point: the Nth call of
one function of the build (as tests/test_resume_stages.py kills builds) strikes just before the stage writes.
- EFBIG: the child lowers its RLIMIT_FSIZE to 0 (SIGXFSZ ignored, so writes fail with EFBIG).
- EACCES: the child chmods a directory read-only. Root ignores file modes, so a child running as root first
  drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its effective set: it is then held to them like a user.
- EROFS and ENOSPC: the child enters a mount namespace of its own and bind-mounts a directory read-only, or
  mounts a small tmpfs; this needs CAP_SYS_ADMIN (root here and in CI); without it those cases skip.
- a vanished file: the child deletes an embedding shard or the corpus file.
The builds use the smallest real dump and the one-layer test model (conftest.tiny_model), with two passages
per shard and per read checkpoint, so that every stage has several steps to fail between.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import AS_A_USER, assert_same_index, cli_build

from index_build import BuildOptions, RunOptions, build_index
from index_build.store_writer import read_checkpoint, write_store

SHARD = 2  # passages per embedding shard, and per read checkpoint in the faulty child
# The partial dump gives 9 passages in 4 articles: 5 shards, a read checkpoint after each article.

# argv: fault, "module:attribute" to wrap, N (0: strike before the build starts), the fault's path or size,
# then the `groundsearch build` arguments. Prints "staging kept: True|False" as it exits, from inside any
# mount namespace it made.
FAULTY_BUILD = textwrap.dedent(
    """
    import ctypes, importlib, os, resource, signal, sys

    fault, target, n, arg, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 1, 32, 4096, 16384, 1 << 18

    def check(result, what):
        if result != 0:
            raise OSError(ctypes.get_errno(), what)

    if fault == "eacces":
        exec(AS_A_USER)
    if fault in ("erofs", "enospc"):  # before any thread starts: unshare wants a single-threaded process
        check(libc.unshare(CLONE_NEWNS), "unshare")
        check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def strike():
        if fault == "efbig":
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        elif fault == "eacces":
            os.chmod(arg, 0o555)
        elif fault == "erofs":
            check(libc.mount(arg.encode(), arg.encode(), None, MS_BIND, None), "mount --bind")
            check(libc.mount(None, arg.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None), "remount ro")
        elif fault == "enospc":
            size, folder = arg.split(":", 1)
            os.makedirs(folder, exist_ok=True)
            check(libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, b"size=" + size.encode()), "mount tmpfs")
        elif fault == "vanish":
            os.remove(arg)

    import index_build.stages as stages

    def strike_at_call(target, n):
        module, _, attribute = target.partition(":")
        owner = importlib.import_module(module)
        *parents, name = attribute.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original, calls = getattr(owner, name), [0]

        def wrapper(*a, **k):
            calls[0] += 1
            if calls[0] == n:
                strike()
            return original(*a, **k)

        setattr(owner, name, wrapper)

    if n > 0:
        strike_at_call(target, n)
    read_corpora = stages.read_corpora  # checkpoints every {shard} passages, not every 10,000
    stages.read_corpora = lambda corpora, partial, words, progress, every: read_corpora(
        corpora, partial, words, progress, {shard}
    )
    if n == 0:
        strike()
    from groundsearch.cli import main

    sys.argv = ["groundsearch", "build", *args]
    try:
        main()
    finally:
        out = args[args.index("--out") + 1]
        print("staging kept:", os.path.isdir(out + ".partial"))
    """
).format(shard=SHARD)
FAULTY_BUILD = "AS_A_USER = " + repr(AS_A_USER) + "\n" + FAULTY_BUILD


def _build_args(corpus: Path, out: Path, model: Path) -> list[str]:
    return [str(corpus), "--out", str(out), "--model", str(model), "--shard-size", str(SHARD), "--workers", "1", "-q"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, partial_xml: Path, tiny_model: Path) -> Path:
    """The index an uninterrupted build makes, to which every resumed build must be identical."""
    out = tmp_path_factory.mktemp("faults") / "reference.idx"
    build_index([partial_xml], out, BuildOptions(model=str(tiny_model), shard_size=SHARD), RunOptions(progress=False))
    return out


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether this process may make a mount namespace and mount in it (root with CAP_SYS_ADMIN)."""
    folder = tmp_path_factory.mktemp("mount")
    probe = FAULTY_BUILD.split("signal.signal(signal.SIGXFSZ")[0]
    probe += f"check(libc.mount(b'tmpfs', b'{folder}', b'tmpfs', 0, b'size=64k'), 'mount tmpfs')\n"
    result = subprocess.run([sys.executable, "-c", probe, "enospc", "x:y", "0", "-"], capture_output=True)
    return result.returncode == 0


def _faulty_build(fault: str, target: str, n: int, arg: str, args: list[str]) -> tuple[str, bool]:
    """Run the build with the fault; return its one line of stderr, and whether the staging directory is kept."""
    command = [sys.executable, "-c", FAULTY_BUILD, fault, target, str(n), arg, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1, f"the build was to fail with status 1: {result.returncode}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0], "staging kept: True" in result.stdout


def _rerun(args: list[str]) -> str:
    """The same command again, with no fault: it must succeed; returns what it printed."""
    result = subprocess.run([sys.executable, "-m", "groundsearch", "build", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


# (fault, function whose Nth call strikes, N, the fault's path relative to the staging directory, what the
# one line must say, what the rerun says it kept)
EFBIG_CASES = {
    "reading": (
        "index_build.read_stage:_Position.record",
        2,
        "reading: cannot write {staging}/passages.sqlite.partial: disk I/O error (SQLITE_IOERR_WRITE); ",
        "(resumed: 2 articles read kept)",
    ),
    "store": (
        "index_build.stages:finish_store",
        1,
        "store: cannot write {staging}/passages.sqlite.partial: disk I/O error (SQLITE_IOERR_WRITE); ",
        "(resumed: read kept)",
    ),
    "lexical": (
        "index_build.stages:index_store",
        1,
        "lexical: cannot write {staging}/lexical: File too large (EFBIG); ",
        "(resumed: read kept)",
    ),
    "embedding": (
        "index_build.embed:embed_shard",
        3,
        "embedding: cannot write {staging}/shards/shard-000002.npy: File too large (EFBIG); ",
        "(resumed: read, lexical kept)",
    ),
    "FAISS": (
        "index_build.stages:write_faiss",
        1,
        "FAISS: cannot write {staging}/index.faiss: File too large (EFBIG); ",
        "(resumed: read, lexical kept)",
    ),
    "query encoder": (
        "index_build.onnx_export:_copy_graph",
        1,
        "query encoder: cannot write {staging}/encoder: File too large (EFBIG); ",
        "(resumed: read, lexical, index, tuning kept)",
    ),
    "manifest": (
        "index_build.bundle_writer:bundle_files",
        1,
        "manifest: cannot write {staging}/manifest.json: File too large (EFBIG); ",
        "(resumed: read, lexical, index, tuning, query encoder kept)",
    ),
}


@pytest.mark.parametrize("stage", list(EFBIG_CASES))
def test_file_size_limit_is_one_line_and_the_same_command_resumes(
    stage: str, tmp_path: Path, partial_xml: Path, tiny_model: Path, reference: Path
) -> None:
    target, n, message, kept = EFBIG_CASES[stage]
    out = tmp_path / "x.idx"
    args = _build_args(partial_xml, out, tiny_model)
    line, staging_kept = _faulty_build("efbig", target, n, "-", args)
    staging = out.with_name("x.idx.partial")
    assert line.startswith("error: " + message.format(staging=staging)), line
    assert line.endswith("run the same command again to resume"), line
    assert staging_kept and staging.is_dir() and not out.exists()
    assert kept in _rerun(args)
    assert_same_index(out, reference)


def test_permission_denied_while_embedding(
    tmp_path: Path, partial_xml: Path, tiny_model: Path, reference: Path
) -> None:
    out = tmp_path / "x.idx"
    args = _build_args(partial_xml, out, tiny_model)
    shards = out.with_name("x.idx.partial") / "shards"
    line, kept = _faulty_build("eacces", "index_build.embed:embed_shard", 3, str(shards), args)
    assert line.startswith(f"error: embedding: cannot write {shards}/shard-000002.npy: Permission denied (EACCES); ")
    assert "make it writable and run the same command again to resume" in line
    assert kept
    shards.chmod(0o755)
    assert "(resumed: read, lexical kept)" in _rerun(args)
    assert_same_index(out, reference)


def test_permission_denied_on_the_folder_of_out(tmp_path: Path, partial_xml: Path, tiny_model: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    out = parent / "x.idx"
    try:
        line, kept = _faulty_build("eacces", "-", 0, str(parent), _build_args(partial_xml, out, tiny_model))
    finally:
        parent.chmod(0o755)
    assert line.startswith(f"error: staging: cannot write {parent}/x.idx.partial: Permission denied (EACCES); ")
    assert not kept and not any(parent.iterdir())


def test_read_only_filesystem_at_the_manifest(
    tmp_path: Path, partial_xml: Path, tiny_model: Path, reference: Path, can_mount: bool
) -> None:
    if not can_mount:
        pytest.skip("needs CAP_SYS_ADMIN to bind-mount a folder read-only in a mount namespace")
    out = tmp_path / "x.idx"
    args = _build_args(partial_xml, out, tiny_model)
    staging = out.with_name("x.idx.partial")
    line, kept = _faulty_build("erofs", "index_build.bundle_writer:bundle_files", 1, str(staging), args)
    assert line.startswith(f"error: manifest: cannot write {staging}/manifest.json: Read-only file system (EROFS); ")
    assert kept
    assert "(resumed: read, lexical, index, tuning, query encoder kept)" in _rerun(args)
    assert_same_index(out, reference)


def test_full_disk_while_embedding(
    tmp_path: Path, partial_xml: Path, tiny_model: Path, reference: Path, can_mount: bool
) -> None:
    """A 4 KiB tmpfs over the shard folder: the first shard (about 3 KiB) fits, the second does not."""
    if not can_mount:
        pytest.skip("needs CAP_SYS_ADMIN to mount a small tmpfs in a mount namespace")
    out = tmp_path / "x.idx"
    args = _build_args(partial_xml, out, tiny_model)
    shards = out.with_name("x.idx.partial") / "shards"
    line, kept = _faulty_build("enospc", "index_build.embed:embed_shard", 1, f"4k:{shards}", args)
    assert line.startswith(f"error: embedding: cannot write {shards}/shard-00000"), line
    assert ": No space left on device (ENOSPC); free some space on that disk and run the same command" in line
    assert kept
    _rerun(args)  # the tmpfs went with the child's namespace, and the shards in it: they are redone
    assert_same_index(out, reference)


def test_full_disk_while_reading(tmp_path: Path, partial_xml: Path, tiny_model: Path, can_mount: bool) -> None:
    """The whole build on a 16 KiB tmpfs: the store outgrows it. The rerun, outside, has the disk back."""
    if not can_mount:
        pytest.skip("needs CAP_SYS_ADMIN to mount a small tmpfs in a mount namespace")
    disk = tmp_path / "disk"
    out = disk / "x.idx"
    line, kept = _faulty_build("enospc", "-", 0, f"16k:{disk}", _build_args(partial_xml, out, tiny_model))
    assert line.startswith(f"error: reading: cannot write {disk}/x.idx.partial/passages.sqlite.partial: "), line
    assert "database or disk is full (SQLITE_FULL); " in line
    assert kept


def test_shard_deleted_before_faiss_is_redone(
    tmp_path: Path, partial_xml: Path, tiny_model: Path, reference: Path
) -> None:
    out = tmp_path / "x.idx"
    args = _build_args(partial_xml, out, tiny_model)
    shard = out.with_name("x.idx.partial") / "shards" / "shard-000003.npy"
    line, kept = _faulty_build("vanish", "index_build.stages:train_faiss", 1, str(shard), args)
    assert line.startswith(f"error: FAISS: cannot find {shard}: No such file or directory (ENOENT); "), line
    assert kept
    assert "(resumed: read, lexical kept)" in _rerun(args)
    assert_same_index(out, reference)


def test_shard_deleted_before_tuning(tmp_path: Path, partial_xml: Path, tiny_model: Path) -> None:
    """Tuning an approximate index reads every shard again; the rerun redoes the shard and keeps the index."""
    out = tmp_path / "x.idx"
    args = [*_build_args(partial_xml, out, tiny_model), "--index", "HNSW8"]  # approximate, and needs no training
    shard = out.with_name("x.idx.partial") / "shards" / "shard-000001.npy"
    line, kept = _faulty_build("vanish", "index_build.stages:tune_with_openings", 1, str(shard), args)
    assert line.startswith(f"error: tuning: cannot find {shard}: No such file or directory (ENOENT); "), line
    assert kept
    assert "(resumed: read, lexical, index kept)" in _rerun(args)


def test_corpus_deleted_while_reading(tmp_path: Path, partial_xml: Path, tiny_model: Path, reference: Path) -> None:
    corpus = tmp_path / partial_xml.name
    shutil.copy2(partial_xml, corpus)
    saved = tmp_path / "saved.xml"
    shutil.copy2(corpus, saved)
    out = tmp_path / "x.idx"
    args = _build_args(corpus, out, tiny_model)
    line, kept = _faulty_build("vanish", "index_build.read_stage:_Position.record", 2, str(corpus), args)
    assert line.startswith(f"error: reading: cannot find {corpus}: No such file or directory (ENOENT); "), line
    assert kept
    os.replace(saved, corpus)  # put back as it was (size and modification time): the build resumes
    assert "articles read kept)" in _rerun(args)
    assert_same_index(out, reference, same_sources=False)


def test_unexpected_error_is_one_line_with_a_traceback_log(
    tmp_path: Path, partial_xml: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import index_build.stages

    def broken(*args: object, **kwargs: object) -> int:
        return 1 // 0

    monkeypatch.setattr(index_build.stages, "index_store", broken)
    out = tmp_path / "x.idx"
    code, err = cli_build(*_build_args(partial_xml, out, tiny_model))
    staging = out.with_name("x.idx.partial")
    logs = list(staging.glob("groundsearch-crash-*.log"))
    assert code == 1 and len(logs) == 1
    assert err.strip() == (
        f"error: unexpected ZeroDivisionError: integer division or modulo by zero "
        f"(traceback in {logs[0]}; please report it)"
    )
    log = logs[0].read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "in broken" in log and "ZeroDivisionError" in log


def test_the_store_refuses_a_document_no_reader_checked(tmp_path: Path) -> None:
    """The store's own check, for a reader that lets such a document through: nothing of it is written."""
    from index_build import CorpusError, Document

    good = Document("1", "A", "Aristotle wrote the Nicomachean Ethics.")
    bad = Document("2", "B", "lone \ud800 surrogate")
    store = tmp_path / "s.sqlite"
    with pytest.raises(CorpusError, match=r"c\.jsonl: article 'B' has a lone surrogate '\\ud800' at character 5"):
        write_store(store, [("c.jsonl", good), ("c.jsonl", bad)], 100, checkpoint_passages=1)
    checkpoint = read_checkpoint(store)
    assert checkpoint is not None and (checkpoint.counts.documents, checkpoint.counts.passages) == (1, 1)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM passages").fetchone() == (1,)
