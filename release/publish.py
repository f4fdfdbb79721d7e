"""Turn a trained and evaluated run into a shippable checkpoint folder whose model card carries the measured numbers.

    toccata publish RUN DEST [--report RUN/evaluation] [--half]

RUN is a `toccata train` run or a `toccata tune` run (the card then tells the tuned generator's training and the
tuning). Used by `make default-checkpoint` to write `toccata/checkpoints/default`. The card's numbers come only from the
report that `toccata evaluate` wrote (report.json); report.md and its plots are copied into DEST/evaluation/.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import toccata.tokenization  # noqa: F401  registers NotewiseTokenizer with AutoTokenizer, for load_checkpoint
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from toccata.dataset_builder.card import quote_attribution
from toccata.evaluation.report import goal_table, likelihood_table
from toccata.modeling.hub import CardInfo, load_checkpoint, save_checkpoint
from toccata.modeling.presets import preset_from_generation_config
from toccata.training.data import read_rows

REPORT_FILES = ("report.md", "report.json", "*.png")  # what `toccata evaluate` writes: the report and its plots
UNSEEN_REPORT = "evaluation-unseen-composers"  # RUN/ and DEST/: `toccata evaluate --split unseen_composers`
PRESET_FILES = ("preset_search.md", "preset_search.json")  # `toccata preset-search`'s table, kept with the report
TUNE_FILES = ("tune_summary.json", "tune_config.json")  # a `toccata tune` run's record, kept with the report
NON_COMMERCIAL = ("NC", "non-commercial", "noncommercial")  # a data licence naming any of these binds the weights
WEIGHTS_NC_LICENSE = "cc-by-nc-sa-4.0"
TUNE_CONFIG = TUNE_FILES[1]  # marks a `toccata tune` output folder


def data_summary(dataset: str, split: str = "train") -> dict[str, Counter]:
    """Pieces of `split` per composer, per licence and per source (original keys only), read from the dataset."""
    counts: dict[str, Counter] = {"composer": Counter(), "license": Counter(), "source": Counter()}
    for row in read_rows(dataset, split, ("transposition", "composer", "license", "source")):
        if row["transposition"]:
            continue
        for key, counter in counts.items():
            counter[row.get(key) or "unknown"] += 1
    return counts


def weights_license(licenses: Counter) -> tuple[str, str]:
    """(card licence id, note): non-commercial share-alike when any training data carries non-commercial terms."""
    bound = sorted(name for name in licenses if any(word.lower() in name.lower() for word in NON_COMMERCIAL))
    if bound:
        return WEIGHTS_NC_LICENSE, (
            f"Some training data carry non-commercial, share-alike terms ({'; '.join(bound)}), so these weights are "
            "released under **CC BY-NC-SA 4.0**: non-commercial use, with attribution, derivatives under the same "
            "terms. Toccata's code is MIT-licensed; this licence covers the weights only."
        )
    return "mit", "The training data carry no non-commercial terms; the weights are released under the MIT licence."


def _counts(counter: Counter, limit: int = 8) -> str:
    shown = [f"{name} ({count})" for name, count in counter.most_common(limit)]
    rest = sum(counter.values()) - sum(count for _, count in counter.most_common(limit))
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")


def _describe(settings: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items() if value is not None) or "defaults"


def _hardware(summary: dict) -> str:
    """Where and how long the run trained, as far as its summary says."""
    text = summary["device"]
    if summary.get("machine"):
        text += f" ({summary['machine']}, {summary.get('torch_threads', '?')} torch thread(s))"
    if summary.get("train_runtime_s"):
        text += f" in {summary['train_runtime_s']:.0f} s"
    return text


def _critic_lines(report: dict) -> list[str]:
    """Per sampler: how easily a fresh classifier tells its samples from held-out music, and what gives them away."""
    lines = []
    for run in report.get("samplers", []):
        critic = run.get("critic")
        if critic:
            telling = "; ".join(
                f"{row['feature']} ({row['real_mean']:.3g} held-out, {row['generated_mean']:.3g} generated)"
                for row in critic["separating"][:3]
            )
            lines.append(f"- {run['label']}: critic ROC AUC {critic['auc']:.3f}; most telling: {telling}")
    if not lines:
        return []
    head = (
        "Critic (a fresh gradient-boosting classifier on musical features of 600-token excerpts, cross-validated; "
        "0.5 = indistinguishable from held-out music):"
    )
    return [head, "", *lines, ""]


def evaluation_section(report: dict) -> tuple[dict[str, float], str]:
    """(metrics, evaluation markdown) for `CardInfo` from a report.json."""
    metrics = {}
    for row in report["likelihood"]:
        prefix = "" if row["name"] == "model" else row["name"].replace("-", "") + "_"
        metrics[f"{prefix}bits_per_token"] = row["bits_per_token"]
        metrics[f"{prefix}bits_per_note"] = row["bits_per_note"]
    for goal in report["goals"]:
        if goal["value"] is not None:
            metrics[goal["name"].replace(" ", "_").replace("-", "_")] = goal["value"]
    settings = report.get("settings", {})
    evaluation = "\n".join(
        [
            (
                f"Measured by `toccata evaluate` on the **{report['split']}** split of `{report['dataset']}` "
                f"(pieces never seen in training; original keys), {settings.get('samples', '?')} samples × "
                f"{settings.get('tokens', '?')} tokens per sampler from `<bos>`, fixed seeds. Full report with plots: "
                "[evaluation/report.md](evaluation/report.md)."
            ),
            "",
            f"Default preset (what `generate`, the pipeline and the demo use unless told otherwise): "
            f"{_describe(settings.get('preset_sampler', {}))}; guards: {_describe(settings.get('preset_guards', {}))}.",
            "",
            *goal_table(report["goals"]),
            "",
            *likelihood_table(report["likelihood"]),
            "",
            *_critic_lines(report),
            "Reproduce: `make default-checkpoint CORPUS=\"path/kernscores/piano path/polish-scores/piano\" "
            "ATTRIBUTIONS=path/polish-scores/LICENSE.txt` (builds the dataset, trains, chooses the preset on "
            "validation, trains a critic and preference-tunes against it, evaluates on both test splits, writes "
            "this folder; docs/training.md).",
        ]
    )
    return metrics, evaluation


def training_section(summary: dict, config: dict, data: dict[str, Counter] | None = None) -> str:
    """The card's training-data markdown from a `toccata train` run's summary and config (and `data_summary`)."""
    data = data or {"composer": Counter(), "license": Counter(), "source": Counter()}
    described = ""
    if data["composer"]:
        described = (
            f" Training pieces by composer: {_counts(data['composer'])}; by licence: {_counts(data['license'])}; "
            f"by source: {_counts(data['source'])}."
        )
    _, license_note = weights_license(data["license"])
    return (
        f"`{Path(config['dataset']).name}`, built by `toccata build-dataset` and split by piece: "
        f"{summary['train_pieces']} training pieces ({summary['train_tokens']:,} tokens), "
        f"{summary['validation_pieces']} validation pieces.{described} Windows of {config['window']} tokens transposed "
        f"on the fly by up to ±{config['max_transpose']} semitones; AdamW lr {config['learning_rate']:g}, batch "
        f"{config['batch_size']}, {config['scheduler']} schedule; {summary['steps']} steps ({summary['epochs']} "
        f"epochs, early stopping on validation loss; best {summary['best_validation_loss']:.4f} nats/token) on "
        f"{_hardware(summary)}.{_lineage(config)}\n\n{license_note}"
    )


def _card_section(folder: Path, heading: str = "## Training data") -> str:
    """A section of a checkpoint's card (README.md), without its heading; "" when the card has none."""
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    if f"\n{heading}\n" not in text:
        return ""
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0].strip()


