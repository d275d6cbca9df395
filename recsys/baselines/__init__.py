"""Baseline recommenders evaluated beside the model: most-popular, implicit ALS, item-kNN.

Each produces ``user_idx, item_idx, score, rank`` (exact top-K, seen items excluded) for given users; all are
scored by the same metric adapter (:mod:`recsys.evaluation.adapter`).
"""
