# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
# torch==2.13.0 is installed first, on its own: it is a CPU wheel on this machine's disk, while any other torch
# spec makes pip pull several GB of CUDA packages.
PYTHON ?= python3
# torch before the package, on its own. Another machine: TORCH_PIP_ARGS="--index-url <PyTorch's CPU index>".
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out

.PHONY: setup system-packages run test bench clean dataset default-dataset default-train default-preset default-critic \
	default-tune default-final-critic default-checkpoint FORCE

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

# The package is installed as a link tree (setuptools' strict editable mode: build/__editable__.*/toccata/ links to
# the sources, on a plain sys.path entry). The default editable mode is an import hook that Python asks only after
# the working directory, so from the folder that holds a clone named toccata/, that clone hid the package
# (`import toccata.modeling` failed). A link tree sees edits at once but not new or removed files: the install is
# redone whenever the list of package files changes (after adding a module, `make setup` or any target does it).
PACKAGE_FILES := $(VENV)/.package-files
$(PACKAGE_FILES): FORCE
	@mkdir -p $(VENV)
	@find toccata tokenization modeling dataset_builder training evaluation classifiers release demo -type f \
		-not -path '*/__pycache__/*' -not -name '*.pyc' -not -name '*.pyi' | LC_ALL=C sort > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

FORCE:

