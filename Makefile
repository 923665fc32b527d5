# `make demo` and `make test` work on a fresh machine: each installs what it needs into .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LIGHT_VENV := .venv-light
LIGHT_STAMP := $(LIGHT_VENV)/.installed-stamp
# torch is installed alone first, at a CPU build pin: a bare `torch` requirement would pull a multi-GB CUDA
# build. The project itself only asks for a range, so an existing torch (e.g. a GPU build) is kept.
TORCH_PIN ?= torch==2.13.0
DEMO_CORPUS := data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
DEMO_INDEX := demo.idx
# The browser test drives Debian's chromium, never a browser Playwright downloads; only `make test` needs it.
CHROMIUM := /usr/bin/chromium
DEMO_HOST := 127.0.0.1
DEMO_PORT := 8000

.PHONY: install light chromium demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e ".[build,dev]"
	touch $(STAMP)

# The query-only install, without torch: what `pip install groundsearch` gives. tests/test_light_install.py
# queries and serves a bundle the full install built with it, which proves the light install is enough.
$(LIGHT_STAMP): pyproject.toml Makefile
	test -x $(LIGHT_VENV)/bin/python || $(PYTHON) -m venv $(LIGHT_VENV)
	$(LIGHT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LIGHT_VENV)/bin/python -m pip install -q -e .
	touch $(LIGHT_STAMP)

light: $(LIGHT_STAMP)

# apt-get as root, through sudo otherwise; with neither, say so and go on: tests/test_web_browser.py then
# skips on a developer's machine and fails under CI=true.
chromium:
	@if [ -x $(CHROMIUM) ]; then \
		echo "chromium: $(CHROMIUM) is installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "chromium: $(CHROMIUM) is missing and neither root nor sudo is available;" \
		     "install it with: apt-get install -y chromium" >&2; \
	fi

$(DEMO_INDEX)/manifest.json: $(STAMP) $(DEMO_CORPUS)
	$(BIN)/groundsearch build $(DEMO_CORPUS) --out $(DEMO_INDEX) --force

demo: $(DEMO_INDEX)/manifest.json
	$(BIN)/groundsearch info $(DEMO_INDEX)
	@for q in "who wrote the nicomachean ethics" "what is the reflectivity of a surface called" \
	          "when was abraham lincoln assassinated"; do \
		echo; echo "=== $$q"; $(BIN)/groundsearch query $(DEMO_INDEX) "$$q" -k 3 || exit 1; \
	done
	@echo; echo "To search it in a browser, run (then open the URL):"
	@echo "$(BIN)/groundsearch serve $(DEMO_INDEX) --host $(DEMO_HOST) --port $(DEMO_PORT)  # http://$(DEMO_HOST):$(DEMO_PORT)/"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy retriever index_build evaluation groundsearch web

test: lint chromium light
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py $(DEMO_CORPUS)

clean:
	rm -rf $(DEMO_INDEX) $(DEMO_INDEX).partial
