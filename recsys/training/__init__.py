"""Two-tower recommender training on Ray Train, fed by Petastorm.

Public API: :func:`recsys.training.artifact.load_model` (-> ``LoadedModel`` with ``encode_items`` and
``encode_users``), :func:`recsys.training.trainer.train` (the driver) and
:func:`recsys.training.loop.train_loop_per_worker` (the per-worker seam).
"""
