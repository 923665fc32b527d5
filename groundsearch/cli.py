"""Command-line edge: parse arguments, call the library, format the result. No search logic lives here."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from retriever.errors import GroundsearchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Retrieval-grounded search: verbatim, cited passages from a trusted corpus.",
)

IndexArg = Annotated[Path, typer.Argument(help="Index bundle directory, as written by `groundsearch build`.")]
EncoderOpt = Annotated[
    str,
    typer.Option(
        "--encoder",
        metavar="auto|onnx|torch",
        help="Query encoder: the bundle's ONNX graph (fast start, no torch), the torch model, or auto "
        "(ONNX where the bundle has it, on the CPU).",
    ),
]


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
    _need_build_extra("build")
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
        memory_budget=_guard(lambda: parse_size(memory_budget)) if memory_budget is not None else None,
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
    report = _guard(lambda: build_index(list(sources), out, options, run, force=force), staging_path(out))
    m = report.manifest
    resumed = f" (resumed: {', '.join(report.resumed_stages)} kept)" if report.resumed_stages else ""
    typer.echo(
        f"built {report.out}: {m.documents} documents, {m.passages} passages, FAISS {m.faiss_factory}"
        f"{_reuse_summary(m.extra.get('vectors'), m.passages)}{resumed}"
    )
    if m.extra.get("passages"):
        from index_build.passage_stats import format_passage_stats

        typer.echo(format_passage_stats(m.extra["passages"]))
    if m.extra.get("memory_budget"):
        typer.echo(f"memory budget: {m.extra['memory_budget']['why']}")
    if m.ann:
        took = f", tuned in {report.tuning_seconds:.1f}s" if report.tuning_seconds is not None else ""
        typer.echo(f"ANN {_ann_summary(m.ann)}{took}")
    if report.errors_skipped:
        typer.echo(f"warning: {report.errors_skipped} malformed pages or lines were skipped", err=True)


@app.command()
def query(
    index: IndexArg,
    text: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of passages to return.")] = 10,
    mode: Annotated[
        str | None,
        typer.Option(help="dense (embeddings), lexical (BM25) or hybrid (both); default: hybrid where built."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists to visit (approximate indexes only).")] = None,
    ef_search: Annotated[int | None, typer.Option(help="HNSW candidate list length (HNSW indexes only).")] = None,
    rerank: Annotated[
        str | None,
        typer.Option(help="Reorder the first stage's top passages with this CrossEncoder (folder or hub name)."),
    ] = None,
    rerank_depth: Annotated[int, typer.Option(help="First-stage passages the reranker reads.")] = 50,
    device: Annotated[str | None, typer.Option(help="torch device for the query encoder.")] = None,
    encoder: EncoderOpt = "auto",
    min_confidence: Annotated[
        float | None,
        typer.Option(help="The confidence a best hit needs to count as a match; default: the index's calibrated bar."),
    ] = None,
    title: Annotated[
        list[str] | None, typer.Option(help="Only passages of the article with this exact title (repeatable).")
    ] = None,
    document_ids: Annotated[
        list[int] | None, typer.Option("--document", help="Only passages of this document id (repeatable).")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option(help="Only passages from this corpus file, as `info` lists it (repeatable).")
    ] = None,
) -> None:
    """Search an index and print the best passages, verbatim, with their sources.

    When no passage matches well, a line says so first, and the hits below it are marked weak.

    Example: groundsearch query wiki.idx "who wrote the nicomachean ethics" -k 5 --mode hybrid

    --title, --document and --source restrict the search: any value of one option matches, options given
    together must all match; a filter that matches no document is an error.
    """
    from groundsearch.terminal import wrap_highlighted
    from retriever import Filter, Reranker, Retriever

    def run() -> tuple[str, Any]:
        filters = Filter(documents=tuple(document_ids or ()), titles=tuple(title or ()), sources=tuple(source or ()))
        reranker = Reranker(rerank, device=device, depth=rerank_depth) if rerank else None
        retriever = Retriever.open(index, device=device, encoder=encoder)
        result = retriever.search_with_status(
            text,
            k=k,
            min_confidence=min_confidence,
            mode=mode,
            nprobe=nprobe,
            ef_search=ef_search,
            rerank=reranker,
            filters=filters,
        )
        return mode or retriever.default_mode, result

    used_mode, result = _guard(run)
    if as_json:
        document = {"k": k, "mode": used_mode, "rerank": rerank, **result.to_dict()}
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    if result.answerable is False:
        typer.echo(typer.style(result.no_match_line(), fg="yellow", bold=True))
        typer.echo("")
    for hit in result.hits:
        where = f"{hit.title} § {hit.section}" if hit.section else hit.title
        where += f" ({hit.page_kind} page)" if hit.page_kind else ""
        weak = "  (weak)" if result.is_weak(hit) else ""
        confidence = f"  confidence {hit.confidence:.2f}" if hit.confidence is not None else ""
        typer.echo(typer.style(f"{hit.rank:>2}. {hit.score:.3f}  {where}{confidence}{weak}", bold=not weak))
        found = hit.found_by_text()
        typer.echo(
            f"    {hit.permalink or '(no URL)'}  [passage {hit.passage_id}, chars {hit.start}-{hit.end}; {found}]"
        )
        typer.echo(wrap_highlighted(hit.text, hit.highlight, width))  # the span that best answers, emphasised
        typer.echo("")


@app.command()
def info(
    index: IndexArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full manifest and sizes as JSON.")] = False,
) -> None:
    """Show an index's manifest, counts and sizes.

    Example: groundsearch info wiki.idx
    """
    from retriever.bundle import FAISS_NAME, bundle_info
    from retriever.confidence import calibration_summary
    from retriever.faiss_io import faiss_memory

    details = _guard(lambda: bundle_info(index))
    details["faiss_memory"] = memory = _guard(lambda: faiss_memory(index / FAISS_NAME))
    if as_json:
        typer.echo(json.dumps(details, ensure_ascii=False, indent=2))
        return
    m = details["manifest"]
    rows = [
        ("index", details["path"]),
        ("created", f"{m['created_at']} by groundsearch {m['package_version']}"),
        ("documents", f"{m['documents']:,}"),
        ("passages", f"{m['passages']:,} (about {m['build_options']['passage_words']} words each)"),
        (
            "model",
            f"{m['model']['name']} ({m['model']['dimension']}-d, weights sha256 {m['model']['weights_sha256'][:16]}…)",
        ),
        ("faiss", f"{m['faiss_factory']}, {m['metric']}, search {m['search_params'] or 'exact'}"),
        *([("ann", _ann_summary(m["ann"]))] if m.get("ann") else []),
        ("lexical", _lexical_summary(m.get("lexical"))),
        ("confidence", calibration_summary(m.get("confidence"), m.get("no_confidence"))),
        ("memory", _memory_summary(memory)),
        ("size", f"{details['total_bytes']:,} bytes ({details['bytes_per_passage']} per passage)"),
    ]
    rows += [(f"  {name}", f"{size:,} bytes") for name, size in details["file_sizes"].items()]
    rows += [
        ("source", f"{s['path']} ({s['format']}, {s['size']:,} bytes, sha256 {s['sha256'][:16]}…)")
        for s in m["sources"]
    ]
    for key, value in rows:
        typer.echo(f"{key:<12} {value}")


@app.command()
def verify(
    index: IndexArg,
    source: Annotated[
        list[Path] | None,
        typer.Option(help="Corpus file the index was built from: re-read it and check every passage (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of lines.")] = False,
) -> None:
    """Check that an index still is what its manifest says: every file's size and sha256, every passage's text
    against its hash, the FAISS and lexical counts, the ONNX encoder; with --source, that the corpus re-derives
    every stored passage exactly. Exit 0 when nothing differs, 1 listing the first differences.

    Example: groundsearch verify wiki.idx --source enwiki-latest-pages-articles.xml.bz2
    """
    from retriever.integrity import SHOWN_DIFFERENCES, verify_bundle

    def run() -> Any:
        report, manifest = verify_bundle(index)
        if source and manifest is not None:
            _need_build_extra("verify --source")
            from index_build.verify_source import verify_sources

            verify_sources(index, manifest, list(source), report)
        return report

    report = _guard(run)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(report.summary(), err=not report.ok)
        for line in report.differences[:SHOWN_DIFFERENCES]:
            typer.echo(f"  {line}", err=True)
        if len(report.differences) > SHOWN_DIFFERENCES:
            typer.echo(f"  ... and {len(report.differences) - SHOWN_DIFFERENCES:,} more", err=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    index: IndexArg,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_query_chars: Annotated[
        int | None, typer.Option(min=1, help="Longest query accepted, in characters (default 500).")
    ] = None,
    max_k: Annotated[int | None, typer.Option(min=1, help="Most passages one search may return (default 100).")] = None,
    default_k: Annotated[
        int | None, typer.Option(min=1, help="Passages returned when k is not given (default 10).")
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="Let pages from this origin call the API from a browser (repeatable); off by default."),
    ] = None,
    rerank: Annotated[
        str | None, typer.Option(help="Rerank every search with this CrossEncoder (folder or hub name).")
    ] = None,
    rerank_depth: Annotated[int, typer.Option(help="First-stage passages the reranker reads.")] = 50,
    device: Annotated[str | None, typer.Option(help="torch device for the query encoder.")] = None,
    encoder: EncoderOpt = "auto",
) -> None:
    """Serve the search page and the JSON API (uvicorn); the index is opened once, at start-up.

    Example: groundsearch serve wiki.idx --host 127.0.0.1 --port 8000

    Then open http://127.0.0.1:8000/ or call /api/search?q=...&k=5, /api/passages/ID, /api/info, /healthz;
    /docs documents the API.
    """
    import uvicorn

    from retriever import Reranker
    from web import create_app

    # Unset limits are left to create_app, so its defaults are the only ones.
    given = {"max_query_chars": max_query_chars, "max_k": max_k, "default_k": default_k}
    limits = {name: value for name, value in given.items() if value is not None}

    def make() -> Any:
        try:
            reranker = Reranker(rerank, device=device, depth=rerank_depth) if rerank else None
            return create_app(
                index, cors_origins=cors_origin or (), device=device, encoder=encoder, reranker=reranker, **limits
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    web_app = _guard(make)
    typer.echo(f"serving {index} at http://{host}:{port}/ (API documented at /docs); Ctrl-C stops", err=True)
    uvicorn.run(web_app, host=host, port=port, log_level="info")


@app.command(name="eval")
def eval_(
    index: IndexArg,
    qa: Annotated[
        Path | None,
        typer.Option(help="Questions with answers: SQuAD JSON, DPR question<TAB>answers TSV, NQ-open JSONL."),
    ] = None,
    beir: Annotated[Path | None, typer.Option(help="BEIR dataset folder: queries.jsonl and qrels/test.tsv.")] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="Search modes to compare, comma-separated: dense,lexical,hybrid (default: the index's)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Ask only the first N questions, for a quick run.")] = None,
    depth: Annotated[
        int, typer.Option(help="Passages retrieved per question; metrics at k above it are left out.")
    ] = 100,
    report: Annotated[Path | None, typer.Option(help="Write the figures as JSON to this file.")] = None,
    batch_size: Annotated[int, typer.Option(help="Questions per search call.")] = 64,
    device: Annotated[str | None, typer.Option(help="torch device for the query encoder.")] = None,
    encoder: EncoderOpt = "auto",
    unanswerable: Annotated[
        Path | None,
        typer.Option(help="Questions whose answers are NOT in the index (SQuAD, DPR or NQ-open): adds abstention."),
    ] = None,
    min_confidence: Annotated[
        float | None, typer.Option(help="The bar for abstention figures; default: the index's calibrated one.")
    ] = None,
) -> None:
    """Measure retrieval quality on a benchmark: answer@k, gold-document recall@k, MRR@10, nDCG@10, queries/s.

    Example: groundsearch eval squad.idx --qa squad-dev-v1.1.json --mode dense,hybrid --report squad.json

    answer@k: a top-k passage contains an answer (DPR, SQuAD normalisation); recall@k: the gold document is
    among the top k documents; nDCG@10 and recall with BEIR qrels are computed as BEIR computes them.
    With --unanswerable: AUROC of the best hit's confidence (answerable vs not), and the share of each set that
    the bar flags as "no good match".
    """
    _need_build_extra("eval")
    from evaluation import EvaluationError, check_options, check_request, evaluate, parse_modes, read_questions
    from retriever import Retriever

    def run() -> Any:
        # Every option and the question file are checked before the model loads, so a typo costs no wait.
        source, format = check_request(qa, beir, limit, report)
        modes = check_options(parse_modes(mode), depth, batch_size)
        questions = read_questions(source, format=format)[:limit]
        if min_confidence is not None and not 0 <= min_confidence <= 1:
            raise EvaluationError(f"--min-confidence must lie in [0, 1], got {min_confidence}")
        missing = read_questions(unanswerable)[:limit] if unanswerable is not None else []
        retriever = Retriever.open(index, device=device, encoder=encoder)
        return evaluate(
            retriever,
            questions,
            modes,
            depth,
            batch_size,
            dataset=str(source),
            unanswerable=missing,
            min_confidence=min_confidence,
        )

    result = _guard(run)
    typer.echo(result.table())
    if report is not None:
        _guard(lambda: result.write(report))
        typer.echo(f"report written to {report}", err=True)


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The older index bundle.")],
    new: Annotated[Path, typer.Argument(help="The newer index bundle.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of lines.")] = False,
    limit: Annotated[int, typer.Option(min=0, help="Titles listed per group of articles.")] = 10,
) -> None:
    """Compare two index bundles: articles added, removed and changed, passages added, removed and unchanged.

    Example: groundsearch diff wiki-1101.idx wiki-1201.idx

    Articles are matched by their source id (a page id survives a rename); passages by the SHA-256 of their
    text. A changed article has another title or other passages.
    """
    from retriever.diff import diff_bundles

    result = _guard(lambda: diff_bundles(old, new, limit))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"articles: {result.articles_added.count:,} added, {result.articles_removed.count:,} removed, "
        f"{result.articles_changed.count:,} changed, {result.articles_unchanged:,} unchanged "
        f"({result.old_articles:,} → {result.new_articles:,})"
    )
    typer.echo(
        f"passages: {result.passages_added:,} added, {result.passages_removed:,} removed, "
        f"{result.passages_unchanged:,} unchanged ({result.old_passages:,} → {result.new_passages:,})"
    )
    for name, group in (
        ("added", result.articles_added),
        ("removed", result.articles_removed),
        ("changed", result.articles_changed),
    ):
        if group.titles:
            typer.echo(f"{name}:")
            for title in group.titles:
                typer.echo(f"  {title}")
            if group.count > len(group.titles):
                typer.echo(f"  ... and {group.count - len(group.titles):,} more")


def _reuse_summary(vectors: dict[str, Any] | None, passages: int) -> str:
    """ "; vectors reused N (97.0%), encoded M" for a build given --reuse, else nothing."""
    if not vectors or not vectors.get("reused_from"):
        return ""
    share = 100 * vectors["reused"] / passages if passages else 0.0
    return f"; vectors reused {vectors['reused']:,} ({share:.1f}%), encoded {vectors['encoded']:,}"


def _ann_summary(ann: dict[str, Any]) -> str:
    """The build's measurement of an approximate index, in one line (see index_build.tuning)."""
    params = ", ".join(f"{k}={v}" for k, v in ann["params"].items()) or "default search"
    knob = next(iter(ann["params"]), "")
    tried = f"; tried {knob} " + ", ".join(f"{v}: {r:.3f}" for v, r in ann["tried"]) if ann["tried"] else ""
    verdict = "met" if ann["met"] else "MISSED"
    return (
        f"recall@10 {ann['recall@10']:.3f} vs exact search at {params} (target {ann['target']:g} {verdict}, "
        f"{ann['queries']} queries from {ann.get('queries_from', 'passage vectors')}{tried})"
    )


