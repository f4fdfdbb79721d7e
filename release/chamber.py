"""The chamber checkpoints: compare training runs (other data, other starts) on one held-out split of real duos, and
write the winner as an embedded checkpoint folder with its preset, evaluation and model card.

    toccata chamber compare --dataset data/duo-violin --split test \
        --run duos=runs/violin-b --run quartets=runs/violin-a --run both=runs/violin-c --out runs/violin.json
    toccata chamber publish runs/violin.json toccata/checkpoints/piano-violin
    toccata evaluate --model toccata/checkpoints/piano-violin --dataset data/duo-violin --split test \
        --out toccata/checkpoints/piano-violin/evaluation
    toccata chamber card runs/violin.json toccata/checkpoints/piano-violin
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import toccata.tokenization  # noqa: F401  registers NotewiseTokenizer with AutoTokenizer, for load_checkpoint
from toccata.evaluation.likelihood import likelihood_table, model_log2probs, piece_sequences, summarise
from toccata.evaluation.parts import note_on_ids
from toccata.evaluation.report import goal_table, long_rests_text, note_share_text
from toccata.modeling.guards import GuardSettings
from toccata.modeling.hub import load_checkpoint
from toccata.modeling.presets import default_generation_config
from toccata.modeling.sampling import SamplerSettings
from toccata.release.publish import store_half
from toccata.training.data import load_pieces
from transformers import GenerationConfig

WEIGHTS_AND_TOKENIZER = ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json")  # no code
PRESET_SAMPLER = {"sampler": "weighted", "temperature": 1.0}  # the piano default's preset (docs/training.md)
PRESET_GUARDS = {"max_polyphony": 8, "max_note_beats": 6.0, "repeat_penalty": 1.0}  # the default's, 2 more notes: a
# double stop over a piano chord


def compare(dataset: str, split: str, runs: dict[str, str], ngram_order: int = 5, keep: str | None = None) -> dict:
    """Bits per note (every part's note-ons) and per token of each run on `split`, with the unigram and n-gram. The
    winner is the run with the fewest bits per note, or `keep` (a run's name) where the user chose otherwise."""
    if keep is not None and keep not in runs:
        raise ValueError(f"--keep {keep}: no run of that name; the runs are {', '.join(runs)}")
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
            "train_config": config,
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
    best = keep or min(rows, key=lambda name: rows[name]["bits_per_note"])
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
            f"| {name}: {training_data(row.get('train_config', {}))}; {init}, lr {row['learning_rate']:g}{mark} | "
            f"{row['bits_per_note']:.3f} | "
            f"{row['bits_per_token']:.3f} | {row['steps']} ({row['best_validation_loss']:.4f} nats) | "
            f"{row['train_runtime_s']:.0f} s |"
        )
    for name, row in comparison["baselines"].items():
        lines.append(f"| {name} (fitted on train) | {row['bits_per_note']:.3f} | {row['bits_per_token']:.3f} | | |")
    return lines


def training_data(config: dict) -> str:
    """What a run trained on, from its train_config: "`duo-violin` ×3 + `quartets-violin`", "`quartets-violin`"."""
    repeat, name = config.get("repeat", 1), f"`{Path(config.get('dataset', '?')).name}`"
    own = [] if repeat == 0 else [name if repeat == 1 else f"{name} ×{repeat}"]
    return " + ".join(own + [f"`{Path(extra).name}`" for extra in config.get("mix", [])])


def train_command(config: dict) -> str:
    """The `toccata train` command of a run's train_config (the settings the chamber runs change)."""
    words = ["toccata train", f"--dataset {config['dataset']}"]
    words += [f"--init-from {config['init_from']}"] if config.get("init_from") else []
    words += [f"--instruments {','.join(config['instruments'])}"] if config.get("instruments") else []
    words += [f"--mix {extra}" for extra in config.get("mix", [])]
    words += [f"--repeat {config['repeat']}"] if config.get("repeat", 1) != 1 else []
    flags = ("learning_rate", "max_steps", "batch_size", "window", "max_transpose", "eval_steps", "patience", "seed")
    for flag in (name for name in flags if config.get(name) is not None):
        option, value = "--" + flag.replace("_", "-"), config[flag]
        words.append(f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}")
    words.append(f"--out {config['output_dir']}")
    return " \\\n    ".join(words)


def _dataset_summary(folder: str) -> str:
    """The first paragraph of a built dataset's card after its title (what it holds and where from), or ""."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        return ""
    text = card.read_text(encoding="utf-8").split("\n---\n", 1)[-1]
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    summary = paragraphs[0].replace("\n", " ") if paragraphs else ""
    summary = re.sub(r" ?\(see \[[^]]*\]\(#[^)]*\)\)", "", summary)  # links into that card, not this one
    return re.sub(r"`/[^`]*/([^/`]+)`", r"`\1`", summary)  # a folder on the builder's machine: its name


def publish(comparison: dict, dest: str | Path) -> Path:
    """Copy the winning run's weights (in float16) and tokenizer into `dest` and give it the chamber preset."""
    src, dest = Path(comparison["runs"][comparison["winner"]]["folder"]), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in WEIGHTS_AND_TOKENIZER:
        shutil.copy2(src / name, dest / name)
    store_half(dest / "model.safetensors")  # half the bytes in the package; loads as float32 (docs/training.md)
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
    layout = config["instrument_layout"]
    strings = [name for name in layout if name != "piano"]
    part, instruments, checkpoint = " and ".join(strings), ",".join(["piano", *strings]), dest.name
    words = ", ".join(f"`{layout[s]['prefix']}67`/`end{layout[s]['prefix']}67` {s}" for s in strings)
    tracks = ", ".join(f"a {s.capitalize()} ({layout[s]['program']})" for s in strings)
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
                f"{row['sounding_share']:.1%} | {note_share_text(row)} | {long_rests_text(row)} |"
            )
    critic = sampler["critic"]["auc"] if sampler and sampler.get("critic") else None
    size_mb = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 2**20
    dataset = Path(comparison["dataset"]).name
    run_config = win.get("train_config", {})
    folders = ([run_config["dataset"]] if run_config.get("repeat", 1) else []) + list(run_config.get("mix", []))
    data_lines = "\n".join(f"- `{Path(f).name}`: {_dataset_summary(f)}" for f in folders)
    init_text = (
        f"warm-started from the embedded piano checkpoint (`{win['init_from']}`, classical piano by a hundred "
        "composers, docs/training.md): its vocabulary grown by the "
        f"{part}'s words, each new word starting from the piano word of the same pitch"
        if win["init_from"]
        else "trained from random initialisation"
    )
    long_rests = [
        f"{run['label']}: {run['parts'][name]['long_rest_pieces']} of {run['parts'][name]['pieces']} samples"
        for run in report["samplers"] if run.get("parts") for name in run["parts"]
        if "long_rest_pieces" in run["parts"][name]
    ]  # fmt: skip
    reproduce = "\n".join(train_command(row["train_config"]) for row in comparison["runs"].values())
    runs = " ".join(f"--run {name}={row['folder']}" for name, row in comparison["runs"].items())
    text = f"""---
library_name: transformers
license: cc-by-nc-sa-4.0
tags:
- music
- midi
- music-generation
- piano
{chr(10).join(f"- {s}" for s in strings)}
- lstm
- notewise
- toccata
pipeline_tag: text-generation
---

# Toccata piano + {part} checkpoint (NotewiseLSTM, chamber music)

An LSTM language model over *notewise* tokens for a piano and a {part} (`p60`/`endp60` piano, {words}, shared `waitN` = N
twelfths of a quarter note), made with Toccata; see docs/instruments.md.

- Architecture: embedding {config["embedding_size"]} → {config["num_hidden_layers"]} LSTM layers of {config["hidden_size"]} → {config["embedding_size"]}, tied head; vocabulary {config["vocab_size"]} tokens ({size_mb:.1f} MB folder).
- Generation preset: {PRESET_SAMPLER["sampler"]}; guards: grammar per part, at most {PRESET_GUARDS["max_polyphony"]} notes at once in all, at most 2 {part} notes at once (double stops), notes of at most {PRESET_GUARDS["max_note_beats"]:g} beats, repeat penalty {PRESET_GUARDS["repeat_penalty"]:g}, rest guard, part entry (a part silent for 16 beats is pushed to come back).

```bash
toccata generate --instruments {instruments} --seconds 30 -o {checkpoint}.mid      # MIDI with a Piano (0) and {tracks} track, and a WAV
```

## Training data

{data_lines}

The model was {init_text}; then at most {win["max_steps"]} AdamW steps (lr {win["learning_rate"]:g}, cosine schedule, batch 16 windows
of 512 tokens; best validation loss {win["best_validation_loss"]:.4f} nats/token on `{dataset}`'s validation split, at step
{str(win["best_checkpoint"]).rsplit("-", 1)[-1]} of {win["steps"]}) on {win["machine"]}, {win["torch_threads"]} torch thread(s), {win["train_runtime_s"]:.0f} s in all.

The piano pretraining data hold kernScores' scores (non-commercial research and education, treated as CC BY-NC-SA
4.0), so these weights are released under **CC BY-NC-SA 4.0**; Toccata's code is MIT-licensed. The Polish Music
Heritage scores are CC BY 4.0: Polish Music Heritage in Open Access (polishmusicheritage.pl), scores by the National
Library of Poland, the Jagiellonian Library and other Polish libraries, encoded to **kern; each piece's source is
in the datasets' `source_url`/`path` columns.

## Which data: measured

Bits per note on the **{comparison["split"]}** split of `{dataset}` (real duos, pieces never seen in training; notes are the
note-ons of both parts), same model, same start, same budget; each run's best checkpoint on `{dataset}`'s validation split:

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
| samples with a part resting more than 8 bars | {"; ".join(long_rests) or "not measured"} |

The piano default's goals, measured here the same way (the texture read as one piano part):

{chr(10).join(goal_table(report["goals"]))}

Per part (range: notes outside the part's range; double stops: note-ons making a third {part} note sound; grammar:
slips; sounds in: share of time steps where the part has a sounding note; note share: the part's share of all notes,
and the 5% / median / 95% over pieces; long rests: pieces where the part rests more than 8 bars):

| | part | notes | range | double stops | grammar | sounds in | note share | long rests |
|---|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(gen_rows)}

## Reproduce

```bash
{reproduce}
toccata chamber compare --dataset {comparison["dataset"]} --split {comparison["split"]} {runs} --out runs/{checkpoint}.json
toccata chamber publish runs/{checkpoint}.json toccata/checkpoints/{checkpoint}
toccata evaluate --model toccata/checkpoints/{checkpoint} --dataset {comparison["dataset"]} --split test \\
    --out toccata/checkpoints/{checkpoint}/evaluation
toccata chamber card runs/{checkpoint}.json toccata/checkpoints/{checkpoint}
```
"""
    (dest / "README.md").write_text(text, encoding="utf-8")
    return dest / "README.md"
