# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
# torch==2.13.0 is installed first, on its own: it is a CPU wheel on this machine's disk, while any other torch
# spec makes pip pull several GB of CUDA packages.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: setup system-packages run test bench clean dataset default-checkpoint

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

# The main job: the embedded default checkpoint composes 64 beats (seeded, so the same piece every time) to MIDI,
# and to WAV where FluidSynth is installed. `make run SEED=7 BEATS=128` for another piece.
SEED ?= 0
BEATS ?= 64
run: setup
	$(BIN)/toccata generate --seed $(SEED) --beats $(BEATS) --save-tokens -o $(OUT)/toccata-$(SEED).mid

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

# The embedded default checkpoint, from scratch: dataset -> train -> preset -> evaluate (test split) -> publish.
# Training takes ~16 minutes on one CPU core, evaluation ~1 minute. Interrupted? Run it again: training resumes.
# PRESET (the sampler and guard defaults users get) was chosen on the validation split: docs/training.md.
RUN ?= runs/default
TRAIN_ARGS ?= --epochs 40 --batch-size 16 --embedding-dropout 0.02 --input-dropout 0.1 --hidden-dropout 0.1 \
	--output-dropout 0.2 --weight-dropout 0.1
PRESET ?= temperature=0.9 calmness=0.75
default-checkpoint: setup
	test -f $(DATASET)/dataset_info.json || $(MAKE) dataset
	OMP_NUM_THREADS=1 $(BIN)/toccata train --dataset $(DATASET) --out $(RUN) $(TRAIN_ARGS) $(if $(wildcard $(RUN)/checkpoints/checkpoint-*),--resume)
	$(BIN)/python -m toccata.training.preset $(RUN) $(PRESET)
	OMP_NUM_THREADS=1 $(BIN)/toccata evaluate --model $(RUN) --dataset $(DATASET) --split test --out $(RUN)/evaluation
	$(BIN)/python -m toccata.training.publish $(RUN) toccata/checkpoints/default

clean:
	rm -rf $(VENV) $(OUT) build dist *.egg-info
