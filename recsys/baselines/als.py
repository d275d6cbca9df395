"""Spark MLlib ALS in implicit-feedback mode; recommendations by the exact top-K kernel on its factors."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys.baselines.dense import dense_top_k
from recsys.schemas import Col
from recsys.scoring.recommend import ScoringPlan


@dataclass(frozen=True)
class AlsParams:
    rank: int
    reg_param: float
    alpha: float

    @property
    def label(self) -> str:
        return f"als(rank={self.rank},reg={self.reg_param:g},alpha={self.alpha:g})"


def fit_als(fit: DataFrame, params: AlsParams, max_iter: int, seed: int) -> ALSModel:
    """Fit implicit ALS on binary user-item preferences (one row per distinct user-item pair of ``fit``).

    This is an action (Spark runs the training).
    """
    ratings = fit.select(Col.USER_IDX, Col.ITEM_IDX).distinct().withColumn("rating", F.lit(1.0).cast("float"))
    als = ALS(rank=params.rank, regParam=params.reg_param, alpha=params.alpha, maxIter=max_iter,
              implicitPrefs=True, userCol=Col.USER_IDX, itemCol=Col.ITEM_IDX, ratingCol="rating", seed=seed,
              nonnegative=False, checkpointInterval=-1)
    return als.fit(ratings)


def als_recommend(model: ALSModel, users: DataFrame, k: int, plan: ScoringPlan) -> DataFrame:
    """Top-``k`` unseen items by the factor dot product for ``users`` (``user_idx, seen_items``).

    ``plan`` lays out the item factors (vectors of length ``model.rank``), as :func:`dense_top_k` takes it.
    """
    user_vecs = model.userFactors.select(F.col("id").alias(Col.USER_IDX), F.col("features").alias(Col.EMBEDDING))
    item_vecs = model.itemFactors.select(F.col("id").alias(Col.ITEM_IDX), F.col("features").alias(Col.EMBEDDING))
    frame = users.select(Col.USER_IDX, "seen_items").join(user_vecs, Col.USER_IDX)
    return dense_top_k(frame, item_vecs, k, plan)
