"""Text normalisation shared by indexing, querying and content understanding.

Two levels: ``fold`` keeps punctuation (content-understanding patterns need brackets and
dashes), ``normalize`` is what every index and every query goes through, so that a query
typed as "Beyoncé — Halo!" and a catalog title "Halo" by "Beyonce" meet on the same tokens.
unidecode transliterates diacritics and non-Latin scripts more completely than stripping
combining marks by hand.
"""

from __future__ import annotations

import re
import unicodedata

from unidecode import unidecode

_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^0-9a-z&']+")
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)|'")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def fold(text: object) -> str:
    """NFKC, case-folded, control characters removed, whitespace collapsed; punctuation kept."""
    if not isinstance(text, str) or not text:  # None, NaN from pandas
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text).casefold()
    return _WS.sub(" ", text).strip()


def normalize(text: object) -> str:
    """The index/query form: folded, transliterated to ASCII, punctuation to spaces."""
    folded = fold(text)
    if not folded:
        return ""
    ascii_text = unidecode(folded).lower()
    ascii_text = _APOSTROPHE.sub("", ascii_text)  # "don't" -> "dont", "guns n' roses" -> "guns n roses"
    ascii_text = _NON_WORD.sub(" ", ascii_text).replace("&", " and ")
    return _WS.sub(" ", ascii_text).strip()


_LEADING_ARTICLE = re.compile(r"^(?:the|a|an|los|las|la|le|les|el|die|der|das) ")


def name_key(name: str | None) -> str:
    """Key for linking the same artist across sources: normalised, leading article dropped."""
    key = normalize(name)
    return _LEADING_ARTICLE.sub("", key) if key.count(" ") else key


_SCRIPT_ALIASES = {"HIRAGANA": "Kana", "KATAKANA": "Kana", "CJK": "Han", "HANGUL": "Hangul"}


def dominant_script(text: str | None) -> str | None:
    """Unicode script of most letters (Latin, Cyrillic, Han, Kana, Hangul, Arabic, ...).

    unicodedata names start with the script for letters, which is all we need here; a
    dedicated library would add a dependency for a ten-line job.
    """
    counts: dict[str, int] = {}
    for char in text or "":
        if not char.isalpha():
            continue
        try:
            first = unicodedata.name(char).split(" ", 1)[0]
        except ValueError:
            continue
        script = _SCRIPT_ALIASES.get(first, first.title())
        counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    return max(counts.items(), key=lambda item: item[1])[0]
