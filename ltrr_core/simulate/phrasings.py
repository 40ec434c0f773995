"""How people phrase a tag or "songs like X" request: templates mined from real requests.

The templates are REAL phrasings with the entity cut out; only the slot filling is GENERATED.

Mined from two sets of real music requests (see ``../shared/data/README.md``):

* **MusicRecoNER** (Reddit recommendation requests, ``musicreconer_ds*``): the annotated
  Artist mention of a sentence becomes ``{artist}``; a genre word becomes ``{tag}``.
* **CPCD** (``dialogs.train.jsonl``): what the person said in each turn. An artist of the
  conversation's tracks (or any multi-word CPCD artist name) named in an utterance becomes
  ``{artist}``; a genre word becomes ``{tag}``. Only conversations of the configured split parts
  are read (never ``heldout``: evaluation conversations must not shape what the simulator
  types). The searches typed for the person are not mined: with a genre word in them they are
  mostly song titles ("all i want for christmas", "party in the usa").

Method, per sentence (a request is split at ``|`` in MusicRecoNER, at . ! ? in CPCD):
normalise it (URLs dropped, then ``ltrr_core.text.normalize``: lowercase, ASCII, punctuation to
spaces, whitespace collapsed); find the mentions (whole words, longest name first); keep the
sentence as a template when it holds exactly one mention of its kind and names nothing else,
has a word besides the slot and is at most ``phrasing_max_tokens`` tokens (the slot counts as
one). "Nothing else" means: no other annotated MusicRecoNER mention, no other artist or
multi-word track title of the CPCD conversation, and no name of the wider vocabulary (CPCD
artists and titles, Last.fm artists, every mention found in the sentences) with a rare word --
a word seen in fewer than ``ORDINARY_WORD_SENTENCES`` distinct sentences outside mentions --
nor any word seen in fewer than ``MIN_WORD_SENTENCES`` (most likely a name, a title or a typo
that no vocabulary knows). These rules drop "artists like {artist} or tupac" and "{artist}
nickle back" while keeping "i love {artist}" although "Love" and "I" are also band names.

Genre words are the Last.fm tags given to at least ``tag_min_artists`` artists whose name is
also a Wikidata music genre (with or without "music"): Last.fm alone would make "love" or
"awesome" a slot. Templates are deduplicated and sorted, so mining is deterministic; each keeps
its sources and one real sentence it came from.

GENERATED: which template a simulated person uses (``variants.typed_query`` draws one
uniformly) and the value put in its slot (the intent's tag or artist name).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ..config import Settings, SplitsConfig
from ..query.musicreconer import load_musicreco_ner
from ..splits import cpcd_part
from ..text import normalize

Kind = Literal["artist", "tag"]
Source = Literal["musicreconer", "cpcd"]
Span = tuple[int, int]
KINDS: tuple[Kind, ...] = ("artist", "tag")
SOURCES: tuple[Source, ...] = ("musicreconer", "cpcd")
SLOTS: dict[Kind, str] = {"artist": "{artist}", "tag": "{tag}"}
ORDINARY_WORD_SENTENCES = 20  # a word in this many sentences (outside mentions) is no name's tell
MIN_WORD_SENTENCES = 2  # a word of fewer sentences is taken for a name, a title or a typo

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_CPCD_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MIN_NAME_CHARS = 3  # shorter artist names of a conversation match ordinary words


@dataclass(frozen=True)
class MinedTemplate:
    kind: Kind
    text: str  # normalised, with exactly one slot
    sources: tuple[Source, ...]  # the data sets it was mined from
    example: str  # one real (normalised) sentence it came from


@dataclass(frozen=True)
class PhrasingTemplates:
    artist: tuple[str, ...]  # each with one "{artist}" slot, sorted
    tag: tuple[str, ...]  # each with one "{tag}" slot, sorted
    mined: tuple[MinedTemplate, ...]  # both kinds with their sources, sorted by (kind, text)

    def counts(self) -> dict[str, dict[str, int]]:
        """Distinct templates per kind: ``total`` and per source (a template can have both)."""
        out: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            of_kind = [m for m in self.mined if m.kind == kind]
            out[kind] = {"total": len(of_kind), **{s: sum(s in m.sources for m in of_kind) for s in SOURCES}}
        return out


def clean(text: str) -> str:
    """A sentence as templates are written: URLs dropped, then the index/query normalisation."""
    return normalize(_URL.sub(" ", text))


def fill(template: str, slot: dict[str, str]) -> str:
    """The template with its slot replaced by the intent's value (``str.replace``, not ``format``:
    an artist name may hold braces)."""
    for name, value in slot.items():
        template = template.replace("{" + name + "}", value)
    return template


def mine_templates(settings: Settings) -> PhrasingTemplates:
    """Templates of both kinds from the real data named in ``settings`` (memoised per process).

    Raises FileNotFoundError for a missing file and ValueError, naming the files, when a kind
    has fewer than ``simulate.min_mined_templates`` distinct templates."""
    config, paths = settings.simulate, settings.catalog.paths
    requests = (
        settings.shared_path(config.phrasing_musicreconer_dir),
        settings.shared_path(config.phrasing_cpcd_dialogs),
    )
    vocabulary = (
        settings.shared_path(paths.lastfm_tags),
        settings.shared_path(paths.lastfm_user_tagged),
        settings.shared_path(config.phrasing_genres),
        settings.shared_path(paths.cpcd_tracks),
        settings.shared_path(paths.lastfm_artists),
    )
    for path in (*requests, *vocabulary):
        if not path.exists():
            raise FileNotFoundError(
                f"phrasing templates are mined from {path}, which does not exist "
                "(or set simulate.phrasing_source: fixed)"
            )
    templates = _mine(
        *requests,
        *vocabulary,
        tuple(sorted(config.phrasing_cpcd_parts)),
        settings.splits,
        config.phrasing_max_tokens,
        config.tag_min_artists,
    )
    short = {k: n["total"] for k, n in templates.counts().items() if n["total"] < config.min_mined_templates}
    if short:
        raise ValueError(
            f"mined only {short} distinct phrasing templates (need {config.min_mined_templates} per kind) "
            f"from the requests in {requests[0]} and {requests[1]} (names and genre words from "
            f"{', '.join(str(f) for f in vocabulary)}); check those files, or set "
            "simulate.phrasing_source: fixed"
        )
    return templates


@dataclass
class _Sentence:
    tokens: list[str]
    source: Source
    artists: list[Span]  # artist mentions: the {artist} slot when exactly one
    others: list[Span]  # other entity mentions (titles, works), may overlap artists


@lru_cache(maxsize=4)
def _mine(
    musicreconer_dir: Path,
    cpcd_dialogs: Path,
    lastfm_tags: Path,
    lastfm_tagged: Path,
    genres_file: Path,
    cpcd_tracks: Path,
    lastfm_artists: Path,
    cpcd_parts: tuple[str, ...],
    splits: SplitsConfig,
    max_tokens: int,
    tag_min_artists: int,
) -> PhrasingTemplates:
    genres, all_genres = genre_words(lastfm_tags, lastfm_tagged, genres_file, tag_min_artists)
    names = _known_names(cpcd_tracks, lastfm_artists) - all_genres
    sentences = [
        *_musicreconer_sentences(musicreconer_dir),
        *_cpcd_sentences(cpcd_dialogs, cpcd_parts, splits, all_genres),
    ]
    names |= {" ".join(s.tokens[a:b]) for s in sentences for a, b in s.others + s.artists}
    distinct = {tuple(s.tokens): s for s in sentences}.values()
    seen = Counter(w for s in distinct for w in set(_outside(s.tokens, s.artists + s.others)))
    telling = _phrase_index(n for n in names - all_genres if any(seen[w] < ORDINARY_WORD_SENTENCES for w in n.split()))
    genre_index = _phrase_index(genres)
    found: dict[tuple[Kind, str], tuple[set[Source], str]] = {}
    for s in sentences:
        mentioned = s.artists + s.others
        if len(s.artists) == 1 and all(_overlaps(o, s.artists) for o in s.others):
            _keep(found, "artist", s, s.artists[0], telling, seen, max_tokens)
        tags = find(s.tokens, genre_index)
        if not mentioned and len(tags) == 1:
            _keep(found, "tag", s, tags[0], telling, seen, max_tokens)
    mined = tuple(
        MinedTemplate(kind, text, tuple(x for x in SOURCES if x in sources), example)
        for (kind, text), (sources, example) in sorted(found.items())
    )
    return PhrasingTemplates(
        artist=tuple(m.text for m in mined if m.kind == "artist"),
        tag=tuple(m.text for m in mined if m.kind == "tag"),
        mined=mined,
    )


def _keep(
    found: dict[tuple[Kind, str], tuple[set[Source], str]],
    kind: Kind,
    sentence: _Sentence,
    slot: Span,
    telling: dict[str, list[tuple[str, ...]]],
    seen: Counter[str],
    max_tokens: int,
) -> None:
    tokens = sentence.tokens
    if not 2 <= len(tokens) - (slot[1] - slot[0]) + 1 <= max_tokens:
        return
    if any(seen[w] < MIN_WORD_SENTENCES for w in _outside(tokens, [slot])):
        return  # a word no other sentence uses: most likely a name, a title or a typo missed
    if any(not _overlaps(span, [slot]) for span in find(tokens, telling)):
        return  # names something else: a template must hold no real entity but its slot
    text = " ".join([*tokens[: slot[0]], SLOTS[kind], *tokens[slot[1] :]])
    found.setdefault((kind, text), (set(), " ".join(tokens)))[0].add(sentence.source)


# -- vocabularies ------------------------------------------------------------------------------
def genre_words(
    lastfm_tags: Path, lastfm_tagged: Path, genres_file: Path, min_artists: int
) -> tuple[frozenset[str], frozenset[str]]:
    """(normalised Last.fm tags given to >= ``min_artists`` artists that are Wikidata genres,
    every normalised Wikidata genre with and without "music")."""
    tags = pd.read_csv(
        lastfm_tags, sep="\t", encoding="latin-1", dtype={"tagID": int, "tagValue": str}, keep_default_na=False
    )
    tagged = pd.read_csv(lastfm_tagged, sep="\t", usecols=["artistID", "tagID"])
    artists = tagged.groupby("tagID")["artistID"].nunique()
    common = tags[tags["tagID"].map(artists).fillna(0) >= min_artists]["tagValue"].map(normalize)
    genres = set(
        pd.read_csv(genres_file, sep="\t", usecols=["name"], dtype=str, keep_default_na=False)["name"].map(normalize)
    )
    genres |= {g.removesuffix(" music") for g in genres} | {g + " music" for g in genres}
    genres.discard("")
    return frozenset(t for t in common if t in genres), frozenset(genres)


def _known_names(cpcd_tracks: Path, lastfm_artists: Path) -> set[str]:
    """Normalised CPCD artists and multi-word titles and Last.fm artists: names that no template may keep."""
    tracks = pd.read_csv(cpcd_tracks, sep="\t", dtype=str, keep_default_na=False)
    artists = pd.read_csv(lastfm_artists, sep="\t", usecols=["name"], dtype=str, keep_default_na=False)
    names = {clean(a) for value in tracks["artists"] for a in value.split("|")} | set(artists["name"].map(clean))
    names |= {t for t in tracks["title"].map(clean) if " " in t}
    return names - {""}


def _phrase_index(phrases: Iterable[str]) -> dict[str, list[tuple[str, ...]]]:
    """First token -> the phrases (as token tuples) starting with it, longest first."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in set(phrases):
        tokens = tuple(phrase.split())
        if tokens:
            index.setdefault(tokens[0], []).append(tokens)
    for options in index.values():
        options.sort(key=lambda t: (-len(t), t))
    return index


