# Everything the README's commands need. `make run` and `make test` set up on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# torch 2.13.0 as a CPU build: this machine's pip finds it on disk; elsewhere set TORCH_INDEX to the CPU wheel index.
TORCH_INDEX ?=

.PHONY: setup index run test bench reader clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

index: setup
	$(VENV)/bin/rag index build

run: setup
	$(VENV)/bin/rag ui

test: setup
	@scripts/ensure-chromium || true
	$(PY) -m pytest

bench: setup
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	$(PY) benchmarks/bench_encoder.py
	$(PY) benchmarks/bench_langchain.py
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_query.py
	$(PY) benchmarks/bench_scale.py

# Retrain the shipped answer reader from the SQuAD files beside the repository (SQuAD 1.1 train and the SQuAD 2.0
# parts): about 1.5 hours on two cores in bf16; run it again after an interruption and it resumes from its last
# checkpoint. WordNet (Debian's wordnet-base) is installed first: training derives questions from it. It prints the
# held-out figures and writes rag/answer/model/ (reader.onnx and card.json), the reader the product ships.
EVAL ?= ../shared/eval
reader: setup
	scripts/ensure-wordnet
	$(VENV)/bin/rag reader train --squad $(EVAL)/squad/train-v1.1.json --squad $(EVAL)/squad2/train-part.json \
	  --squad $(EVAL)/squad2/dev-part.json --squad $(EVAL)/squad2/dev-rest.json \
	  --max-questions 36000 --epochs 1 --output rag/answer/model

clean:
	rm -rf $(VENV) index/gen-* index/CURRENT index/build.lock