def _memory_summary(memory: dict[str, Any]) -> str:
    """Resident memory of the opened FAISS index against its file size: memory-mapped indexes stay far below."""
    mib = 1 << 20
    how = "memory-mapped" if memory["memory_mapped"] else "read into memory"
    return (
        f"FAISS private resident memory +{memory['resident_bytes'] / mib:,.1f} MiB after open, "
        f"file {memory['file_bytes'] / mib:,.1f} MiB "
        f"({how}; opened in {memory['open_seconds'] * 1000:,.0f} ms)"
    )


def _lexical_summary(lexical: dict[str, Any] | None) -> str:
    if not lexical:
        return "none (dense search only; rebuild for lexical and hybrid)"
    return f"BM25, {lexical['engine']} {lexical['engine_version']} in {lexical['directory']}/"


# What `groundsearch[build]` adds to the query-only install; looked up, not imported, so the check costs nothing.
_BUILD_MODULES = ("torch", "sentence_transformers", "sqlite_utils", "tqdm", "mwxml", "mwparserfromhell", "onnx")


def _need_build_extra(command: str) -> None:
    """A query-only install (no torch) cannot build or evaluate: say how to get the rest, in one line."""
    import importlib.util

    missing = [name for name in _BUILD_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        typer.echo(
            f"error: `groundsearch {command}` needs the build extra ({', '.join(missing)} not installed): "
            'pip install "groundsearch[build]"',
            err=True,
        )
        raise typer.Exit(1)


def _guard(call: Any, crash_dir: Path | None = None) -> Any:
    """Run a library call; a user's mistake becomes one line on stderr and exit status 1, not a traceback.

    Anything else is a bug: one line too, naming a log file that holds the traceback for a report (written to
    `crash_dir` where it exists, as a build's staging directory, else to the temporary directory).
    """
    try:
        return call()
    except GroundsearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if type(exc).__module__.partition(".")[0] in ("typer", "click"):
            raise  # how a command exits or reports a bad parameter (typer.Exit, typer.BadParameter): typer's to show
        message = " ".join(str(exc).split())[:300]
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {message} ({_crash_log(crash_dir)}; please report it)", err=True
        )
        raise typer.Exit(1) from None


def _crash_log(crash_dir: Path | None) -> str:
    """Write the exception being handled, with what ran, to a new log file; say where (or why nowhere)."""
    import platform
    import sys
    import tempfile
    import time
    import traceback

    from retriever.bundle import package_version

    name = f"groundsearch-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = (
        f"groundsearch {package_version()}, Python {platform.python_version()}, {platform.platform()}\n"
        f"command: {' '.join(sys.argv)}\n\n{traceback.format_exc()}"
    )
    folders = [crash_dir] if crash_dir is not None and crash_dir.is_dir() else []
    problem = ""
    for folder in [*folders, None]:
        try:
            # gettempdir() tries each candidate by writing to it: on a full disk it raises too.
            path = (folder or Path(tempfile.gettempdir())) / name
            path.write_text(text, encoding="utf-8", errors="backslashreplace")
            return f"traceback in {path}"
        except OSError as exc:
            problem = exc.strerror or str(exc)
    return f"no traceback log could be written: {problem}"


def main() -> None:
    app(prog_name="groundsearch")


if __name__ == "__main__":
    main()
