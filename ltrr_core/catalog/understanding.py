"""Content understanding: structure added to free text, stored as fields of each entity.

Rules (regular expressions from config) find version types, seasonal themes and years, where
catalog text states them. Genres and moods come from tags (own or inherited from linked
artists) through the config's tag vocabulary; entities with no usable tags get a genre from a
classifier trained on the tagged ones, only when it is confident, and marked as such
(``genre_source = "classifier"``) so that features and filters can weigh it differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .. import schema as S
from ..config import ContentUnderstandingConfig, LanguageConfig
from ..text import dominant_script, fold, normalize

_YEAR_IN_BRACKETS = re.compile(
    r"[\(\[][^\)\]]*\b(19[0-9]{2}|20[0-4][0-9])\b[^\)\]]*[\)\]]|\s[-–]\s.*\b(19[0-9]{2}|20[0-4][0-9])\b"
)
_YEAR_ANYWHERE = re.compile(r"\b(19[0-9]{2}|20[0-4][0-9])\b")
_DECADE = re.compile(r"(?<![\w'])(?:'|19|20)?([0-9]0)'?s\b")


def _decade_from_match(digits: str, prefix_text: str) -> int | None:
    tens = int(digits)
    if prefix_text.startswith("20") or (tens <= 20 and not prefix_text.startswith("19")):
        return 2000 + tens
    return 1900 + tens if tens >= 20 else None


def find_decades(text: str) -> list[int]:
    """'80s', "'90s", '1970s', '2000s' -> [1980, 1990, 1970, 2000]."""
    decades = []
    for match in _DECADE.finditer(text):
        decade = _decade_from_match(match.group(1), match.group(0))
        if decade and 1900 <= decade <= 2020 and decade not in decades:
            decades.append(decade)
    return decades


@dataclass
class Rules:
    """Compiled content rules; build once per run from config."""

    versions: dict[str, re.Pattern[str]]
    seasons: dict[str, re.Pattern[str]]
    genre_keywords: dict[str, re.Pattern[str]]
    mood_keywords: dict[str, re.Pattern[str]]

    @classmethod
    def from_config(cls, config: ContentUnderstandingConfig) -> Rules:
        # One alternation per label: a single regex pass instead of one per pattern.
        def compile_all(table: dict[str, list[str]]) -> dict[str, re.Pattern[str]]:
            return {name: re.compile("|".join(f"(?:{p})" for p in patterns)) for name, patterns in table.items()}

        def keywords(table: dict[str, list[str]]) -> dict[str, re.Pattern[str]]:
            return {
                name: re.compile("|".join(rf"(?<![\w-]){re.escape(normalize(k))}(?![\w-])" for k in words))
                for name, words in table.items()
            }

        return cls(
            compile_all(config.version_patterns),
            compile_all(config.seasonal_patterns),
            keywords(config.genre_tags),
            keywords(config.mood_tags),
        )

    @staticmethod
    def _matching(text: str, table: dict[str, re.Pattern[str]]) -> list[str]:
        return [name for name, pattern in table.items() if pattern.search(text)]

    def version_types(self, text: str) -> list[str]:
        return self._matching(text, self.versions)

    def seasons_of(self, text: str) -> list[str]:
        return self._matching(text, self.seasons)

    def genres_of_tag(self, tag: str) -> list[str]:
        return self._matching(normalize(tag), self.genre_keywords)

    def moods_of_tag(self, tag: str) -> list[str]:
        return self._matching(normalize(tag), self.mood_keywords)


def _weighted_labels(
    tags: list[str], weights: list[float], label_of: Any, min_weight: float, keep_ratio: float = 0.25
) -> tuple[list[str], float]:
    """Labels ranked by summed tag weight; those under keep_ratio of the best are dropped."""
    scores: dict[str, float] = {}
    for tag, weight in zip(tags, weights):
        if weight < min_weight:
            continue
        for label in label_of(tag):
            scores[label] = scores.get(label, 0.0) + float(weight)
    if not scores:
        return [], 0.0
    best = max(scores.values())
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    total = sum(scores.values())
    return [label for label, score in ranked if score >= keep_ratio * best][:3], best / total


class LanguageIdentifier:
    """langid.py restricted to the configured languages, with normalised probabilities.

    langid was chosen for being small, fast (~0.1 ms per title) and offline; titles are short,
    so only confident predictions on texts with enough letters are kept.
    """

    def __init__(self, config: LanguageConfig):
        from langid.langid import LanguageIdentifier as _Identifier
        from langid.langid import model

        self.config = config
        self._identifier = _Identifier.from_modelstring(model, norm_probs=True)
        self._identifier.set_languages(config.candidates)

    def identify(self, text: str) -> str | None:
        if sum(ch.isalpha() for ch in text) < self.config.min_letters:
            return None
        language, probability = self._identifier.classify(text)
        return language if probability >= self.config.min_probability else None


def entity_text(title: Any, artists: Any, album: Any) -> str:
    """Title, artists and album as one line: the text rules and the classifier read."""
    parts = [title, " ".join(artists if artists is not None else []), album]
    return " | ".join(p for p in parts if isinstance(p, str) and p)


@dataclass
class UnderstandingReport:
    counts: dict[str, int] = field(default_factory=dict)
    classifier: dict[str, Any] = field(default_factory=dict)


def annotate_rules(entities: pd.DataFrame, config: ContentUnderstandingConfig) -> pd.DataFrame:
    """Rule-based attributes and tag-derived genres/moods for every entity."""
    rules = Rules.from_config(config)
    identifier = LanguageIdentifier(config.language)
    genres_of_tag = lru_cache(maxsize=None)(rules.genres_of_tag)
    moods_of_tag = lru_cache(maxsize=None)(rules.moods_of_tag)
    decades_of_tag = lru_cache(maxsize=None)(lambda tag: tuple(find_decades(fold(tag))))

    out: dict[str, list[Any]] = {
        name: []
        for name in (
            S.VERSION_TYPES,
            S.SEASONS,
            S.YEAR,
            S.DECADES,
            S.LANGUAGE,
            S.SCRIPT,
            S.GENRES,
            S.GENRE_SOURCE,
            S.GENRE_CONFIDENCE,
            S.MOODS,
        )
    }
    for etype, title, album, tags, weights in zip(
        entities[S.TYPE], entities[S.TITLE], entities[S.ALBUM], entities[S.TAGS], entities[S.TAG_WEIGHTS]
    ):
        title_text, album_text = fold(title), fold(album)
        tags = list(tags if tags is not None else [])
        weights = list(weights if weights is not None else [])
        is_work = etype != "artist"
        text = f"{title_text} {album_text}".strip()
        out[S.VERSION_TYPES].append(rules.version_types(text) if is_work else [])
        out[S.SEASONS].append(rules.seasons_of(text) if is_work else [])
        year_match = _YEAR_IN_BRACKETS.search(title_text) or _YEAR_ANYWHERE.search(album_text)
        year = int(next(g for g in year_match.groups() if g)) if year_match and is_work else None
        out[S.YEAR].append(year)
        decades = find_decades(text) if is_work else []
        for tag, weight in zip(tags, weights):
            if weight >= config.min_genre_tag_weight:
                decades += [d for d in decades_of_tag(tag) if d not in decades]
        if year and (year // 10) * 10 not in decades:
            decades.insert(0, (year // 10) * 10)
        out[S.DECADES].append(decades[:3])
        out[S.LANGUAGE].append(identifier.identify(f"{title_text} {album_text}") if is_work else None)
        out[S.SCRIPT].append(dominant_script(title))
        genres, confidence = _weighted_labels(tags, weights, genres_of_tag, config.min_genre_tag_weight)
        out[S.GENRES].append(genres)
        out[S.GENRE_SOURCE].append("tags" if genres else None)
        out[S.GENRE_CONFIDENCE].append(float(confidence) if genres else None)
        moods, _ = _weighted_labels(tags, weights, moods_of_tag, config.min_genre_tag_weight)
        out[S.MOODS].append(moods)
    return entities.assign(**out)


def understand_catalog(
    entities: pd.DataFrame, config: ContentUnderstandingConfig
) -> tuple[pd.DataFrame, UnderstandingReport]:
    """Rules for everyone, then the genre classifier for entities the tags left without genre."""
    from .genre_classifier import GenreClassifier

    annotated = annotate_rules(entities, config)
    texts = [entity_text(t, a, al) for t, a, al in zip(annotated[S.TITLE], annotated[S.ARTISTS], annotated[S.ALBUM])]
    labelled = annotated[S.GENRES].map(len) > 0
    classifier = GenreClassifier(config.classifier)
    groups = annotated[S.ARTISTS].map(lambda a: normalize(a[0]) if a is not None and len(a) else "")
    evaluation = classifier.fit_evaluate(
        [texts[i] for i in np.flatnonzero(labelled)],
        [g[0] for g in annotated.loc[labelled, S.GENRES]],
        groups[labelled].tolist(),
    )
    unlabelled = np.flatnonzero(~labelled.to_numpy())
    genres = annotated[S.GENRES].tolist()
    sources = annotated[S.GENRE_SOURCE].tolist()
    confidences = annotated[S.GENRE_CONFIDENCE].tolist()
    n_predicted = 0
    if len(unlabelled):
        labels, probabilities = classifier.predict([texts[i] for i in unlabelled])
        for row, label, probability in zip(unlabelled, labels, probabilities):
            if probability >= config.classifier.min_confidence:
                genres[row], sources[row], confidences[row] = [label], "classifier", float(probability)
                n_predicted += 1
    annotated = annotated.assign(**{S.GENRES: genres, S.GENRE_SOURCE: sources, S.GENRE_CONFIDENCE: confidences})

    report = UnderstandingReport(
        counts={
            "n_entities": len(annotated),
            "with_version_type": int((annotated[S.VERSION_TYPES].map(len) > 0).sum()),
            **{
                f"version:{v}": int(annotated[S.VERSION_TYPES].map(lambda x, v=v: v in x).sum())
                for v in config.version_patterns
            },
            "with_season": int((annotated[S.SEASONS].map(len) > 0).sum()),
            "with_year": int(annotated[S.YEAR].notna().sum()),
            "with_decade": int((annotated[S.DECADES].map(len) > 0).sum()),
            "with_language": int(annotated[S.LANGUAGE].notna().sum()),
            "genre_from_tags": int(labelled.sum()),
            "genre_from_classifier": n_predicted,
            "without_genre": int((annotated[S.GENRES].map(len) == 0).sum()),
            "with_mood": int((annotated[S.MOODS].map(len) > 0).sum()),
        },
        classifier=evaluation,
    )
    return annotated, report
