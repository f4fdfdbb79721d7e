"""Set the sampler and guard preset that a checkpoint folder generates with by default (its generation_config.json),
and transformers' own sampling fields nearest to it (`do_sample`, `top_k`, `temperature`) for a plain `generate()`.

    toccata preset FOLDER temperature=0.9 calmness=1.0

`make default-checkpoint` sets the default checkpoint's preset this way before evaluating it, so that the numbers in
its card are those of the settings users get. Names are fields of `SamplerSettings` or `GuardSettings`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from toccata.modeling.guards import GuardSettings
from toccata.modeling.presets import transformers_sampling
from toccata.modeling.sampling import SamplerSettings


def _parse(value: str, like: object) -> object:
    """`value` as the type of the field's current value (bool, int, float or str)."""
    if isinstance(like, bool):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {value!r}")
        return value.lower() == "true"
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return None if value.lower() == "none" else value


def apply_values(
    sampler: SamplerSettings, guards: GuardSettings, values: dict[str, str]
) -> tuple[SamplerSettings, GuardSettings]:
    """The preset with `values` (field name -> text) applied; a ValueError names a bad field or value."""
    sampler_names, guard_names = {f.name for f in fields(sampler)}, {f.name for f in fields(guards)}
    for name, text in values.items():
        if name not in sampler_names | guard_names:
            known = ", ".join(sorted(sampler_names | guard_names))
            raise ValueError(f"{name}: not a preset field; choose from {known}")
        target = sampler if name in sampler_names else guards
        try:
            value = _parse(text, getattr(target, name))
        except ValueError as err:
            raise ValueError(f"{name}={text}: {err}") from None
        if name in sampler_names:
            sampler = replace(sampler, **{name: value})  # __post_init__ checks the value
        else:
            guards = replace(guards, **{name: value})
    return sampler, guards


def set_preset(folder: str | Path, values: dict[str, str]) -> tuple[SamplerSettings, GuardSettings]:
    """Rewrite `folder`/generation_config.json with `values` (field name -> text) applied; returns the new preset."""
    path = Path(folder) / "generation_config.json"
    if not path.is_file():
        raise ValueError(f"{path} is missing: not a checkpoint folder")
    config = json.loads(path.read_text(encoding="utf-8"))
    sampler = SamplerSettings(**config.get("toccata_sampler", {}))
    guards = GuardSettings(**config.get("toccata_guards", {}))
    sampler, guards = apply_values(sampler, guards, values)
    config["toccata_sampler"], config["toccata_guards"] = asdict(sampler), asdict(guards)
    config.update(transformers_sampling(sampler))  # a plain `model.generate()` samples like the preset
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return sampler, guards