$(VENV)/.installed: pyproject.toml $(PACKAGE_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
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

# The embedded default checkpoint, from scratch: a piano dataset from folders of scores (with a split of composers
# held out whole) -> train (all keys, composer labels) -> fine-tune (original keys) -> preset chosen on the validation
# split -> evaluate (both test splits) -> publish. The data: the piano folders of ../shared/data-style collections
# (kernScores' piano repositories and the Polish Music Heritage piano scores; docs/training.md), e.g.
# `make default-checkpoint CORPUS="path/kernscores/piano path/polish-scores/piano"`. One script for any machine:
# training runs NPROC processes under torchrun (CPU: one per core; on a GPU machine NPROC=1 and training picks CUDA).
# Interrupted? Run it again: the build and the training resume.
CORPUS ?=
CORPUS_LICENSE ?= kernScores terms (non-commercial research and education; treat as CC BY-NC-SA 4.0)
PIANO ?= data/piano
RUN ?= runs/default
NPROC ?= 2
UNSEEN_COMPOSERS ?= 12
MODEL_ARGS ?= --embedding-size 256 --hidden-size 512 --num-hidden-layers 3 --embedding-dropout 0.02 \
	--input-dropout 0.1 --hidden-dropout 0.1 --output-dropout 0.2 --weight-dropout 0.1
TRAIN_ARGS ?= --epochs 16 --batch-size 16 --window 512 --patience 4 --eval-steps 100 --composer-min-pieces 15 $(MODEL_ARGS)
FINETUNE_ARGS ?= --epochs 2 --learning-rate 5e-4 --max-transpose 0 --batch-size 16 --window 512 --patience 3 --eval-steps 100
# The preset: every candidate on validation (100 samples, seed 1; docs/training.md) in one search that writes
# RUN/preset_search.md and .json (copied into the published folder's evaluation/). The guards every candidate shares
# (6 voices, notes ended after 6 beats) come from the pre-screen on an early checkpoint (docs/training.md).
GUARDS := max_polyphony=6 max_note_beats=6
PRESET_CANDIDATES ?= "sampler=top_k k=16 calmness=0 $(GUARDS)" "sampler=top_k k=32 calmness=0 $(GUARDS)" \
	"sampler=top_k k=16 calmness=0 $(GUARDS) repeat_penalty=1" "sampler=top_k k=32 calmness=0 $(GUARDS) repeat_penalty=1" \
	"sampler=top_k k=32 calmness=0 $(GUARDS) repeat_penalty=2" "sampler=top_k k=8 calmness=0 $(GUARDS) repeat_penalty=2" \
	"sampler=top_k k=64 calmness=0 $(GUARDS) repeat_penalty=1" "sampler=weighted calmness=0 $(GUARDS)" \
	"sampler=weighted calmness=0 $(GUARDS) repeat_penalty=1" "sampler=weighted calmness=0 $(GUARDS) repeat_penalty=2" \
	"sampler=weighted temperature=0.95 calmness=0 $(GUARDS) repeat_penalty=1" \
	"sampler=weighted calmness=0.25 $(GUARDS) repeat_penalty=1"
PRESET_SEARCH_ARGS ?= --samples 100 --seed 1
# Licence files whose opening lines the card must carry (CC BY collections whose licence is not in the source folder)
ATTRIBUTIONS ?=
TRAIN := OMP_NUM_THREADS=1 $(BIN)/torchrun --nproc_per_node $(NPROC) --master_port 29531 -m toccata train
default-dataset: setup
	@test -f $(PIANO)/dataset_info.json || test -n "$(CORPUS)" || { echo "give CORPUS=folders of piano scores (see docs/training.md)"; exit 2; }
	test -f $(PIANO)/dataset_info.json || $(BIN)/toccata build-dataset $(foreach f,$(CORPUS),--source $(f)) \
		--out $(PIANO) --num-proc $(NUM_PROC) --splits 0.86,0.07,0.07 --unseen-composers $(UNSEEN_COMPOSERS) \
		--license "$(CORPUS_LICENSE)"

default-train: default-dataset
	test -f $(RUN)-pretrain/train_summary.json || $(TRAIN) --dataset $(PIANO) --out $(RUN)-pretrain $(TRAIN_ARGS) \
		$(if $(wildcard $(RUN)-pretrain/checkpoints/checkpoint-*),--resume)
	test -f $(RUN)/train_summary.json || $(TRAIN) --dataset $(PIANO) --init-from $(RUN)-pretrain --out $(RUN) \
		$(FINETUNE_ARGS) $(if $(wildcard $(RUN)/checkpoints/checkpoint-*),--resume)

default-preset: default-train
	test -f $(RUN)/preset.txt || { OMP_NUM_THREADS=1 $(BIN)/toccata preset-search $(RUN) --dataset $(PIANO) \
		$(PRESET_SEARCH_ARGS) --candidates $(PRESET_CANDIDATES) > $(RUN)/preset.new \
		&& mv $(RUN)/preset.new $(RUN)/preset.txt; }
	$(BIN)/toccata preset $(RUN) $$(cat $(RUN)/preset.txt)

# Preference tuning (docs/critic.md): a critic on the run's encoder, trained against the run's own samples, real music
# spoilt in ten ways and weaker models' samples (CRITIC_WEAKER: models tuned against earlier critics, whose tricks it
# must not reward; the shipped critic had two: docs/critic.md), then two rounds of DPO against it, anchored to the
# training split's real music. The tuned model is the published default. Beside it is embedded a second critic, on the
# tuned model's encoder and against its samples (a tuned model learns to fool the critic it was tuned against), trained
# three times longer with more of the spoilt music, each spoilt excerpt beside its original (FINAL_CRITIC_ARGS;
# docs/critic.md, session 8).
CRITIC_RUN ?= $(RUN)-critic
TUNED_RUN ?= $(RUN)-tuned
FINAL_CRITIC_RUN ?= $(RUN)-tuned-critic
CRITIC_WEAKER ?=
CRITIC_ARGS ?= --steps 800 --eval-every 100 --negatives generator=0.45,corrupted=0.45,weaker=0.1 \
	--license cc-by-nc-sa-4.0
FINAL_CRITIC_ARGS ?= --steps 2400 --eval-every 200 --negatives generator=0.35,corrupted=0.55,weaker=0.1 --paired \
	--license cc-by-nc-sa-4.0
TUNE_ARGS ?= --prompt-from both --prompts 48 --candidates 8 --beats 32 --rounds 2 --learning-rate 2e-4 --anchor 5
default-critic: default-preset
	test -f $(CRITIC_RUN)/metrics.json || OMP_NUM_THREADS=$(NPROC) $(BIN)/toccata critic train --generator $(RUN) \
		--dataset $(PIANO) --out $(CRITIC_RUN) $(CRITIC_ARGS) $(foreach w,$(CRITIC_WEAKER),--weaker-from $(w)) \
		$(if $(wildcard $(CRITIC_RUN)/checkpoints/checkpoint-*),--resume)

default-tune: default-critic
	test -f $(TUNED_RUN)/tune_summary.json || OMP_NUM_THREADS=$(NPROC) $(BIN)/toccata tune --generator $(RUN) \
		--critic $(CRITIC_RUN) --out $(TUNED_RUN) --dataset $(PIANO) $(TUNE_ARGS) \
		$(if $(wildcard $(TUNED_RUN)/tune_config.json),--resume)

default-final-critic: default-tune
	test -f $(FINAL_CRITIC_RUN)/metrics.json || OMP_NUM_THREADS=$(NPROC) $(BIN)/toccata critic train \
		--generator $(TUNED_RUN) --dataset $(PIANO) --out $(FINAL_CRITIC_RUN) $(FINAL_CRITIC_ARGS) \
		$(foreach w,$(CRITIC_WEAKER),--weaker-from $(w)) $(if $(wildcard $(FINAL_CRITIC_RUN)/checkpoints/checkpoint-*),--resume)

default-checkpoint: default-final-critic
	OMP_NUM_THREADS=2 $(BIN)/toccata evaluate --model $(TUNED_RUN) --dataset $(PIANO) --split unseen_composers \
		--out $(TUNED_RUN)/evaluation-unseen-composers
	OMP_NUM_THREADS=2 $(BIN)/toccata evaluate --model $(TUNED_RUN) --dataset $(PIANO) --split test \
		--out $(TUNED_RUN)/evaluation
	$(BIN)/toccata publish $(TUNED_RUN) toccata/checkpoints/default --half \
		$(foreach f,$(ATTRIBUTIONS),--attribution $(f)) \
		--title "Toccata default checkpoint (NotewiseLSTM, classical piano by a hundred composers, preference-tuned)"
	cp $(RUN)/preset_search.md $(RUN)/preset_search.json toccata/checkpoints/default/evaluation/
	rm -rf toccata/checkpoints/critic && mkdir -p toccata/checkpoints/critic
	cp $(FINAL_CRITIC_RUN)/*.json $(FINAL_CRITIC_RUN)/README.md $(FINAL_CRITIC_RUN)/model.safetensors \
		toccata/checkpoints/critic/
	$(BIN)/python -c "import sys, pathlib, toccata.release.publish as p; p.store_half(pathlib.Path(sys.argv[1]))" \
		toccata/checkpoints/critic/model.safetensors

clean:
	rm -rf $(VENV) $(OUT) build dist *.egg-info
