"""The `groundsearch` command: wiring only. The work lives in `retriever`, `index_build` and `web`."""

__all__: list[str] = []
