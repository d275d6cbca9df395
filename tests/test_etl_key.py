"""Pseudonymization key: environment first, else a secret file (created 0600 only when configured)."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from recsys.etl.pseudonymize import KEY_ENV, PseudonymKeyError, load_key, pseudonym
from recsys.etl.settings import EtlConfig


def test_key_from_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "from-env")
    cfg = EtlConfig(pseudonym_key_file=str(tmp_path / "k"), create_key_if_missing=True)
    assert load_key(cfg) == b"from-env"
    assert not (tmp_path / "k").exists()


def test_key_file_created_owner_only_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / ".secrets" / "pseudonym.key"
    cfg = EtlConfig(pseudonym_key_file=str(path), create_key_if_missing=True)
    key = load_key(cfg)
    assert len(key) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(cfg) == key  # same key, same pseudonyms across runs
    assert pseudonym(key, "42") == pseudonym(load_key(cfg), "42") != pseudonym(b"other", "42")


def test_missing_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match=KEY_ENV):
        load_key(EtlConfig())
    cfg = dataclasses.replace(EtlConfig(), pseudonym_key_file=str(tmp_path / "none.key"))
    with pytest.raises(PseudonymKeyError, match="create_key_if_missing"):
        load_key(cfg)
