"""The chamber checkpoints: compare a warm-started run with one trained from scratch on a held-out split, and write
the winner as an embedded checkpoint folder with its preset, evaluation and model card.

    toccata chamber compare --dataset data/chamber-violin --split test \
        --run warm=runs/chamber/violin-warm --run scratch=runs/chamber/violin-scratch --out runs/chamber/violin.json
    toccata chamber publish runs/chamber/violin.json toccata/checkpoints/piano-violin
    toccata evaluate --model toccata/checkpoints/piano-violin --dataset data/chamber-violin --split test \
        --out toccata/checkpoints/piano-violin/evaluation
    toccata chamber card runs/chamber/violin.json toccata/checkpoints/piano-violin
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import toccata.tokenization  # noqa: F401  registers NotewiseTokenizer with AutoTokenizer, for load_checkpoint
from toccata.evaluation.likelihood import likelihood_table, model_log2probs, piece_sequences, summarise
from toccata.evaluation.parts import note_on_ids
from toccata.evaluation.report import goal_table
from toccata.modeling.guards import GuardSettings
from toccata.modeling.hub import load_checkpoint
from toccata.modeling.presets import default_generation_config
from toccata.modeling.sampling import SamplerSettings
from toccata.training.data import load_pieces
from transformers import GenerationConfig

WEIGHTS_AND_TOKENIZER = ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json")  # no code
PRESET_SAMPLER = {"sampler": "top_k", "k": 8, "temperature": 1.0}  # the piano default's preset
PRESET_GUARDS = {"max_polyphony": 8}  # the default's 6, plus room for a double stop over a piano chord


def compare(dataset: str, split: str, runs: dict[str, str], ngram_order: int = 5) -> dict:
    """Bits per note (every part's note-ons) and per token of each run on `split`, with the unigram and n-gram."""
    rows, baselines = {}, None
    for name, folder in runs.items():
        model, tok = load_checkpoint(folder)
        bos, eos = tok.bos_token_id, tok.eos_token_id
        held = piece_sequences(load_pieces(dataset, split, tok, original_key_only=True), bos, eos)
        notes = note_on_ids(tok.instrument_layout)
        if baselines is None:
            train = piece_sequences(load_pieces(dataset, "train", tok, original_key_only=True), bos, eos)
            table = likelihood_table(None, train, held, notes, model.config.vocab_size, bos, ngram_order)
            baselines = {r.name: r.to_dict() for r in table}
        result = summarise(name, model_log2probs(model, held), held, notes)
        summary = json.loads((Path(folder) / "train_summary.json").read_text())
        config = json.loads((Path(folder) / "train_config.json").read_text())
        rows[name] = {
            **result.to_dict(),
            "folder": str(folder),
            "init_from": config.get("init_from"),
            "learning_rate": config["learning_rate"],
            "max_steps": config["max_steps"],
            "steps": summary["steps"],
            "best_validation_loss": summary["best_validation_loss"],
            "best_checkpoint": summary["best_checkpoint"],
            "train_runtime_s": summary["train_runtime_s"],
            "train_tokens": summary["train_tokens"],
            "machine": summary["machine"],
            "torch_threads": summary["torch_threads"],
        }
    best = min(rows, key=lambda name: rows[name]["bits_per_note"])
    return {"dataset": dataset, "split": split, "runs": rows, "baselines": baselines, "winner": best}


def table(comparison: dict) -> list[str]:
    """Markdown rows: each run and the baselines, bits per note and per token on the split."""
    lines = [
        "| model | bits per note | bits per token | steps (best val. loss) | train time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in comparison["runs"].items():
        init = "warm start from the piano checkpoint" if row["init_from"] else "from scratch"
        mark = " **(kept)**" if name == comparison["winner"] else ""
        lines.append(
            f"| {name}: {init}, lr {row['learning_rate']:g}{mark} | {row['bits_per_note']:.3f} | "
            f"{row['bits_per_token']:.3f} | {row['steps']} ({row['best_validation_loss']:.4f} nats) | "
            f"{row['train_runtime_s']:.0f} s |"
        )
    for name, row in comparison["baselines"].items():
        lines.append(f"| {name} (fitted on train) | {row['bits_per_note']:.3f} | {row['bits_per_token']:.3f} | | |")
    return lines


def publish(comparison: dict, dest: str | Path) -> Path:
    """Copy the winning run's weights and tokenizer into `dest` and give it the chamber preset."""
    src, dest = Path(comparison["runs"][comparison["winner"]]["folder"]), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in WEIGHTS_AND_TOKENIZER:
        shutil.copy2(src / name, dest / name)
    config = json.loads((dest / "config.json").read_text())
    config.pop("auto_map", None)  # a run saved with code names files an embedded folder does not hold
    config["use_cache"] = True  # `Trainer` saved it off; `model(ids)` should return the recurrent state to go on from
    holder = type("Config", (), {k: config[k] for k in ("pad_token_id", "bos_token_id", "eos_token_id")})
    generation = default_generation_config(holder, SamplerSettings(**PRESET_SAMPLER), GuardSettings(**PRESET_GUARDS))
    assert isinstance(generation, GenerationConfig)
    generation.save_pretrained(dest)
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return dest


def card(comparison: dict, dest: str | Path) -> Path:
    """README.md of a chamber checkpoint: data and licences, the comparison, the evaluation it ships with."""
    dest = Path(dest)
    config = json.loads((dest / "config.json").read_text())
    part = next(name for name in config["instrument_layout"] if name != "piano")
    report = json.loads((dest / "evaluation" / "report.json").read_text())
    model_row = next(r for r in report["likelihood"] if r["name"] == "model")
    ngram_row = next(r for r in report["likelihood"] if r["name"].endswith("-gram"))
    win = comparison["runs"][comparison["winner"]]
    sampler = report["samplers"][0] if report["samplers"] else None
    gen_rows = []
    for label, parts in [("held-out test pieces", report["reference_parts"])] + [
        (run["label"], run["parts"]) for run in report["samplers"] if run.get("parts")
    ]:
        for name, row in parts.items():
            gen_rows.append(
                f"| {label} | {name} | {row['notes']:,} | {row['range']} | {row['double_stop']} | {row['grammar']} | "
                f"{row['sounding_share']:.1%} |"
            )
    critic = sampler["critic"]["auc"] if sampler and sampler.get("critic") else None
    size_mb = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 2**20
    dataset = Path(comparison["dataset"]).name
    init_text = (
        "warm-started from the embedded piano checkpoint (`toccata/checkpoints/default`, 1,783,908 parameters, "
        "trained on classical piano: Beethoven, Mozart, Chopin, Joplin, Hummel from kernScores, CC BY-NC-SA 4.0): "
        f"its vocabulary grown by the {part}'s words, each new word starting from the piano word of the same pitch"
        if win["init_from"]
        else "trained from random initialisation"
    )
    text = f"""---
library_name: transformers
license: cc-by-nc-sa-4.0
tags:
- music
- midi
- music-generation
- piano
- {part}
- lstm
- notewise
- toccata
pipeline_tag: text-generation
---

# Toccata piano + {part} checkpoint (NotewiseLSTM, chamber music)

An LSTM language model over *notewise* tokens for a piano and a {part} (`p60`/`endp60` piano, `{config["instrument_layout"][part]["prefix"]}67`/`end{config["instrument_layout"][part]["prefix"]}67` {part}, shared `waitN` = N
twelfths of a quarter note), made with Toccata; see docs/instruments.md.

- Architecture: embedding {config["embedding_size"]} → LSTM layers {config["hidden_size"]} → {config["hidden_size"]} → {config["embedding_size"]}, tied head; vocabulary {config["vocab_size"]} tokens ({size_mb:.1f} MB folder).
- Generation preset: top_k (k=8), guards: grammar per part, at most {PRESET_GUARDS["max_polyphony"]} notes at once in all, at most 2 {part} notes at once (double stops), rest guard.

```bash
toccata generate --instruments piano,{part} --seconds 30 -o duo.mid      # MIDI with a Piano (0) and a {part.capitalize()} ({config["instrument_layout"][part]["program"]}) track, and a WAV
```

## Training data

`{dataset}` (docs/instruments.md): string quartets, a trio sonata and the Grosse Fuge mapped to "{part} + piano"
(the {"top" if part == "violin" else "bottom"} string part is the {part}; every other part goes to the piano): 71 movements of Beethoven's string quartets
from kernScores (craigsapp/beethoven-string-quartets; kernScores terms: non-commercial research and education,
treated as CC BY-NC-SA 4.0) and 31 works or movements from the music21 corpus (Haydn op. 1 no. 1 and op. 74 no. 1,
Mozart K. 80, 155, 156, 458, Beethoven op. 133, Schumann op. 41 no. 1, Corelli op. 3 no. 1; music21's corpus
license.txt: encodings distributed with the encoders' permission, some not for commercial use). Split by piece 86/9/7,
{win["train_tokens"]:,} training tokens, no transpositions.

The model was {init_text}; then {win["steps"]} AdamW steps (lr {win["learning_rate"]:g}, cosine schedule, batch 16 windows
of 512 tokens; best validation loss {win["best_validation_loss"]:.4f} nats/token) on {win["machine"]}, {win["torch_threads"]} torch
thread, {win["train_runtime_s"]:.0f} s.

Because training data carry non-commercial share-alike terms (kernScores; and the piano pretraining data), these
weights are released under **CC BY-NC-SA 4.0**. Toccata's code is MIT-licensed.

## Pretraining on piano: measured

Bits per note on the **{comparison["split"]}** split of `{dataset}` (7 pieces never seen in training; notes are the note-ons of
both parts), same model size, same data, same budget ({win["max_steps"]} steps of 16 × 512 tokens, early stopping on validation
loss), each with its own learning rate:

{chr(10).join(table(comparison))}

## Evaluation

Measured by `toccata evaluate` on the test split ({report["settings"]["samples"]} samples × {report["settings"]["tokens"]} tokens from `<bos>`, seed {report["settings"]["seed"]}); full report:
[evaluation/report.md](evaluation/report.md).

| metric | value |
|---|---|
| bits_per_token | {model_row["bits_per_token"]:.4g} |
| bits_per_note | {model_row["bits_per_note"]:.4g} |
| {ngram_row["name"]}_bits_per_note | {ngram_row["bits_per_note"]:.4g} |
| critic_AUC ({sampler["label"] if sampler else "-"}, whole texture) | {f"{critic:.3f}" if critic is not None else "not measured"} |

The piano default's goals, measured here the same way (the texture read as one piano part):

{chr(10).join(goal_table(report["goals"]))}

Per part (range: notes outside the part's range; double stops: note-ons making a third {part} note sound; grammar:
slips; sounds in: share of time steps where the part has a sounding note):

| | part | notes | range | double stops | grammar | sounds in |
|---|---|---:|---:|---:|---:|---:|
{chr(10).join(gen_rows)}

## Reproduce

```bash
toccata train --dataset data/{dataset} --init-from toccata/checkpoints/default --instruments piano,{part} \\
    --learning-rate 1e-3 --max-transpose 0 --max-steps {win["max_steps"]} --batch-size 16 --window 512 --eval-steps 100 \\
    --patience 5 --seed 0 --device cpu --out runs/chamber/{part}-warm
toccata train --dataset data/{dataset} --instruments piano,{part} --learning-rate 3e-3 --embedding-dropout 0.02 \\
    --input-dropout 0.1 --hidden-dropout 0.1 --output-dropout 0.2 --weight-dropout 0.1 --max-transpose 0 \\
    --max-steps {win["max_steps"]} --batch-size 16 --window 512 --eval-steps 100 --patience 5 --seed 0 --device cpu \\
    --out runs/chamber/{part}-scratch
toccata chamber compare --dataset data/{dataset} --split test \\
    --run warm=runs/chamber/{part}-warm --run scratch=runs/chamber/{part}-scratch --out runs/chamber/{part}.json
toccata chamber publish runs/chamber/{part}.json toccata/checkpoints/piano-{part}
toccata evaluate --model toccata/checkpoints/piano-{part} --dataset data/{dataset} --split test --samplers top_k \\
    --out toccata/checkpoints/piano-{part}/evaluation
toccata chamber card runs/chamber/{part}.json toccata/checkpoints/piano-{part}
```
"""
    (dest / "README.md").write_text(text, encoding="utf-8")
    return dest / "README.md"