def run_training(run: Path, attributions: list[str | Path] = ()) -> tuple[str, str]:
    """(training-data markdown, weights' licence id) of what `run` is:
    - a `toccata train` run: its summary, config and data (plus the attributions' opening lines);
    - a `toccata tune` run: the training of the generator it tuned (a run or a published checkpoint, found the same
      way), then the tuning's own paragraph from its card; the licence is the generator's;
    - a published checkpoint: its card's own "Training data" section and licence."""
    if (run / "train_summary.json").is_file() and (run / "train_config.json").is_file():
        summary = json.loads((run / "train_summary.json").read_text())
        config = json.loads((run / "train_config.json").read_text())
        data = data_summary(config["dataset"])
        text = training_section(summary, config, data) + attribution_section(config["dataset"], attributions)
        return text, weights_license(data["license"])[0]
    if (run / TUNE_CONFIG).is_file():
        tuned = json.loads((run / TUNE_CONFIG).read_text())
        try:
            base, license_id = run_training(Path(tuned["generator"]), attributions)
        except ValueError as err:
            raise ValueError(f"{run}: its generator {tuned['generator']} (tune_config.json): {err}") from None
        if tuned.get("anchor") and Path(tuned.get("dataset") or "").is_dir():  # the anchor fitted it to that data too
            anchored = weights_license(data_summary(tuned["dataset"])["license"])[0]
            license_id = WEIGHTS_NC_LICENSE if WEIGHTS_NC_LICENSE in (license_id, anchored) else license_id
        return f"{base}\n\n### Preference tuning\n\n{_card_section(run)}", license_id
    section = _card_section(run)
    if not section:
        raise ValueError(
            f"{run}: neither a `toccata train` run (train_summary.json, train_config.json), a `toccata tune` run "
            "(tune_config.json) nor a checkpoint whose card has a training section"
        )
    license_id = str(ModelCard.load(run / "README.md").data.license or "unknown")
    for path in attributions:  # a published card carries its own; add only what it lacks
        quoted = quote_attribution(Path(path).read_text(encoding="utf-8", errors="replace"))
        if quoted not in section:
            section += f"\n\nTraining data from `{Path(path).parent.name}/`:\n\n{quoted}"
    return section, license_id


