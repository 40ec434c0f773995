"""What a person types for an intent: the plain query or a variant of it (generated).

Variants are the ones search logs are full of: a typo, a partial title, "songs like X", a tag
phrased a few ways. Tag and "songs like" phrasings are real: templates mined from real requests
(``phrasings.mine_templates``; ``simulate.phrasing_source: fixed`` uses the config's lists);
which one and the slot filling are generated. Typos are one edit on one word of four letters or
more -- a dropped, doubled or swapped letter, or a neighbouring key on a QWERTY keyboard -- the
error classes that make up most single-word misspellings (Damerau 1964). Hand-written because
what we need is a seeded, inspectable edit, not a noise library.
"""

from __future__ import annotations

import numpy as np

from ..config import SimulateConfig
from .phrasings import PhrasingTemplates, fill
from .world import Intent

_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row)) for row in _ROWS for i, ch in enumerate(row)
}


def misspell(text: str, rng: np.random.Generator) -> str:
    """One edit in one word of >= 4 letters; the text unchanged when it has no such word."""
    words = text.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    index = candidates[int(rng.integers(len(candidates)))]
    word = words[index]
    at = int(rng.integers(1, len(word) - 1))  # keep the first letter, as people mostly do
    operation = int(rng.integers(4))
    if operation == 0:
        word = word[:at] + word[at + 1 :]
    elif operation == 1:
        word = word[:at] + word[at] + word[at:]
    elif operation == 2:
        word = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    else:
        neighbours = _NEIGHBOURS.get(word[at].lower(), "")
        if neighbours:
            word = word[:at] + neighbours[int(rng.integers(len(neighbours)))] + word[at + 1 :]
    words[index] = word
    return " ".join(words)


def partial(title: str, rng: np.random.Generator) -> str | None:
    """The first words of a title (at least one, fewer than all); None for one-word titles."""
    words = title.split()
    if len(words) < 2:
        return None
    return " ".join(words[: int(rng.integers(1, len(words)))])


def phrasings_for(kind: str, config: SimulateConfig, mined: PhrasingTemplates | None) -> tuple[str, ...]:
    """The templates a tag or similar intent is phrased with: mined, or the config's fixed lists."""
    if config.phrasing_source == "fixed":
        return tuple(config.tag_phrasings if kind == "tag" else config.similar_phrasings)
    if mined is None:
        raise ValueError(
            "simulate.phrasing_source is 'mined': pass the templates of "
            "ltrr_core.simulate.phrasings.mine_templates(settings) to typed_query"
        )
    return mined.tag if kind == "tag" else mined.artist


def typed_query(
    intent: Intent, config: SimulateConfig, rng: np.random.Generator, phrasings: PhrasingTemplates | None = None
) -> tuple[str, str]:
    """(query text, variant name) for one search of this intent; ``phrasings`` are the mined
    templates (required when ``config.phrasing_source`` is "mined")."""
    if intent.kind in ("tag", "similar"):
        templates = phrasings_for(intent.kind, config, phrasings)
        template = templates[int(rng.integers(len(templates)))]
        text = fill(template, intent.slot or {})
        variant = "tag_phrasing" if intent.kind == "tag" else "songs_like"
    else:
        text, variant = intent.text, "plain"
        if intent.title and rng.random() < config.partial_rate:
            cut = partial(intent.title, rng)
            if cut:
                text, variant = cut, "partial_title"
    if rng.random() < config.misspelling_rate:
        typo = misspell(text, rng)
        if typo != text:
            text, variant = typo, f"{variant}+misspelling"
    return text, variant
