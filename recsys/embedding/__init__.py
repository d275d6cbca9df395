"""Item and user embeddings with a trained model, computed in Spark (``recsys embed``)."""
