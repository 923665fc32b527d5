"""Command-line edge: parse arguments, call the library, format the result. No search logic lives here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

import groundsearch.build_command  # noqa: F401 - registers `build`, first in the help as in the workflow
from groundsearch.app import EncoderOpt, IndexArg, app, guard, need_build_extra
from groundsearch.summaries import ann_summary, lexical_summary, memory_summary


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

    used_mode, result = guard(run)
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

    details = guard(lambda: bundle_info(index))
    details["faiss_memory"] = memory = guard(lambda: faiss_memory(index / FAISS_NAME))
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
        *([("ann", ann_summary(m["ann"]))] if m.get("ann") else []),
        ("lexical", lexical_summary(m.get("lexical"))),
        ("confidence", calibration_summary(m.get("confidence"), m.get("no_confidence"))),
        ("memory", memory_summary(memory)),
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
            need_build_extra("verify --source")
            from index_build.verify_source import verify_sources

            verify_sources(index, manifest, list(source), report)
        return report

    report = guard(run)
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

    web_app = guard(make)
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
    need_build_extra("eval")
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

    result = guard(run)
    typer.echo(result.table())
    if report is not None:
        guard(lambda: result.write(report))
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

    result = guard(lambda: diff_bundles(old, new, limit))
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


def main() -> None:
    app(prog_name="groundsearch")


if __name__ == "__main__":
    main()
