# `make demo` and `make test` work on a fresh machine: each installs what it needs into .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# torch is installed alone first, at a CPU build pin: a bare `torch` requirement would pull a multi-GB CUDA
# build. The project itself only asks for a range, so an existing torch (e.g. a GPU build) is kept.
TORCH_PIN ?= torch==2.13.0
DEMO_CORPUS := data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
DEMO_INDEX := demo.idx

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

$(DEMO_INDEX)/manifest.json: $(STAMP) $(DEMO_CORPUS)
	$(BIN)/groundsearch build $(DEMO_CORPUS) --out $(DEMO_INDEX) --force

demo: $(DEMO_INDEX)/manifest.json
	$(BIN)/groundsearch info $(DEMO_INDEX)
	@for q in "who wrote the nicomachean ethics" "what is the reflectivity of a surface called" \
	          "when was abraham lincoln assassinated"; do \
		echo; echo "=== $$q"; $(BIN)/groundsearch query $(DEMO_INDEX) "$$q" -k 3 || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy retriever index_build groundsearch

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py $(DEMO_CORPUS)

clean:
	rm -rf $(DEMO_INDEX) $(DEMO_INDEX).partial
