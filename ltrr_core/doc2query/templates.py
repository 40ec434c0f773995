"""Metadata templates: "<title> <artist>", "<artist> songs", "<tag> music", ...

The cold-start generator: it needs no logs, so it covers entities and vocabularies nobody
has searched yet. Template scores (config) are prior engagement rates, highest for the most
specific phrasing.
"""

from __future__ import annotations

import pandas as pd

from .. import schema as S
from ..config import TemplateConfig
from ..query.resources import core_title
from .base import COLUMNS, empty


class TemplateGenerator:
    name = "templates"

    def __init__(self, templates: list[TemplateConfig], max_tags: int):
        self.templates = templates
        self.max_tags = max_tags

    def generate(self, entities: pd.DataFrame) -> pd.DataFrame:
        rows: list[tuple[str, str, float, str]] = []
        for entity_id, etype, title, artists, album, tags in zip(
            entities[S.ID],
            entities[S.TYPE],
            entities[S.TITLE],
            entities[S.ARTISTS],
            entities[S.ALBUM],
            entities[S.TAGS],
        ):
            values = {
                "title": core_title(title),
                "artist": (
                    title if etype == "artist" else (artists[0] if artists is not None and len(artists) else "")
                ),
                "album": album if isinstance(album, str) else "",
            }
            own_tags = list(tags if tags is not None else [])[: self.max_tags]
            for template in self.templates:
                if template.entity_type != etype:
                    continue
                for tag in own_tags if "{tag}" in template.pattern else [None]:
                    fields = {**values, "tag": tag or ""}
                    if any(f"{{{name}}}" in template.pattern and not fields[name] for name in fields):
                        continue  # a template needing a missing field yields nothing
                    rows.append((entity_id, template.pattern.format(**fields), template.score, self.name))
        return pd.DataFrame(rows, columns=COLUMNS) if rows else empty()
