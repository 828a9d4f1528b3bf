# Common tasks. SHARED points at the research data beside the repo (never copied into it).
PYTHON ?= python3
SHARED ?= ../shared/data
MODEL_DIR ?= models/default
# more training options, e.g. EXTRA="--extra-data feedback.jsonl" (operators' corrections)
EXTRA ?=

.PHONY: install test lint-imports model evaluate bench

install:  ## the classical path plus the service and batch extras
	$(PYTHON) -m pip install -q -e '.[serve,batch]'

test:  ## install what the tests use and run them (this is what .ci/run calls)
	$(PYTHON) -m pip install -q -e '.[serve,batch,spark,test]'
	$(PYTHON) -m pytest -q

lint-imports:  ## check the import layering (contracts in pyproject.toml, [tool.importlinter])
	PYTHONPATH=$(CURDIR) lint-imports --no-cache

model:  ## retrain the bundled default model reproducibly (about a minute on 2 cores)
	$(PYTHON) -m chuishao.cli train $(SHARED)/whistle/train.jsonl \
		--config configs/default.yaml \
		--corpus $(SHARED)/corpus.jsonl --extra-labels data/labels/extra-rare.csv --extra-labels data/labels/extra-corpus.csv \
		--extra-data data/authored/w02.jsonl --extra-data data/authored/w03.jsonl \
		--extra-data data/authored/w07.jsonl --extra-data data/authored/w12.jsonl --extra-data data/authored/w14.jsonl \
		--exclude $(SHARED)/whistle/test.jsonl $(EXTRA) \
		-o $(MODEL_DIR)

evaluate:  ## figures of the default model on the held-out test split, with a report
	$(PYTHON) -m chuishao.cli test $(MODEL_DIR) $(SHARED)/whistle/test.jsonl -o reports/default
