"""What a person types for an intent: the plain query or a variant of it (generated).

Variants are the ones search logs are full of: a typo, a partial title, "songs like X", a tag
phrased a few ways. Typos are one edit on one word of four letters or more -- a dropped,
doubled or swapped letter, or a neighbouring key on a QWERTY keyboard -- the error classes that
make up most single-word misspellings (Damerau 1964). Hand-written because what we need is a
seeded, inspectable edit, not a noise library.
"""

from __future__ import annotations

import numpy as np

from ..config import SimulateConfig
from .world import Intent

_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _ROWS for i, ch in enumerate(row)
}


def misspell(text: str, rng: np.random.Generator) -> str:
    """One edit in one word of >= 4 letters; the text unchanged when it has no such word."""
    words = text.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    index = candidates[int(rng.integers(len(candidates)))]
    word = words[index]
    at = int(rng.integers(1, len(word) - 1))   # keep the first letter, as people mostly do
    operation = int(rng.integers(4))
    if operation == 0:
        word = word[:at] + word[at + 1:]
    elif operation == 1:
        word = word[:at] + word[at] + word[at:]
    elif operation == 2:
        word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
    else:
        neighbours = _NEIGHBOURS.get(word[at].lower(), "")
        if neighbours:
            word = word[:at] + neighbours[int(rng.integers(len(neighbours)))] + word[at + 1:]
    words[index] = word
    return " ".join(words)


def partial(title: str, rng: np.random.Generator) -> str | None:
    """The first words of a title (at least one, fewer than all); None for one-word titles."""
    words = title.split()
    if len(words) < 2:
        return None
    return " ".join(words[: int(rng.integers(1, len(words)))])


def typed_query(intent: Intent, config: SimulateConfig, rng: np.random.Generator) -> tuple[str, str]:
    """(query text, variant name) for one search of this intent."""
    if intent.kind == "tag":
        phrasing = config.tag_phrasings[int(rng.integers(len(config.tag_phrasings)))]
        text, variant = phrasing.format(**intent.slot), "tag_phrasing"
    elif intent.kind == "similar":
        phrasing = config.similar_phrasings[int(rng.integers(len(config.similar_phrasings)))]
        text, variant = phrasing.format(**intent.slot), "songs_like"
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
