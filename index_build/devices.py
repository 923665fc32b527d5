"""Turn `groundsearch build --gpus all|0,1` into the CUDA devices a build embeds on, or the CPU fallback.

Ids are CUDA's, as torch numbers them in this process: after CUDA_VISIBLE_DEVICES, so `--gpus 0` on a
machine started with CUDA_VISIBLE_DEVICES=3 means the physical GPU 3. `all` is every device torch sees; on a
machine with none it selects nothing, and the build embeds on the CPU (the caller prints `note()` once) so
that one command line works on a laptop, in CI and on a GPU box. Naming an id that is not there is an error
instead: the user asked for that GPU, and silently embedding on the CPU would take days at Wikipedia scale.

The device count is a parameter (torch's by default), so the GPU branches are tested with a given count on a
machine without one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from retriever.errors import GroundsearchError

ALL = "all"
_ID = re.compile(r"[0-9]+")  # ASCII digits only: int() also accepts "+1", " 1" and non-ASCII digits
_USAGE = "give 'all' or comma-separated CUDA device ids such as 0,1"


class GpuSelectionError(GroundsearchError):
    """--gpus is malformed or names a CUDA device this machine does not have."""


@dataclass(frozen=True)
class GpuSelection:
    """What `--gpus` chose: CUDA device ids in the order given; none means the CPU fallback of `all`."""

    spec: str
    ids: tuple[int, ...]
    visible: int  # CUDA devices this process sees

    @property
    def cpu_fallback(self) -> bool:
        return not self.ids

    def torch_devices(self) -> list[str]:
        """The torch device strings to embed on, one worker each: ["cuda:0", "cuda:1"], or ["cpu"]."""
        return torch_devices(self.ids)

    def note(self) -> str:
        """One line for the build's log, so a run that fell back to the CPU says so and why."""
        if self.cpu_fallback:
            return f"--gpus {self.spec}: no CUDA device is visible{_cpu_build_hint()}; embedding on the CPU"
        names = ", ".join(self.torch_devices())
        return f"--gpus {self.spec}: embedding on {len(self.ids)} GPU{'s' if len(self.ids) > 1 else ''} ({names})"


def cuda_device_count() -> int:
    """CUDA devices torch sees; 0 with a CPU-only torch build. Does not create a CUDA context."""
    import torch

    return int(torch.cuda.device_count())


def parse_gpus(spec: str | None, device_count: int | None = None) -> GpuSelection | None:
    """Read a `--gpus` value; None when the option was not given (the build then uses --device as before).

    `device_count` defaults to torch's count; malformed values and ids the machine lacks raise
    GpuSelectionError with a one-line message.
    """
    if spec is None:
        return None
    text = spec.strip()
    if text.lower() == ALL:
        count = cuda_device_count() if device_count is None else device_count
        return GpuSelection(ALL, tuple(range(count)), count)
    ids = _parse_ids(spec)
    count = cuda_device_count() if device_count is None else device_count
    missing = [str(i) for i in ids if i >= count]
    if missing:
        which = "" if len(ids) == 1 else f"no CUDA device {', '.join(missing)}: "
        raise GpuSelectionError(f"--gpus {text}: {which}{_machine(count)}; {_fix(count)}")
    return GpuSelection(text, ids, count)


def torch_devices(ids: Sequence[int]) -> list[str]:
    """Torch device strings for CUDA ids; ["cpu"] for none, which is the fallback of `--gpus all`."""
    return [f"cuda:{i}" for i in ids] or ["cpu"]


def _parse_ids(spec: str) -> tuple[int, ...]:
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise GpuSelectionError(f"--gpus {spec!r}: an empty device id; {_USAGE}")
    bad = next((item for item in items if not _ID.fullmatch(item)), None)
    if bad is not None:
        raise GpuSelectionError(f"--gpus {spec}: {bad!r} is not a CUDA device id; {_USAGE}")
    ids = tuple(int(item) for item in items)
    twice = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
    if twice is not None:
        raise GpuSelectionError(f"--gpus {spec}: device {twice} is named twice; name each GPU once")
    return ids


def _machine(count: int) -> str:
    if count == 0:
        return f"this machine has no CUDA device{_cpu_build_hint()}"
    ids = "0" if count == 1 else f"0-{count - 1}"
    return f"this machine has {count} CUDA device{'s' if count > 1 else ''} ({ids})"


def _fix(count: int) -> str:
    if count == 0:
        return "use --gpus all to fall back to the CPU, or leave --gpus out"
    return "use --gpus all, or ids from that range"


def _cpu_build_hint() -> str:
    """Why a GPU machine can still see none: the commonest cause is a CPU-only torch wheel."""
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f" (torch {torch.__version__} is a CPU-only build)"
    return ""


__all__ = ["ALL", "GpuSelection", "GpuSelectionError", "cuda_device_count", "parse_gpus", "torch_devices"]
