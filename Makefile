# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
# torch==2.13.0 is installed first, on its own: it is a CPU wheel on this machine's disk, while any other torch
# spec makes pip pull several GB of CUDA packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
WORK ?= bach/bwv66.6

.PHONY: setup run test bench clean dataset

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job: a piece of music21's bundled corpus -> notewise text -> MIDI file.
run: setup
	$(BIN)/toccata tokenize corpus:$(WORK) -o $(OUT)/$(notdir $(WORK)).txt
	$(BIN)/toccata detokenize $(OUT)/$(notdir $(WORK)).txt -o $(OUT)/$(notdir $(WORK)).mid

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/tokenizer_speed.py
	$(BIN)/python benchmarks/generate.py

# A dataset from music21's corpus (its keyboard works; ~2 minutes on 2 cores): parquet shards, README.md card,
# LICENSE and rejects.jsonl in $(DATASET). `make dataset SOURCE=path/to/midi` builds from a folder instead.
DATASET ?= data/toccata-corpus
SOURCE ?= corpus
NUM_PROC ?= 2
dataset: setup
	$(BIN)/toccata build-dataset --source $(SOURCE) --out $(DATASET) --num-proc $(NUM_PROC)

clean:
	rm -rf $(VENV) $(OUT) build dist *.egg-info
