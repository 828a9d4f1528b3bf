# Common tasks. SHARED points at the research data beside the repo (never copied into it).
PYTHON ?= python3
SHARED ?= ../shared/data
MODEL_DIR ?= models/default
# more training options, e.g. EXTRA="--extra-data feedback.jsonl" (operators' corrections) or "--classifier.C 1.0"
EXTRA ?=

.PHONY: install test lint-imports model config evaluate bench

install:  ## the classical path plus the service and batch extras
	$(PYTHON) -m pip install -q -e '.[serve,batch]'

test:  ## install what the tests use and run them (this is what .ci/run calls)
	$(PYTHON) -m pip install -q -e '.[serve,batch,spark,test]'
	$(PYTHON) -m pytest -q

lint-imports:  ## check the import layering (contracts in pyproject.toml, [tool.importlinter])
	PYTHONPATH=$(CURDIR) lint-imports --no-cache

model:  ## retrain the bundled default model reproducibly from its whole recipe (about a minute on 2 cores)
	$(PYTHON) -m chuishao.cli train --config configs/default.yaml --paths.shared $(SHARED) -o $(MODEL_DIR) $(EXTRA)

config:  ## rewrite configs/default.yaml in full from chuishao/config.py (its values kept, new keys added)
	$(PYTHON) -m chuishao.cli config show --config configs/default.yaml > configs/default.yaml.tmp
	mv configs/default.yaml.tmp configs/default.yaml

evaluate:  ## figures of the default model on the held-out test split, with a report
	$(PYTHON) -m chuishao.cli test $(MODEL_DIR) $(SHARED)/whistle/test.jsonl -o reports/default
