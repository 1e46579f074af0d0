"""Argument helpers shared by the command modules."""

from __future__ import annotations

from pathlib import Path

from wmeval.reality.base import Layout


def split_csv(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def csv_tuple(text: str | None) -> tuple[str, ...] | None:
    items = split_csv(text)
    return tuple(items) if items else None


def store_layout(root: Path) -> Layout | None:
    manifest = root / "store.json"
    if manifest.is_file():
        from wmeval.data.store import EpisodeStore

        return EpisodeStore(root).layout
    return None
