"""Command-line edge: parse arguments, call the library, format the result. No search logic lives here."""

from __future__ import annotations

import json
import shutil
import textwrap
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


@app.command()
def build(
    sources: Annotated[list[Path], typer.Argument(help="Corpus files: MediaWiki XML(.bz2), JSONL, Parquet, BEIR.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to write.")],
    format: Annotated[str | None, typer.Option(help="Corpus format; detected from the file if omitted.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="Article URL prefix for dumps without <siteinfo>, e.g. https://en.wikipedia.org/wiki/"),
    ] = None,
    passage_words: Annotated[int, typer.Option(help="Target passage length in words.")] = 100,
    model: Annotated[str | None, typer.Option(help="sentence-transformers folder or hub name.")] = None,
    index: Annotated[str | None, typer.Option(help="FAISS factory string; chosen by corpus size if omitted.")] = None,
    shard_size: Annotated[int, typer.Option(help="Passages per embedding checkpoint.")] = 8192,
    batch_size: Annotated[int | None, typer.Option(help="Encoder batch size (64 on CPU, 256 on GPU).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parsing processes (default: every core).")] = None,
    device: Annotated[str | None, typer.Option(help="torch device for embedding, e.g. cpu or cuda.")] = None,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Skip malformed pages or lines and count them.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a finished index at --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build an index bundle from corpus files.

    Example: groundsearch build enwiki-latest-pages-articles.xml.bz2 --out wiki.idx

    A killed build resumes when the same command is run again.
    """
    from index_build import BuildOptions, RunOptions, build_index
    from retriever.model import DEFAULT_MODEL

    options = BuildOptions(
        format=format,
        base_url=base_url,
        passage_words=passage_words,
        model=model or DEFAULT_MODEL,
        index_factory=index,
        shard_size=shard_size,
        skip_errors=skip_errors,
    )
    run = RunOptions(workers=workers, batch_size=batch_size, device=device, progress=not quiet)
    report = _guard(lambda: build_index(list(sources), out, options, run, force=force))
    m = report.manifest
    resumed = f" (resumed: {', '.join(report.resumed_stages)} kept)" if report.resumed_stages else ""
    typer.echo(f"built {report.out}: {m.documents} documents, {m.passages} passages, FAISS {m.faiss_factory}{resumed}")
    if report.errors_skipped:
        typer.echo(f"warning: {report.errors_skipped} malformed pages or lines were skipped", err=True)


@app.command()
def query(
    index: IndexArg,
    text: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of passages to return.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists to visit (approximate indexes only).")] = None,
    device: Annotated[str | None, typer.Option(help="torch device for the query encoder.")] = None,
) -> None:
    """Search an index and print the best passages, verbatim, with their sources.

    Example: groundsearch query wiki.idx "who wrote the nicomachean ethics" -k 5
    """
    from retriever import Retriever

    def run() -> Any:
        return Retriever.open(index, device=device).search(text, k=k, nprobe=nprobe)

    hits = _guard(run)
    if as_json:
        typer.echo(
            json.dumps({"query": text, "k": k, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False, indent=2)
        )
        return
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    for hit in hits:
        where = f"{hit.title} § {hit.section}" if hit.section else hit.title
        typer.echo(typer.style(f"{hit.rank:>2}. {hit.score:.3f}  {where}", bold=True))
        typer.echo(f"    {hit.permalink or '(no URL)'}  [passage {hit.passage_id}, chars {hit.start}-{hit.end}]")
        typer.echo(textwrap.fill(hit.text, width=width, initial_indent="    ", subsequent_indent="    "))
        typer.echo("")


@app.command()
def info(
    index: IndexArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full manifest and sizes as JSON.")] = False,
) -> None:
    """Show an index's manifest, counts and sizes.

    Example: groundsearch info wiki.idx
    """
    from retriever.bundle import bundle_info

    details = _guard(lambda: bundle_info(index))
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
        ("size", f"{details['total_bytes']:,} bytes ({details['bytes_per_passage']} per passage)"),
    ]
    rows += [(f"  {name}", f"{size:,} bytes") for name, size in details["file_sizes"].items()]
    rows += [
        ("source", f"{s['path']} ({s['format']}, {s['size']:,} bytes, sha256 {s['sha256'][:16]}…)")
        for s in m["sources"]
    ]
    for key, value in rows:
        typer.echo(f"{key:<12} {value}")


def _guard(call: Any) -> Any:
    """Run a library call; a user's mistake becomes one line on stderr and exit status 1, not a traceback."""
    try:
        return call()
    except GroundsearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def main() -> None:
    app(prog_name="groundsearch")


if __name__ == "__main__":
    main()
