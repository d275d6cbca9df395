"""Evaluation: ranking metrics of the model and the baselines on the held-out splits (``recsys evaluate``)."""
