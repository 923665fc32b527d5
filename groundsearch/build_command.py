"""`groundsearch build`: parse the options into the library's BuildOptions/RunOptions, build, print the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from groundsearch.app import app, guard, need_build_extra
from groundsearch.summaries import ann_summary, reuse_summary


@app.command()
def build(
    sources: Annotated[
        list[Path], typer.Argument(help="Corpus files: MediaWiki XML(.bz2), JSONL, Parquet, BEIR, SQuAD.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to write.")],
    format: Annotated[str | None, typer.Option(help="Corpus format; detected from the file if omitted.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Article URL prefix for dumps without <siteinfo>, e.g. https://en.wikipedia.org/wiki/"),
    ] = None,
    passage_words: Annotated[int, typer.Option(help="Target passage length in words.")] = 100,
    model: Annotated[str | None, typer.Option(help="sentence-transformers folder or hub name.")] = None,
    index: Annotated[str | None, typer.Option(help="FAISS factory string; chosen by corpus size if omitted.")] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option(help="Largest FAISS index, e.g. 4GB, 512MB: the most accurate kind that fits (not with --index)."),
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Passages per embedding checkpoint.")] = 8192,
    batch_size: Annotated[int | None, typer.Option(help="Encoder batch size (64 on CPU, 256 on GPU).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parsing processes (default: every core).")] = None,
    device: Annotated[str | None, typer.Option(help="torch device for embedding, e.g. cpu or cuda.")] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            "--gpus",
            metavar="all|IDS",
            help="Embed on several GPUs at once (one process each) and build FAISS there: 'all' or CUDA ids "
            "such as 0,1; 'all' without a GPU uses the CPU. Not with --device or --ray.",
        ),
    ] = None,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Skip malformed pages or lines and count them.")
    ] = False,
    lexical: Annotated[
        bool, typer.Option("--lexical/--no-lexical", help="Also build the BM25 index that lexical and hybrid need.")
    ] = True,
    target_recall: Annotated[
        float,
        typer.Option(help="Approximate indexes: tune nprobe/efSearch to this recall@10 against exact search."),
    ] = 0.95,
    rescore: Annotated[
        bool,
        typer.Option(
            "--rescore", help="Keep float16 vectors (768 B/passage at 384-d) to re-rank a lossy index's candidates."
        ),
    ] = False,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx/--no-onnx", help="Export the query encoder to ONNX in the bundle, so queries need no torch."
        ),
    ] = True,
    keep_vectors: Annotated[
        bool,
        typer.Option(
            "--keep-vectors/--no-keep-vectors",
            help="Keep float32 vectors and reuse keys (1,568 B/passage at 384-d) so a later build can --reuse them.",
        ),
    ] = True,
    reuse: Annotated[
        list[Path] | None,
        typer.Option(
            "--reuse",
            metavar="BUNDLE",
            help="An older bundle (e.g. of last month's dump): passages it holds unchanged take its vectors "
            "instead of being embedded again (repeatable).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a finished index at --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Embed on a Ray cluster: 'local' starts one on this machine, else the head's address "
            "(host:6379, auto, ray://host:10001). --out must be on a filesystem every node mounts.",
        ),
    ] = None,
) -> None:
    """Build an index bundle from corpus files.

    Example: groundsearch build enwiki-latest-pages-articles.xml.bz2 --out wiki.idx

    A killed build resumes when the same command is run again. To refresh an index from a newer dump, embedding
    only what changed: groundsearch build new.xml.bz2 --out wiki-1201.idx --reuse wiki-1101.idx
    """
    need_build_extra("build")
    from index_build import BuildOptions, RunOptions, build_index
    from index_build.budget import parse_size
    from index_build.staging import staging_path
    from retriever.model import DEFAULT_MODEL

    options = BuildOptions(
        format=format,
        base_url=base_url,
        passage_words=passage_words,
        model=model or DEFAULT_MODEL,
        index_factory=index,
        memory_budget=guard(lambda: parse_size(memory_budget)) if memory_budget is not None else None,
        shard_size=shard_size,
        skip_errors=skip_errors,
        lexical=lexical,
        target_recall=target_recall,
        rescore=rescore,
        onnx=onnx,
        keep_vectors=keep_vectors,
    )
    run = RunOptions(
        workers=workers,
        batch_size=batch_size,
        device=device,
        progress=not quiet,
        ray=ray,
        gpus=gpus,
        reuse=tuple(reuse or ()),
    )
    report = guard(lambda: build_index(list(sources), out, options, run, force=force), staging_path(out))
    m = report.manifest
    resumed = f" (resumed: {', '.join(report.resumed_stages)} kept)" if report.resumed_stages else ""
    typer.echo(
        f"built {report.out}: {m.documents} documents, {m.passages} passages, FAISS {m.faiss_factory}"
        f"{reuse_summary(m.extra.get('vectors'), m.passages)}{resumed}"
    )
    if m.extra.get("passages"):
        from index_build.passage_stats import format_passage_stats

        typer.echo(format_passage_stats(m.extra["passages"]))
    if m.extra.get("memory_budget"):
        typer.echo(f"memory budget: {m.extra['memory_budget']['why']}")
    if m.ann:
        took = f", tuned in {report.tuning_seconds:.1f}s" if report.tuning_seconds is not None else ""
        typer.echo(f"ANN {ann_summary(m.ann)}{took}")
    if report.errors_skipped:
        typer.echo(f"warning: {report.errors_skipped} malformed pages or lines were skipped", err=True)
