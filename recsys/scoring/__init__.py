"""Scoring: exact top-K recommendations for every user with explanations (``recsys score``)."""
