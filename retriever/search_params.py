"""FAISS search parameters per call: how deep an approximate index looks, with and without a filter.

Parameter objects made for each search, never `ParameterSpace`, which would change the index every thread shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import faiss

from retriever.errors import InvalidQuery
from retriever.faiss_io import hnsw_of, ivf_of

MAX_FILTERED_EF_SEARCH = 16_384  # a filtered HNSW search widens efSearch up to this (restricted)


def search_params(index: Any, defaults: Mapping[str, Any], nprobe: int | None, ef_search: int | None = None) -> Any:
    """Per-call FAISS search parameters for `index`: the caller's nprobe/efSearch, else the bundle's tuned
    `defaults` (the manifest's search_params); None where the index has neither knob."""
    # A knob the index lacks is ignored, as nprobe always was on exact indexes. FAISS hands the parameters
    # down through the ID map and pre-transforms to the HNSW index.
    ivf = ivf_of(index)
    if ivf is None:
        return _hnsw_params(defaults, ef_search) if hnsw_of(index) is not None else None
    default = int(defaults.get("nprobe", 1))
    chosen = default if nprobe is None else nprobe
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
        raise InvalidQuery(f"nprobe must be a whole number >= 1, got {nprobe!r}")
    return faiss.SearchParametersIVF(nprobe=min(chosen, ivf.nlist))  # type: ignore[call-arg]


def restricted(index: Any, params: Any, selector: Any, fraction: float) -> Any:
    """`params` restricted to the ids `selector` accepts (`fraction` of all passages); FAISS passes it through
    ID maps and transforms.

    An approximate index looks as far as an unfiltered search would look for the same number of candidates
    from inside the filter: nprobe and efSearch grow by 1 / fraction. Else a filter of one document would
    find only those of its passages that lie in the few lists (or graph neighbourhoods) the query visits.
    IVF is capped at every list (a full scan, the selector checked per id); HNSW at efSearch 16384.
    """
    if params is None:
        hnsw = hnsw_of(index)
        # A fresh SearchParametersHNSW would carry efSearch=16, not the value stored in the index.
        params = faiss.SearchParametersHNSW(efSearch=hnsw.hnsw.efSearch) if hnsw is not None else None  # type: ignore[attr-defined]
        params = params if params is not None else faiss.SearchParameters()
    if isinstance(params, faiss.SearchParametersIVF):
        params.nprobe = min(ivf_of(index).nlist, math.ceil(params.nprobe / fraction))
    elif isinstance(params, faiss.SearchParametersHNSW):  # type: ignore[attr-defined]
        params.efSearch = max(params.efSearch, min(MAX_FILTERED_EF_SEARCH, math.ceil(params.efSearch / fraction)))
    params.sel = selector
    return params


def _hnsw_params(defaults: Mapping[str, Any], ef_search: int | None) -> Any:
    default = defaults.get("efSearch")
    chosen = default if ef_search is None else ef_search
    if chosen is None:
        return None  # a bundle built before tuning: the efSearch stored in the FAISS file
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
        raise InvalidQuery(f"ef_search must be a whole number >= 1, got {ef_search!r}")
    return faiss.SearchParametersHNSW(efSearch=chosen)  # type: ignore[attr-defined]


__all__ = ["MAX_FILTERED_EF_SEARCH", "restricted", "search_params"]