def _lineage(config: dict) -> str:
    """For a fine-tuned run: what it started from, with that run's own training where its folder is at hand."""
    start = config.get("init_from")
    if not start:
        return ""
    text = f" Fine-tuned from `{start}`"
    earlier = Path(start) / "train_config.json", Path(start) / "train_summary.json"
    if all(path.is_file() for path in earlier):
        before, done = (json.loads(path.read_text()) for path in earlier)
        text += (
            f", which was trained from scratch on `{Path(before['dataset']).name}` with windows of "
            f"{before['window']} tokens transposed by up to ±{before['max_transpose']} semitones, lr "
            f"{before['learning_rate']:g}, batch {before['batch_size']}: {done['steps']} steps ({done['epochs']} "
            f"epochs, best {done['best_validation_loss']:.4f} nats/token) on {_hardware(done)}"
        )
    return text + "."


def publish(
    run_dir: str | Path,
    dest: str | Path,
    report_dir: str | Path | None = None,
    title: str = "Toccata NotewiseLSTM",
    half: bool = False,
    unseen_report_dir: str | Path | None = None,
    attributions: list[str | Path] = (),
) -> Path:
    """Write `dest`: the run's model and tokenizer, a card with the report's numbers, and the report itself.

    `run_dir`: a `toccata train` or `toccata tune` output folder (`run_training`). The weights' licence follows the
    training data: non-commercial share-alike data make CC BY-NC-SA 4.0 weights.
    The card carries the dataset card's attributions and those of `attributions` (licence files whose opening lines
    CC BY asks to carry along). `unseen_report_dir` (default RUN/evaluation-unseen-composers, when there): the report
    on composers held out whole, summarised in the card and copied beside the test report.
    `half`: store the weights in float16 (half the bytes); they load as float32, the config's dtype."""
    run, dest = Path(run_dir), Path(dest)
    report_dir = Path(report_dir) if report_dir else run / "evaluation"
    if unseen_report_dir is None and (run / UNSEEN_REPORT / "report.json").is_file():
        unseen_report_dir = run / UNSEEN_REPORT
    for path in attributions:
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such attribution file (give a collection's LICENSE file)")
    if not (report_dir / "report.json").is_file():
        raise ValueError(f"{report_dir / 'report.json'} is missing: evaluate {run} with `toccata evaluate`")
    report = json.loads((report_dir / "report.json").read_text())
    metrics, evaluation = evaluation_section(report)
    training, license_id = run_training(run, attributions)
    if unseen_report_dir is not None:
        unseen = json.loads((Path(unseen_report_dir) / "report.json").read_text())
        lines, unseen_metrics = unseen_summary(unseen)
        evaluation += "\n\n" + lines
        metrics |= unseen_metrics
    model, tokenizer = load_checkpoint(str(run))
    sampler, guards = preset_from_generation_config(model.generation_config)
    measured = report.get("settings", {})
    if (measured.get("preset_sampler"), measured.get("preset_guards")) != (asdict(sampler), asdict(guards)):
        raise ValueError(
            f"{report_dir / 'report.json'} was measured with another sampler or guard preset than {run} has now: "
            f"run `toccata evaluate --model {run}` again"
        )
    if dest.exists():
        shutil.rmtree(dest)
    card = CardInfo(
        title=title,
        license=license_id,
        training_data=training,
        metrics=metrics,
        evaluation=evaluation,
    )
    save_checkpoint(dest, model, tokenizer, card=card, sampler=sampler, guards=guards)
    if half:
        store_half(dest / "model.safetensors")
    copies = [(report_dir, dest / "evaluation", REPORT_FILES), (run, dest / "evaluation", PRESET_FILES + TUNE_FILES)]
    if unseen_report_dir is not None:
        copies.append((Path(unseen_report_dir), dest / UNSEEN_REPORT, REPORT_FILES))
    for source, target, patterns in copies:
        target.mkdir(exist_ok=True)
        for pattern in patterns:
            for path in sorted(source.glob(pattern)):
                shutil.copy2(path, target / path.name)
    return dest


def unseen_summary(report: dict) -> tuple[str, dict[str, float]]:
    """(card paragraph, metrics) of the report on composers the model never saw: likelihood and the critic."""
    model = next((row for row in report["likelihood"] if row["name"] == "model"), None)
    metrics = {"unseen_composers_bits_per_note": model["bits_per_note"]} if model else {}
    critic = next((run["critic"] for run in report.get("samplers", []) if run.get("critic")), None)
    if critic:
        metrics["unseen_composers_critic_auc"] = critic["auc"]
    text = (
        f"On **composers it never saw** (the `{report['split']}` split of `{report['dataset']}`: composers held out "
        "whole, none of their pieces in training): "
        + (f"{model['bits_per_note']:.2f} bits per note" if model else "no likelihood measured")
        + (f", critic ROC AUC {critic['auc']:.3f} against their music" if critic else "")
        + f". Full report: [{UNSEEN_REPORT}/report.md]({UNSEEN_REPORT}/report.md)."
    )
    return text, metrics


def attribution_section(dataset: str, files: list[str | Path]) -> str:
    """The card's attributions: the dataset card's (its "### Attributions", when the dataset is a local folder) and
    the opening lines of each of `files`; "" when there are none."""
    blocks = []
    card = Path(dataset) / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        if "### Attributions" in text:
            section = text.split("### Attributions", 1)[1].split("\n## ", 1)[0].strip()
            blocks.append(section.replace("come from the collection of", "of the training data come from"))
    for path in files:
        quoted = quote_attribution(Path(path).read_text(encoding="utf-8", errors="replace"))
        blocks.append(f"Training data from `{Path(path).parent.name}/`:\n\n{quoted}")
    return "\n\n### Attributions\n\n" + "\n\n".join(blocks) if blocks else ""


def store_half(weights: Path) -> None:
    """Rewrite a safetensors file with its float32 tensors in float16. `from_pretrained` casts them back to the
    config's dtype (float32) on load: the package ships half the bytes, the model computes as before."""
    tensors = load_file(weights)
    save_file(
        {name: t.half() if t.dtype == torch.float32 else t for name, t in tensors.items()}, weights, {"format": "pt"}
    )


