"""Application configuration: ``load_config(env=..., overrides=[...])`` -> frozen :class:`AppConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recsys.config.loader import ConfigError, build_config, default_conf_dir, load_tree, to_dict
from recsys.config.sections import SparkConfig, StorageConfig
from recsys.embedding.settings import EmbedConfig
from recsys.etl.settings import EtlConfig
from recsys.evaluation.settings import EvaluateConfig
from recsys.prepare.settings import PrepareConfig
from recsys.scoring.settings import ScoreConfig
from recsys.training.settings import TrainConfig

__all__ = ["AppConfig", "ConfigError", "SparkConfig", "StorageConfig", "load_config", "to_dict"]


@dataclass(frozen=True)
class AppConfig:
    """The whole configuration; one attribute per YAML section."""

    spark: SparkConfig = field(default_factory=SparkConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    etl: EtlConfig = field(default_factory=EtlConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    @property
    def lakehouse(self) -> str:
        return self.storage.lakehouse


def load_config(
    env: str | None = "local",
    overrides: Iterable[str] = (),
    lakehouse: str | None = None,
    conf_dir: str | Path | None = None,
) -> AppConfig:
    """Load ``conf/base`` + the ``env`` overlay + ``--set`` overrides (+ ``--lakehouse``) into AppConfig.

    Raises:
        ConfigError: unknown key, wrong type or unreadable file; the message names key and file.
    """
    directory = Path(conf_dir) if conf_dir else default_conf_dir()
    all_overrides = list(overrides)
    tree, origin = load_tree(directory, env, all_overrides)
    config = build_config(AppConfig, tree, origin)
    if lakehouse:
        config = dataclasses.replace(config, storage=dataclasses.replace(config.storage, lakehouse=lakehouse))
    return config
