"""Run a build: check the options, open the corpora and the staging directory, walk the stages, publish.

Everything is built in a staging directory beside the output (`wiki.idx.partial/`) and renamed into place
only when complete, so `--out` holds either nothing, the previous index, or the new finished one. Killing
a build and running the same command again picks up the staging directory and its saved `BuildState`
(index_build.state): each stage (index_build.stages) keeps what it finished, and embedding resumes at the
first missing shard.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from index_build.devices import parse_gpus
from index_build.faults import BuildError, BuildIOError
from index_build.options import BuildOptions, RunOptions
from index_build.readers import open_corpus
from index_build.reuse import ReuseRefused, open_sources
from index_build.stages import Job, run_stages
from index_build.staging import check_out, identity_of, open_staging, publish, staging_path
from retriever.bundle import Manifest


@dataclass
class BuildReport:
    out: Path
    manifest: Manifest
    resumed_stages: list[str] = field(default_factory=list)
    errors_skipped: int = 0
    tuning_seconds: float | None = None  # None where nothing was tuned now (exact index, or kept on resume)


def build_index(
    sources: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: BuildOptions = BuildOptions(),
    run: RunOptions = RunOptions(),
    force: bool = False,
) -> BuildReport:
    """Build (or finish building) the index bundle `out` from the corpus files `sources`."""
    out_path = Path(out)
    options.check()
    run.check()
    selection = parse_gpus(run.gpus)  # a bad --gpus fails here, before hours of reading
    if selection is not None and (run.progress or selection.cpu_fallback):
        print(selection.note(), file=sys.stderr)
    # Open every corpus before anything is written: a wrong path or format fails with nothing to clean up.
    corpora = [
        open_corpus(
            s, format=options.format, base_url=options.base_url, skip_errors=options.skip_errors, workers=run.workers
        )
        for s in sources
    ]
    check_out(out_path, force)
    staging = staging_path(out_path)
    state, created_now = open_staging(staging, identity_of(options, corpora))
    job = Job(staging, options, run, corpora, selection, created_now)
    if run.reuse:
        # Checked against the build's own model before anything is read: a bundle that cannot lend its vectors
        # fails now, and a staging directory this run made is not left behind.
        try:
            job.sources = open_sources(run.reuse, job.model)
        except BaseException:
            if created_now:
                shutil.rmtree(staging, ignore_errors=True)
            raise
    state = run_stages(state, job)
    assert job.manifest is not None
    publish(staging, out_path)
    return BuildReport(out_path, job.manifest, job.kept, state.errors_skipped, job.tuning_seconds)


__all__ = ["BuildError", "BuildIOError", "BuildOptions", "BuildReport", "ReuseRefused", "RunOptions", "build_index"]
