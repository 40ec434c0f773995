"""Query understanding: normalisation, spelling against the catalog, slot tagging, intent.

How it works, and why this way:

1. The query is normalised with ``ltrr_core.text.normalize``, the function every index uses,
   so a query and a catalog name meet on the same tokens.
2. Each token that the catalog vocabulary does not know (or knows only from a few entities)
   gets close vocabulary tokens as alternatives: rapidfuzz's Levenshtein distance over the
   token list (C++, ~ms for 100k tokens) with an edit budget by token length, ties broken by
   how many entities carry the token. rapidfuzz is maintained and fast; SymSpell would need a
   dictionary build and adds nothing at this vocabulary size.
3. Every span of up to ``max_span_tokens`` tokens (with its alternatives) is looked up as an
   artist, title, album or tag name, a version term (live, remix, ...), a decade ("80s"), a
   genre or a mood of the content-understanding taxonomy. A one- or two-token span may also
   name an artist partially ("taylor" -> Taylor Swift), weighted by coverage and popularity.
4. Interpretations are segmentations of the query into such slots and unexplained tokens,
   found by beam search. Each scores the product of its slots' confidences times their
   priors, times a factor per unexplained token; scores are normalised into likelihoods over
   all complete segmentations, and the best few are kept -- several readings, not just one.
5. Intent follows from the interpretations: a title/album, or an artist alone, is an entity
   lookup; only topic slots (tag, genre, mood, decade, version) is browsing; both is mixed.

A learned tagger (CRF, transformer) could replace step 3-4 once labelled query logs exist;
the output type stays the same.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ..config import ContentUnderstandingConfig, QueryUnderstandingConfig
from ..text import normalize

ENTITY_SLOTS = ("artist", "title", "album")
TOPIC_SLOTS = ("tag", "genre", "mood", "season", "decade", "version")
SINGLE_SLOTS = ("artist", "title", "album")  # at most one of each per interpretation
INTENTS = ("lookup", "browse", "mixed")
_BEAM_WIDTH = 64
_MAX_SPAN_COMBINATIONS = 16


class InvalidQuery(ValueError):
    """A query that cannot be searched; the message says which rule it broke."""


@dataclass(frozen=True)
class Slot:
    kind: str
    value: str  # normalised canonical value (artist name, title, tag, genre key, decade, version type)
    display: str  # how to show it ("Taylor Swift")
    text: str  # the query span that produced it
    start: int
    end: int  # token positions [start, end)
    confidence: float
    corrected: bool = False
    partial: bool = False


@dataclass(frozen=True)
class Interpretation:
    slots: tuple[Slot, ...]
    unexplained: tuple[str, ...]
    probability: float

    def of_kind(self, kind: str) -> list[Slot]:
        return [s for s in self.slots if s.kind == kind]

    def first(self, kind: str) -> Slot | None:
        found = self.of_kind(kind)
        return found[0] if found else None

    @property
    def intent(self) -> str | None:
        has_entity = any(s.kind in ENTITY_SLOTS for s in self.slots)
        has_topic = any(s.kind in TOPIC_SLOTS for s in self.slots)
        if has_entity and has_topic:
            return "mixed"
        if has_entity:
            return "lookup"
        return "browse" if has_topic else None


@dataclass(frozen=True)
class QueryUnderstanding:
    """What the runtime logs and the bandit and ranker read as context."""

    raw: str
    normalised: str
    tokens: tuple[str, ...]
    corrections: dict[str, list[str]]
    interpretations: tuple[Interpretation, ...]
    intent: dict[str, float]

    @property
    def best(self) -> Interpretation | None:
        return self.interpretations[0] if self.interpretations else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "normalised": self.normalised,
            "tokens": list(self.tokens),
            "corrections": self.corrections,
            "intent": self.intent,
            "interpretations": [
                {
                    "probability": round(i.probability, 4),
                    "intent": i.intent,
                    "unexplained": list(i.unexplained),
                    "slots": [{**asdict(s), "confidence": round(s.confidence, 4)} for s in i.slots],
                }
                for i in self.interpretations
            ],
        }

    def features(self) -> dict[str, float]:
        """Flat numeric context features (bandit and ranker)."""
        out = {f"intent_{k}": float(v) for k, v in self.intent.items()}
        out["n_tokens"] = float(len(self.tokens))
        out["n_corrected_tokens"] = float(len(self.corrections))
        out["n_interpretations"] = float(len(self.interpretations))
        out["best_interpretation_probability"] = self.best.probability if self.best else 0.0
        for kind in ENTITY_SLOTS + TOPIC_SLOTS:
            out[f"slot_{kind}"] = max(
                (i.probability * s.confidence for i in self.interpretations for s in i.of_kind(kind)), default=0.0
            )
        return out


@dataclass
class _State:
    score: float
    position: int
    slots: tuple[Slot, ...] = ()
    unexplained: tuple[str, ...] = ()
    single_kinds: frozenset[str] = field(default_factory=frozenset)


class QueryUnderstander:
    def __init__(
        self,
        vocabulary: pd.DataFrame,
        config: QueryUnderstandingConfig,
        content_config: ContentUnderstandingConfig,
    ):
        self.config = config
        # Columns as Python lists first: iterating an Arrow-backed pandas column element by element
        # costs more than the loops below.
        columns = {c: vocabulary[c].tolist() for c in ("kind", "name", "display", "n_entities", "popularity")}
        self._names: dict[str, list[tuple[str, str, int, float]]] = {}
        for kind, name, display, n, pop in zip(*columns.values()):
            self._names.setdefault(name, []).append((kind, display, int(n), float(pop)))
        self._token_counts: dict[str, int] = {}
        for name, entries in self._names.items():
            n = sum(e[2] for e in entries)
            for token in set(name.split()):
                self._token_counts[token] = self._token_counts.get(token, 0) + n
        self._token_list = list(self._token_counts)
        # token -> names containing it, for partial mentions ("taylor" -> Taylor Swift,
        # "love" -> the "love songs" tag); ranked by popularity (artists) or entity count (tags).
        self._partial_index: dict[str, dict[str, list[tuple[str, str, float]]]] = {"artist": {}, "tag": {}}
        for kind, weight_column in (("artist", "popularity"), ("tag", "n_entities")):
            index = self._partial_index[kind]
            rows = zip(columns["kind"], columns["name"], columns["display"], columns[weight_column])
            for name, display, weight in ((n, d, w) for k, n, d, w in rows if k == kind):
                for token in set(name.split()):
                    index.setdefault(token, []).append((name, display, float(weight)))
        self._terms = self._term_table(config, content_config)
        self._fillers = {normalize(t) for t in config.filler_terms}

    @staticmethod
    def _term_table(
        config: QueryUnderstandingConfig, content: ContentUnderstandingConfig
    ) -> dict[str, list[tuple[str, str]]]:
        """Query phrase -> [(slot kind, value)] for versions, genres, moods and seasons."""
        table: dict[str, list[tuple[str, str]]] = {}
        seasons: dict[str, list[str]] = {name: [] for name in content.seasonal_patterns}
        sources = [
            ("version", config.version_terms),
            ("genre", content.genre_tags),
            ("mood", content.mood_tags),
            ("season", {**seasons, **config.season_terms}),
        ]
        for kind, mapping in sources:
            for value, phrases in mapping.items():
                for phrase in list(phrases) + [value]:
                    key = normalize(phrase)
                    if key and (kind, value) not in table.get(key, []):
                        table.setdefault(key, []).append((kind, value))
        return table

    # ------------------------------------------------------------------ validation
    def validate(self, text: object) -> str:
        """The normalised query, or InvalidQuery naming the rule broken."""
        if not isinstance(text, str):
            raise InvalidQuery(f"a query must be text, got {type(text).__name__}")
        if len(text) > self.config.max_query_chars:
            raise InvalidQuery(f"query is {len(text)} characters; the limit is {self.config.max_query_chars}")
        if not text.strip():
            raise InvalidQuery("query is empty")
        normalised = normalize(text)
        if not normalised:
            raise InvalidQuery(f"query {text[:40]!r} has no letters or digits to search for")
        return normalised

    # ------------------------------------------------------------------ spelling
    def _alternatives(self, token: str) -> list[tuple[str, float]]:
        """The token itself, plus close vocabulary tokens when it is unknown or rare."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        config = self.config
        out = [(token, 1.0)]
        count = self._token_counts.get(token, 0)
        if count >= config.rare_token_count or len(token) < config.min_correctable_chars or token.isdigit():
            return out
        if token in self._terms or token in self._fillers:
            return out
        max_edits = config.max_edits_short if len(token) <= 6 else config.max_edits_long
        matches = process.extract(
            token, self._token_list, scorer=Levenshtein.distance, score_cutoff=max_edits, limit=50
        )
        ranked = sorted(
            ((cand, dist) for cand, dist, _ in matches if cand != token and dist > 0),
            key=lambda item: (item[1], -self._token_counts[item[0]]),
        )
        for candidate, distance in ranked[: config.max_corrections]:
            if self._token_counts[candidate] > count:
                out.append((candidate, 1.0 - distance / max(len(token), len(candidate))))
        return out

    # ------------------------------------------------------------------ spans
    def _span_slots(self, tokens: list[str], alternatives: list[list[tuple[str, float]]]) -> dict[int, list[Slot]]:
        from ..catalog.understanding import find_decades

        by_start: dict[int, list[Slot]] = {}
        n = len(tokens)
        for start in range(n):
            for end in range(start + 1, min(n, start + self.config.max_span_tokens) + 1):
                span_text = " ".join(tokens[start:end])
                best: dict[tuple[str, str], Slot] = {}
                combos = itertools.islice(itertools.product(*alternatives[start:end]), _MAX_SPAN_COMBINATIONS)
                for combo in combos:
                    candidate = " ".join(t for t, _ in combo)
                    similarity = math.prod(s for _, s in combo)
                    corrected = candidate != span_text
                    for slot in self._lookup(candidate, span_text, start, end, similarity, corrected, find_decades):
                        key = (slot.kind, slot.value)
                        if key not in best or best[key].confidence < slot.confidence:
                            best[key] = slot
                by_start.setdefault(start, []).extend(best.values())
        return by_start

    def _lookup(self, candidate, span_text, start, end, similarity, corrected, find_decades) -> list[Slot]:
        slots: list[Slot] = []
        n_tokens = end - start
        # Single common words are weaker evidence of a title/tag than multi-word names.
        specificity = 1.0 if n_tokens > 1 else 0.75
        entries = self._names.get(candidate, [])
        names_artist = any(kind == "artist" for kind, *_ in entries)
        for kind, display, _n, _pop in entries:
            if kind == "tag" and names_artist:
                continue  # Last.fm tags that name an artist ("taylor swift") echo the artist reading
            slots.append(Slot(kind, candidate, display, span_text, start, end, similarity * specificity, corrected))
        for kind, value in self._terms.get(candidate, []):
            slots.append(Slot(kind, value, value, span_text, start, end, similarity, corrected))
        if n_tokens == 1:
            for decade in find_decades(candidate)[:1]:
                if candidate.strip("s'").isdigit():
                    slots.append(Slot("decade", str(decade), f"{decade}s", span_text, start, end, 1.0))
        if n_tokens <= 2 and candidate not in self._fillers:
            for kind in ("artist", "tag"):
                # A tag may also be named partially beside an exact tag ("love" -> "love songs").
                if kind == "tag" or not any(s.kind == kind for s in slots):
                    slots += self._partial_names(kind, candidate, span_text, start, end, similarity, corrected)
        return slots

    def _partial_names(self, kind, candidate, span_text, start, end, similarity, corrected) -> list[Slot]:
        """'taylor' -> Taylor Swift, James Taylor...: names containing every span token, the
        most popular first, confidence scaled by how much of the name the span covers."""
        words = candidate.split()
        if sum(len(w) for w in words) < self.config.min_correctable_chars:
            return []
        pools = [self._partial_index[kind].get(w, []) for w in words]
        if not all(pools):
            return []
        names = {p[0]: p for p in pools[0]}
        for pool in pools[1:]:
            names = {p[0]: p for p in pool if p[0] in names}
        if kind == "tag":  # as for exact tags: a tag naming an artist echoes the artist reading
            names = {n: p for n, p in names.items() if not any(e[0] == "artist" for e in self._names.get(n, []))}
        ranked = sorted(names.values(), key=lambda p: -p[2])[: self.config.max_partial_names]
        if not ranked:
            return []
        top = math.log1p(max(p[2] for p in ranked)) + 1.0
        out = []
        for name, display, pop in ranked:
            coverage = len(candidate) / len(name)
            if coverage < self.config.min_partial_coverage or name == candidate:
                continue
            confidence = similarity * math.sqrt(coverage) * (math.log1p(pop) + 1.0) / top
            out.append(Slot(kind, name, display, span_text, start, end, confidence, corrected, partial=True))
        return out

    # ------------------------------------------------------------------ interpretations
    def _segment(self, tokens: list[str], by_start: dict[int, list[Slot]]) -> list[_State]:
        config = self.config
        priors = config.slot_priors
        beam = [_State(1.0, 0)]
        complete: list[_State] = []
        while beam:
            expanded: list[_State] = []
            for state in beam:
                if state.position == len(tokens):
                    complete.append(state)
                    continue
                token = tokens[state.position]
                factor = config.filler_factor if token in self._fillers else config.unexplained_token_factor
                expanded.append(
                    _State(
                        state.score * factor,
                        state.position + 1,
                        state.slots,
                        state.unexplained + (token,),
                        state.single_kinds,
                    )
                )
                for slot in by_start.get(state.position, []):
                    if slot.kind in state.single_kinds or any(
                        (s.kind, s.value) == (slot.kind, slot.value) for s in state.slots
                    ):
                        continue
                    singles = state.single_kinds | ({slot.kind} if slot.kind in SINGLE_SLOTS else set())
                    gain = slot.confidence * priors.get(slot.kind, 0.5) * config.slot_factor
                    expanded.append(
                        _State(
                            state.score * gain, slot.end, state.slots + (slot,), state.unexplained, frozenset(singles)
                        )
                    )
            expanded.sort(key=lambda s: -s.score)
            beam = expanded[:_BEAM_WIDTH]
        return complete

    def understand(self, text: str) -> QueryUnderstanding:
        normalised = self.validate(text)
        tokens = normalised.split()[: self.config.max_tokens]
        alternatives = [self._alternatives(t) for t in tokens]
        corrections = {t: [a for a, _ in alts[1:]] for t, alts in zip(tokens, alternatives) if len(alts) > 1}
        complete = self._segment(tokens, self._span_slots(tokens, alternatives))
        merged: dict[tuple, _State] = {}
        for state in complete:
            key = tuple(sorted((s.kind, s.value) for s in state.slots))
            if key not in merged or merged[key].score < state.score:
                merged[key] = state
        total = sum(s.score for s in merged.values()) or 1.0
        ranked = sorted(merged.values(), key=lambda s: -s.score)
        interpretations = [
            Interpretation(tuple(sorted(s.slots, key=lambda x: x.start)), s.unexplained, s.score / total)
            for s in ranked[: self.config.n_interpretations]
        ]
        kept = [i for i in interpretations if i.probability >= self.config.min_interpretation_probability]
        kept = kept or interpretations[:1]
        return QueryUnderstanding(text, normalised, tuple(tokens), corrections, tuple(kept), _intent(kept))


def _intent(interpretations: list[Interpretation]) -> dict[str, float]:
    """P(intent) summed over interpretations; a reading with no slot splits lookup/browse evenly."""
    mass = dict.fromkeys(INTENTS, 0.0)
    for interpretation in interpretations:
        intent = interpretation.intent
        if intent is None:
            mass["lookup"] += interpretation.probability / 2
            mass["browse"] += interpretation.probability / 2
        else:
            mass[intent] += interpretation.probability
    total = sum(mass.values()) or 1.0
    return {k: round(v / total, 4) for k, v in mass.items()}


def load_understander(qu_dir, settings) -> QueryUnderstander:
    from .resources import read_resources

    _, vocabulary = read_resources(qu_dir)
    return QueryUnderstander(vocabulary, settings.query_understanding, settings.content_understanding)


__all__ = ["InvalidQuery", "Interpretation", "QueryUnderstander", "QueryUnderstanding", "Slot", "load_understander"]
