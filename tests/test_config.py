"""Config loading: base + overlay + overrides into frozen dataclasses; errors name the key and the file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from recsys.config import AppConfig, ConfigError, load_config
from recsys.config.loader import load_tree, parse_override

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_conf(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_repository_config_loads_for_every_environment() -> None:
    for env in ("local", "test", "cluster"):
        config = load_config(env, conf_dir=REPO_ROOT / "conf")
        assert isinstance(config, AppConfig)
    assert load_config("test", conf_dir=REPO_ROOT / "conf").spark.master == "local[2]"



def test_base_config_names_every_key() -> None:
    """``conf/base`` is the reference of every setting: each dataclass field has its key there."""
    tree, _ = load_tree(REPO_ROOT / "conf", None)
    missing: list[str] = []

    def walk(config: object, node: dict, prefix: str) -> None:
        for field in dataclasses.fields(config):  # type: ignore[arg-type]
            value = getattr(config, field.name)
            if field.name not in node:
                missing.append(prefix + field.name)
            elif dataclasses.is_dataclass(value) and isinstance(node[field.name], dict):
                walk(value, node[field.name], f"{prefix}{field.name}.")

    walk(load_config(None, conf_dir=REPO_ROOT / "conf"), tree, "")
    assert not missing, f"keys missing from conf/base: {missing}"


def test_overlay_and_overrides_win_in_order(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, {
        "base/spark.yaml": "spark:\n  shuffle_partitions: 8\n  app_name: base\n",
        "local/spark.yaml": "spark:\n  shuffle_partitions: 4\n",
    })
    config = load_config("local", ["spark.app_name=cli", "storage.row_group_rows=77"], conf_dir=conf)
    assert config.spark.shuffle_partitions == 4
    assert config.spark.app_name == "cli"
    assert config.storage.row_group_rows == 77
    assert config.storage.lakehouse == "./lakehouse"  # default kept
    assert load_config("local", conf_dir=conf, lakehouse="s3://b/lh").lakehouse == "s3://b/lh"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(None, conf_dir=write_conf(tmp_path, {"base/empty.yaml": ""}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.spark.master = "yarn"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.spark.conf["x"] = "y"  # type: ignore[index]


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, {"base/spark.yaml": "spark:\n  shufle_partitions: 8\n"})
    with pytest.raises(ConfigError, match=r"base/spark.yaml: unknown key 'spark.shufle_partitions'"):
        load_config(None, conf_dir=conf)
    conf2 = write_conf(tmp_path / "b", {"base/x.yaml": "sparky: {}\n"})
    with pytest.raises(ConfigError, match="unknown key 'sparky'"):
        load_config(None, conf_dir=conf2)


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, {
        "base/spark.yaml": "spark:\n  shuffle_partitions: 8\n",
        "test/spark.yaml": "spark:\n  shuffle_partitions: many\n",
    })
    with pytest.raises(ConfigError, match=r"test/spark.yaml: key 'spark.shuffle_partitions' must be an integer"):
        load_config("test", conf_dir=conf)
    with pytest.raises(ConfigError, match=r"--set spark\.ui_enabled: key 'spark.ui_enabled' must be true or false"):
        load_config(None, ["spark.ui_enabled=maybe"], conf_dir=conf)


def test_unknown_environment_and_bad_override(tmp_path: Path) -> None:
    conf = write_conf(tmp_path, {"base/spark.yaml": "spark: {}\n"})
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        load_config("prod", conf_dir=conf)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["spark.master"], conf_dir=conf)
    with pytest.raises(ConfigError, match=r"unknown key 'spark\.nope'"):
        load_config(None, ["spark.nope=1"], conf_dir=conf)


def test_override_values_parse_as_yaml() -> None:
    assert parse_override("a.b=5") == ("a.b", 5)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a.b=local[*]") == ("a.b", "local[*]")
    assert parse_override("a.b=x=y") == ("a.b", "x=y")


@pytest.mark.parametrize("override", ["etl.mode=Incremental", "etl.source=event", "etl.time_grain=week",
                                      "etl.missing_item_policy=drop", "etl.events.format=tsv",
                                      "etl.implicit.weighting=scaled"])
def test_etl_choices_are_checked_when_loaded(override: str) -> None:
    """A misspelt choice is a configuration error naming the choices; ``etl.mode=Incremental`` used to run as a
    full run, which replaced the interactions table with the batch."""
    key = override.split("=", 1)[0]
    with pytest.raises(ConfigError, match=rf"key '{re.escape(key)}' must be one of"):
        load_config("test", [override], conf_dir=REPO_ROOT / "conf")


@pytest.mark.parametrize(("template", "problem"), [
    ("{title}[ ({year})", "not closed"), ("[{title}[ x]]", "do not nest"),
    ("{title}. {genre}", "unknown field"),
])
def test_text_template_is_checked_when_loaded(tmp_path: Path, template: str, problem: str) -> None:
    """A stray bracket used to vanish from every item's text; an unknown field failed only inside the job."""
    conf = write_conf(tmp_path, {"base/etl.yaml": f"etl:\n  text_template: {template!r}\n"})
    with pytest.raises(ConfigError, match=problem):
        load_config(None, conf_dir=conf)
