"""The chamber release helpers: what a run trained on and the command that trains it again, from its train_config."""

from __future__ import annotations

import shlex

from toccata.cli import build_parser
from toccata.release.chamber import train_command, training_data

CONFIG = {
    "dataset": "data/duo-violin", "output_dir": "runs/violin-c", "init_from": "toccata/checkpoints/default",
    "instruments": ["piano", "violin"], "mix": ["data/quartets-violin"], "repeat": 3, "learning_rate": 0.0005,
    "max_steps": 120, "batch_size": 16, "window": 512, "max_transpose": 3, "eval_steps": 20, "patience": 4, "seed": 0,
}  # fmt: skip


def test_training_data_names_each_dataset_and_its_weight():
    assert training_data(CONFIG) == "`duo-violin` ×3 + `quartets-violin`"
    assert training_data({**CONFIG, "repeat": 0}) == "`quartets-violin`"
    assert training_data({**CONFIG, "repeat": 1, "mix": []}) == "`duo-violin`"


def test_the_train_command_parses_back_to_the_same_settings():
    command = train_command(CONFIG)
    args = build_parser().parse_args(shlex.split(command.replace("\\\n", " "))[1:])
    assert (args.dataset, args.out, args.init_from, args.instruments) == (
        "data/duo-violin", "runs/violin-c", "toccata/checkpoints/default", "piano,violin",
    )  # fmt: skip
    assert (args.mix, args.repeat, args.learning_rate, args.max_steps, args.max_transpose) == (
        ["data/quartets-violin"], 3, 0.0005, 120, 3,
    )  # fmt: skip
    assert (args.batch_size, args.window, args.eval_steps, args.patience, args.seed) == (16, 512, 20, 4, 0)


def test_compare_refuses_to_keep_a_run_it_does_not_have():
    import pytest
    from toccata.release.chamber import compare

    with pytest.raises(ValueError, match="--keep both: no run of that name; the runs are duos"):
        compare("data/duo-violin", "test", {"duos": "runs/violin-b"}, keep="both")
