"""Configuration of the notewise LSTM language model (AWD-LSTM style: stacked LSTM, several dropouts, tied head).

The config also records the layout of the notewise vocabulary (where note-on, note-off and wait ids start), so the
generation guards in `sampling.py` work from the config alone: the model never imports the tokenizer.
This file imports only transformers, so it can travel to the Hub next to the weights.
"""

from __future__ import annotations

from transformers import PreTrainedConfig


def _check(name: str, value: object, ok: bool, expected: str) -> None:
    """Raise a ValueError naming the argument, what was expected and the value received."""
    if not ok:
        raise ValueError(f"NotewiseLSTMConfig: `{name}` must be {expected}, got {value!r}")


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    _check(name, value, ok, f"an integer >= {low}" + (f" and <= {high}" if high is not None else ""))


def _check_probability(name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0
    _check(name, value, ok, "a probability in [0, 1)")


def _check_instrument_layout(layout: object, vocab_size: int) -> dict | None:
    """A copy of the parts' layout (note-on/off ids inside the vocabulary), or None for the piano only."""
    if layout is None:
        return None
    _check("instrument_layout", layout, isinstance(layout, dict) and len(layout) >= 1, "a dict of parts or None")
    out = {}
    for name, spec in layout.items():
        keys = ("num_pitches", "note_on_offset", "note_off_offset", "low_pitch")
        ok = isinstance(spec, dict) and all(isinstance(spec.get(key), int) for key in keys)
        _check(f"instrument_layout[{name!r}]", spec, ok, f"a dict with integer {', '.join(keys)}")
        for key in ("note_on_offset", "note_off_offset"):
            ok = spec[key] >= 0 and spec[key] + spec["num_pitches"] <= vocab_size
            _check(f"instrument_layout[{name!r}].{key}", spec[key], ok, f"such that the part fits in {vocab_size} ids")
        out[str(name)] = dict(spec)
    return dict(sorted(out.items(), key=lambda item: item[1]["note_on_offset"]))  # id order (JSON sorts the keys)


class NotewiseLSTMConfig(PreTrainedConfig):
    r"""Sizes, dropouts and vocabulary layout of a [`NotewiseLSTMForCausalLM`].

    Args:
        vocab_size: number of token ids (228 for the default notewise vocabulary).
        embedding_size: width of the token embedding; also the output width of the top LSTM layer when the head is
            tied to the embedding (AWD-LSTM's convention, which is what makes tying possible for any hidden size).
        hidden_size: width of every LSTM layer but the top one (and of the top one when untied).
        num_hidden_layers: number of stacked LSTM layers.
        embedding_dropout: probability of dropping a whole word type from the embedding matrix (per batch).
        input_dropout: locked (same mask at every step) dropout on the embedded input.
        hidden_dropout: locked dropout between LSTM layers.
        output_dropout: locked dropout on the top layer's output, before the head.
        weight_dropout: DropConnect on the hidden-to-hidden weights of every layer (AWD-LSTM's weight drop).
        classifier_dropout: dropout on the pooled features before the head of
            [`NotewiseLSTMForSequenceClassification`] (unused by the causal model).
        tie_word_embeddings: share the embedding matrix with the output head.
        initializer_range: embeddings (and an untied head) start uniform in ±initializer_range. Wide (1.0, close to
            PyTorch's N(0, 1) embedding) because narrow tied embeddings leave the model on the unigram plateau for
            epochs (measured: validation loss after 300 steps 1.51 nats at 1.0, 1.60 at 0.5, 2.33 at 0.25, 3.16 at 0.1).
        use_cache: return the recurrent state so that `generate()` feeds one token per step.
        note_on_offset, note_off_offset, wait_offset: first id of `p{min_pitch}`, `endp{min_pitch}` and `wait1`.
        num_pitches: number of pitches (88 for the piano), `min_pitch` the lowest one.
        max_wait: the longest wait word (`wait{max_wait}`); `steps_per_quarter` the time grid.
        instrument_layout: for a vocabulary with parts beside the piano (violin, cello), the tokenizer's
            `instrument_layout`: per part in order, `prefix`, `program`, `low_pitch`, `high_pitch`, `num_pitches`,
            `note_on_offset`, `note_off_offset`. None (the default): the piano only, described by the fields above.
    """

    model_type = "notewise_lstm"

    def __init__(
        self,
        vocab_size: int = 228,
        embedding_size: int = 160,
        hidden_size: int = 320,
        num_hidden_layers: int = 3,
        embedding_dropout: float = 0.05,
        input_dropout: float = 0.2,
        hidden_dropout: float = 0.2,
        output_dropout: float = 0.3,
        weight_dropout: float = 0.2,
        classifier_dropout: float = 0.1,
        tie_word_embeddings: bool = True,
        initializer_range: float = 1.0,
        use_cache: bool = True,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        note_on_offset: int = 4,
        note_off_offset: int = 92,
        wait_offset: int = 180,
        num_pitches: int = 88,
        min_pitch: int = 21,
        max_wait: int = 48,
        steps_per_quarter: int = 12,
        instrument_layout: dict | None = None,
        **kwargs,
    ):
        _check_int("vocab_size", vocab_size, 1)
        _check_int("embedding_size", embedding_size, 1)
        _check_int("hidden_size", hidden_size, 1)
        _check_int("num_hidden_layers", num_hidden_layers, 1, 64)
        for name, value in [
            ("embedding_dropout", embedding_dropout),
            ("input_dropout", input_dropout),
            ("hidden_dropout", hidden_dropout),
            ("output_dropout", output_dropout),
            ("weight_dropout", weight_dropout),
            ("classifier_dropout", classifier_dropout),
        ]:
            _check_probability(name, value)
        _check_int("num_pitches", num_pitches, 1, 128)
        _check_int("min_pitch", min_pitch, 0, 127)
        _check_int("max_wait", max_wait, 1)
        _check_int("steps_per_quarter", steps_per_quarter, 1)
        for name, start, size in [
            ("note_on_offset", note_on_offset, num_pitches),
            ("note_off_offset", note_off_offset, num_pitches),
            ("wait_offset", wait_offset, max_wait),
        ]:
            _check_int(name, start, 0)
            _check(name, start, start + size <= vocab_size, f"such that its {size} ids fit in vocab_size={vocab_size}")
        instrument_layout = _check_instrument_layout(instrument_layout, vocab_size)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.embedding_dropout = embedding_dropout
        self.input_dropout = input_dropout
        self.hidden_dropout = hidden_dropout
        self.output_dropout = output_dropout
        self.weight_dropout = weight_dropout
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        self.note_on_offset = note_on_offset
        self.note_off_offset = note_off_offset
        self.wait_offset = wait_offset
        self.num_pitches = num_pitches
        self.min_pitch = min_pitch
        self.max_wait = max_wait
        self.steps_per_quarter = steps_per_quarter
        self.instrument_layout = instrument_layout
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input size, output size) of each LSTM layer, bottom first."""
        top = self.embedding_size if self.tie_word_embeddings else self.hidden_size
        outputs = [self.hidden_size] * (self.num_hidden_layers - 1) + [top]
        inputs = [self.embedding_size] + outputs[:-1]
        return list(zip(inputs, outputs))


__all__ = ["NotewiseLSTMConfig"]
