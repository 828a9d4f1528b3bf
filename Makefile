# Common tasks. SHARED points at the research data beside the repo (never copied into it).
PYTHON ?= python3
SHARED ?= ../shared/data
MODEL_DIR ?= models/default
# more training options, e.g. EXTRA="--extra-data feedback.jsonl" (operators' corrections) or "--classifier.C 1.0"
EXTRA ?=

# the fast test tier of make check: no Spark, no browser, no killed or interrupted processes, no real-data training
FAST ?= not spark and not browser and not processes and not slow

.PHONY: install deps check test lint-imports model config evaluate bench

install:  ## the classical path plus the service and batch extras
	$(PYTHON) -m pip install -q -e '.[serve,batch]'

deps:  ## install the package with everything the checks and tests use (ruff, mypy, import-linter, pytest, ...)
	$(PYTHON) -m pip install -q -e '.[serve,batch,spark,test]'

check:  ## lint, types, import layering and the fast tests: under a minute (make deps first, once)
	$(PYTHON) -m ruff check chuishao tests bench
	$(PYTHON) -m mypy chuishao
	PYTHONPATH=$(CURDIR) lint-imports --no-cache
	PYTHONPATH=$(CURDIR) $(PYTHON) -m pytest -q -m "$(FAST)"

test: deps  ## install what the tests use and run them all (.ci/run runs make check, then this)
	PYTHONPATH=$(CURDIR) $(PYTHON) -m pytest -q

lint-imports:  ## check the import layering (contracts in pyproject.toml, [tool.importlinter])
	PYTHONPATH=$(CURDIR) lint-imports --no-cache

model:  ## retrain the bundled default model reproducibly from its whole recipe (about a minute on 2 cores)
	$(PYTHON) -m chuishao.cli train --config configs/default.yaml --paths.shared $(SHARED) -o $(MODEL_DIR) $(EXTRA)

config:  ## rewrite configs/default.yaml in full from chuishao/config.py (its values kept, new keys added)
	$(PYTHON) -m chuishao.cli config show --config configs/default.yaml > configs/default.yaml.tmp
	mv configs/default.yaml.tmp configs/default.yaml

evaluate:  ## figures of the default model on the held-out test split, with a report
	$(PYTHON) -m chuishao.cli test $(MODEL_DIR) $(SHARED)/whistle/test.jsonl -o reports/default
