"""The model card of a classifier checkpoint: what it does, its data, its licence, and the numbers it measured."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCardData

from .corruptions import CORRUPTIONS
from .data import SAMPLER_SPREAD

TAGS = ["music", "midi", "piano", "lstm", "notewise", "toccata", "text-classification"]

WHAT = {
    "critic": (
        "`P(human)`: the probability that a human wrote a piece of piano music, per excerpt, averaged over a "
        "piece's excerpts. Trained on real music against the generator's samples, weaker models' samples and real "
        "excerpts spoilt in ways a listener hears. Classes: 0 `generated`, 1 `human`."
    ),
    "composer": "Names the composer of a piano piece, from its excerpts (mean log-probability over them).",
}


def _rows(result: dict, keys: list[str]) -> str:
    return "\n".join(f"| {key} | {result[key]:.3f} |" for key in keys if key in result)


def _check_tables(checks: dict) -> str:
    """The critic check per split: ROC AUC of real excerpts against each kind of negative, and mean P(human)."""
    if not checks:
        return ""
    splits = list(checks)
    kinds = list(next(iter(checks.values()))["auc"])
    lines = [
        "## Does it judge music?",
        "",
        (
            "Real excerpts (512 tokens, two per piece) of pieces never seen in training against the same excerpts "
            "spoilt, and against samples; ROC AUC of real against each kind (1: always prefers the real; 0.5: chance)."
        ),
        "",
        "| negatives | " + " | ".join(f"ROC AUC, {s}" for s in splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    lines += [
        f"| {k} | " + " | ".join(f"{checks[s]['auc'].get(k, float('nan')):.3f}" for s in splits) + " |" for k in kinds
    ]
    lines += ["", "Reliability (all excerpts of the first split, real and negatives weighted to equal totals):", ""]
    lines += ["| mean P(human) | share real | excerpts |", "|---:|---:|---:|"]
    lines += [f"| {p:.2f} | {share:.2f} | {n} |" for p, share, n in checks[splits[0]]["reliability"]]
    return "\n".join(lines) + "\n"


def card_text(task, summary: dict) -> str:
    """Markdown with YAML front matter; every number comes from `summary` (measured, never typed in)."""
    result = summary["test"]
    data = ModelCardData(
        library_name="transformers",
        license=task.license,
        tags=TAGS,
        metrics=["roc_auc", "accuracy"] if task.task == "critic" else ["accuracy"],
        pipeline_tag="text-classification",
    )
    init = (
        f"Encoder initialised from the generator `{task.generator}`, fine-tuned with gradual unfreezing (one more "
        f"layer group every {summary['fit']['unfreeze_every']} steps, from the head down) and discriminative "
        f"learning rates (÷{summary['fit']['lr_decay']} per group)"
        if task.pretrained
        else "Trained from random initialisation (same sizes as the generator's encoder)"
    )
    if task.task == "critic":
        keys = ["excerpt_roc_auc", "excerpt_accuracy", "piece_roc_auc", "piece_accuracy"]
        table = _rows(result, keys) + "\n" + _rows(result, [f"features_lr_{k}" for k in keys])
        use = "toccata critic score piece.mid other.mid --model FOLDER    # P(human) per file"
        api = "from toccata.classifiers.model import critic_scores\nprint(critic_scores(model, tokenizer, [tokens]))"
    else:
        keys = ["piece_top1", "piece_top3", "excerpt_top1"]
        table = _rows(result, keys) + "\n" + _rows(result, [f"majority_{k}" for k in keys])
        table += "\n" + _rows(result, [f"features_lr_{k}" for k in keys])
        use = "toccata composer predict piece.mid --model FOLDER"
        api = (
            "from toccata.classifiers.model import sequence_probabilities\n"
            "probs = sequence_probabilities(model, tokenizer, [tokens])  # (1, num_labels); model.config.id2label"
        )
    samples, checks = "", ""
    if task.task == "critic":
        spread = "; ".join(", ".join(f"{k}={v}" for k, v in o.items()) or "the preset" for o in SAMPLER_SPREAD)
        samples = (
            f"Negatives in shares `{task.negatives}`: the generator's samples ({task.sample_beats:g} quarter notes "
            f"each from scratch, the generator's preset guards, batches of 16 cycling through these samplers: "
            f"{spread}); real training excerpts corrupted on the fly ({', '.join(CORRUPTIONS)}, in turn"
            + (", each beside its unspoilt twin in the batch" if task.paired else "")
            + f"); weaker models' samples (the generator at T {task.weaker_temperature:g}, an untrained model of its "
            f"size, a 5-gram of the training pieces{''.join(f', {p}' for p in task.weaker_from)}). Validation and test negatives use seeds never used in training. "
        )
        checks = _check_tables(summary.get("check", {}))
    classes = ", ".join(f"{i} `{name}`" for i, name in enumerate(summary["classes"]))
    data_notes = "; ".join(f"{split}: {text}" for split, text in summary["data"].items())
    command = (
        f"toccata {task.task} train --dataset {task.dataset} --out {task.output_dir}"
        + (f" --generator {task.generator}" if task.generator else "")
        + f" --steps {task.steps} --eval-every {task.eval_every} --excerpt-tokens {task.excerpt_tokens} --seed {task.seed}"
        + f" --license {task.license}"
        + ("" if task.pretrained else " --from-scratch")
        + (
            f" --negatives {task.negatives} --weaker-temperature {task.weaker_temperature:g}"
            + "".join(f" --weaker-from {path}" for path in task.weaker_from)
            + (" --paired" if task.paired else "")
            if task.task == "critic"
            else f" --min-pieces {task.min_pieces}"
        )
    )
    body = f"""
# Toccata {task.task} (NotewiseLSTM sequence classifier)

{WHAT[task.task]}

- Model: `NotewiseLSTMForSequenceClassification`, the generator's encoder (embedding and LSTM layers) with concat
  pooling (last, max and mean of the top layer over the excerpt) and a linear head. Classes: {classes}.
- Input: notewise tokens; excerpts of {task.excerpt_tokens} tokens (longer pieces: the mean over up to 16 excerpts).
- Loads with `AutoModelForSequenceClassification.from_pretrained(FOLDER)` after `import toccata.modeling`, or with
  `trust_remote_code=True` without the package.

## Use

```bash
{use}
```

```python
from toccata.classifiers.model import load_classifier
model, tokenizer = load_classifier("FOLDER")
{api}
```

## Training data

Dataset `{Path(str(task.dataset)).name}`, split by piece ({data_notes}). {samples}{init}. {task.steps} steps of
{task.batch_size} random excerpts, each transposed by up to ±{task.max_transpose} semitones; AdamW, learning rate
{task.learning_rate:g} with a slanted-triangular schedule; the weights with the lowest validation loss are kept.
Training took {summary["fit_seconds"]} s on {summary["machine"]} with {summary["torch_threads"]} torch thread(s).
The licence of the data and of the generator apply to these weights.

## Evaluation

On the test split: pieces (and, for the critic, generated samples with seeds) never seen in training.
Excerpt rows are per excerpt; piece rows average each piece's (or sample's) excerpts.

| metric | value |
|---|---|
{table}

{checks}
Reproduce: `{command}`
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


__all__ = ["card_text"]
