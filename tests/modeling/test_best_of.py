"""Best-of-N composing: N candidates per piece in one batch, a critic keeps the most human-sounding ones, and every
candidate's score is reported. With a simple critic written here (rewards note count) and with the embedded critic
through the CLI and the transformers pipeline."""

from __future__ import annotations

import subprocess
import sys

import pytest
import symusic
from support.models import MODEL, TOK
from toccata.modeling import GenerationRequest, SamplerSettings, compose

import toccata

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def note_count(token_lists: list[list[str]]) -> list[float]:
    """A critic that prefers busier music: its scores are easy to check by hand."""
    return [sum(t.startswith("p") for t in tokens) / 1000 for tokens in token_lists]


def request(**changes) -> GenerationRequest:
    return GenerationRequest(SamplerSettings("weighted", seed=4), beats=8, **changes)


def test_best_of_keeps_the_candidates_the_critic_rates_highest_and_reports_them_all():
    pieces = compose(MODEL, TOK, request(best_of=6, num_samples=2), critic=note_count)
    candidates = pieces[0].settings["candidates"]
    assert len(candidates) == 12 and [c["index"] for c in candidates] == list(range(12))
    ranked = sorted(candidates, key=lambda c: -c["human_probability"])
    assert [p.settings["chosen"] for p in pieces] == [c["index"] for c in ranked[:2]]
    assert [note_count([p.tokens])[0] for p in pieces] == [c["human_probability"] for c in ranked[:2]]
    assert len({c["human_probability"] for c in candidates}) > 1, "the candidates should differ"


def test_best_of_one_is_plain_sampling_and_best_of_is_reproducible():
    plain = compose(MODEL, TOK, request())
    again = compose(MODEL, TOK, request(best_of=5), critic=note_count)
    assert "candidates" not in plain[0].settings
    assert again[0].tokens == compose(MODEL, TOK, request(best_of=5), critic=note_count)[0].tokens
    first = compose(MODEL, TOK, request(best_of=5), critic=lambda ts: [1.0] + [0.0] * (len(ts) - 1))
    last = compose(MODEL, TOK, request(best_of=5), critic=lambda ts: [0.0] * (len(ts) - 1) + [1.0])
    assert (first[0].settings["chosen"], last[0].settings["chosen"]) == (0, 4)
    assert first[0].tokens != last[0].tokens  # same candidates, the critic decides which one comes back


def test_a_kept_candidate_is_the_piece_its_own_seed_makes_alone():
    """So `toccata generate --seed N` (no best-of) writes a kept piece again, at a fraction of the work."""
    for piece in compose(MODEL, TOK, request(best_of=4, num_samples=2), critic=note_count):
        assert piece.settings["piece_seed"] == 4 + piece.settings["chosen"]
        alone = GenerationRequest(SamplerSettings("weighted", seed=piece.settings["piece_seed"]), beats=8)
        assert compose(MODEL, TOK, alone)[0].tokens == piece.tokens


@pytest.mark.parametrize(
    "changes,critic,message",
    [({"best_of": 3}, None, "needs a critic"), ({"best_of": 0}, note_count, "best_of must be"),
     ({"best_of": 16, "num_samples": 5}, note_count, "at most 64")],
)  # fmt: skip
def test_bad_best_of_settings_are_refused_with_the_reason(changes, critic, message):
    with pytest.raises(ValueError, match=message):
        compose(MODEL, TOK, request(**changes), critic=critic)


@pytest.mark.skipif(toccata.default_critic() is None, reason="no embedded critic")
def test_the_embedded_critic_picks_through_the_pipeline_and_the_cli(tmp_path):
    from transformers import pipeline

    pipe = pipeline("music-generation", model=str(toccata.default_checkpoint()))
    (piece,) = pipe(None, seed=2, beats=8, best_of=3)
    scores = [c["human_probability"] for c in piece.settings["candidates"]]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores[piece.settings["chosen"]] == max(scores)

    out = tmp_path / "best.mid"
    cli = [sys.executable, "-m", "toccata", "generate", "--seed", "2", "--beats", "8", "--best-of", "3"]
    done = subprocess.run(
        [*cli, "--no-audio", "-o", str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "best of 3 candidates: P(human)" in done.stderr
    assert symusic.Score(str(out)).note_num() > 0
