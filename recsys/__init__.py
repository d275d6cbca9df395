"""recsys: a distributed batch recommender built on a pretrained language model."""

__version__ = "0.1.0"
