"""Bundled sample data: MovieLens ml-latest-small (GroupLens; see its README.txt for the license)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR: Path = Path(__file__).resolve().parent / "ml-latest-small"

__all__ = ["SAMPLE_DIR"]
