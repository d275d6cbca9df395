"""Config section ``evaluate`` (conf/base/evaluate.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

BASELINES: tuple[str, ...] = ("most_popular", "als", "item_knn")


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation settings (``recsys evaluate``): metrics, baselines and their tuning grids."""

    # Cut-offs K of every ranking metric; recommendation lists are max(ks) long.
    ks: tuple[int, ...] = (5, 10, 20)
    # Baselines are tuned on the validation split by this metric at this K.
    primary_metric: str = "ndcg"
    primary_k: int = 10
    # Which baselines run (any of most_popular, als, item_knn).
    baselines: tuple[str, ...] = BASELINES
    # Refit the baselines on train + validation (everything before each user's test item, the information the
    # model's scoring history has) before ranking the test split; false: the train split only.
    refit_with_validation: bool = True
    # Implicit ALS grid (rank x reg_param x alpha), tuned on validation.
    als_ranks: tuple[int, ...] = (16, 32)
    als_reg_params: tuple[float, ...] = (0.01, 0.1)
    als_alphas: tuple[float, ...] = (1.0,)
    als_max_iter: int = 10
    # Item-kNN: neighbours kept per item; most recent items per user used for similarities and profiles.
    knn_neighbours: int = 100
    knn_max_user_items: int = 200
    # Model version to evaluate; null: the one `recsys score` would pick (newest with item embeddings).
    model_version: str | None = None
    seed: int = 42
    # Write the HTML + Markdown report under <lakehouse>/reports/<run_id>/.
    report: bool = True
    histogram_bins: int = 20
