# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
# torch==2.13.0 is installed first, on its own: it is a CPU wheel on this machine's disk, while any other torch
# spec makes pip pull several GB of CUDA packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
WORK ?= bach/bwv66.6

.PHONY: setup system-packages run test bench clean dataset

setup: system-packages $(VENV)/.installed

# Debian packages for audio (FluidSynth + a General MIDI soundfont) and the browser tests (Chromium). Installed when
# missing and we are root (CI, containers); otherwise a hint is printed and those features say they are unavailable.
SYSTEM_PACKAGES := chromium fluidsynth fluid-soundfont-gm
system-packages:
	@if command -v chromium >/dev/null && command -v fluidsynth >/dev/null && [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else \
		echo "note: install $(SYSTEM_PACKAGES) (e.g. sudo apt-get install $(SYSTEM_PACKAGES)) for audio and browser tests"; \
	fi

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
