"""The `groundsearch` command's typer app and what every command shares: the index argument, the encoder option,
and how a failure is reported (one line on stderr, a non-zero exit, a crash log for bugs)."""

from __future__ import annotations

import os
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


# What `groundsearch[build]` adds to the query-only install; looked up, not imported, so the check costs nothing.
_BUILD_MODULES = ("torch", "sentence_transformers", "sqlite_utils", "tqdm", "mwxml", "mwparserfromhell", "onnx")


def need_build_extra(command: str) -> None:
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


def guard(call: Any, crash_dir: Path | None = None) -> Any:
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