def find(tokens: list[str], index: dict[str, list[tuple[str, ...]]]) -> list[Span]:
    """Non-overlapping whole-word matches as (start, end) token spans, longest at each place."""
    spans, i = [], 0
    while i < len(tokens):
        match = next((len(p) for p in index.get(tokens[i], ()) if tuple(tokens[i : i + len(p)]) == p), 0)
        if match:
            spans.append((i, i + match))
            i += match
        else:
            i += 1
    return spans


def _overlaps(span: Span, others: Iterable[Span]) -> bool:
    return any(span[0] < b and a < span[1] for a, b in others)


def _outside(tokens: list[str], spans: list[Span]) -> list[str]:
    return [w for i, w in enumerate(tokens) if not any(a <= i < b for a, b in spans)]


# -- MusicRecoNER ------------------------------------------------------------------------------
def _musicreconer_sentences(directory: Path) -> Iterator[_Sentence]:
    queries, gold = load_musicreco_ner(directory)
    for query in queries:
        mentions = gold.get(query, [])
        if any(not find(clean(query).split(), _phrase_index([m])) for m, _ in mentions):
            continue  # an annotated mention not found in the text: it could stay in a template
        annotated = _phrase_index(m for m, _ in mentions)
        for sentence in query.split("|"):
            tokens = clean(sentence).split()
            spans = find(tokens, annotated)
            artists = [s for s in spans if (" ".join(tokens[s[0] : s[1]]), "artist") in mentions]
            yield _Sentence(tokens, "musicreconer", artists, [s for s in spans if s not in artists])


# -- CPCD --------------------------------------------------------------------------------------
def _cpcd_sentences(
    path: Path, parts: Collection[str], splits: SplitsConfig, genres: frozenset[str]
) -> Iterator[_Sentence]:
    conversations = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    multiword_artists = {n for c in conversations for n in _artists(c) if " " in n}
    for conversation in conversations:
        if cpcd_part(str(conversation["id"]), splits) not in parts:
            continue
        own = {n for n in _artists(conversation) if len(n) >= _MIN_NAME_CHARS}
        artists = _phrase_index((own | multiword_artists) - genres)  # the artist "Country Music" is no slot
        titles = _phrase_index(
            t
            for t in (clean(str(track.get("track_titles", ""))) for track in conversation.get("tracks", {}).values())
            if " " in t
        )
        for turn in conversation.get("turns", []):
            for sentence in _CPCD_SENTENCE.split(str(turn.get("user_query", ""))):
                tokens = clean(sentence).split()
                yield _Sentence(tokens, "cpcd", find(tokens, artists), find(tokens, titles))


def _artists(conversation: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for track in conversation.get("tracks", {}).values():
        artists = track.get("track_artists", [])
        names |= {clean(str(a)) for a in (artists if isinstance(artists, list) else [artists])}
    return names - {""}
