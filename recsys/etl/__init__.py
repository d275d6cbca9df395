"""ETL stage: raw interactions and item catalogs -> clean, pseudonymized, indexed Delta tables.

Modules: :mod:`~recsys.etl.sources` (layout detection, parsing), :mod:`~recsys.etl.rules` (row rules,
weights), :mod:`~recsys.etl.dedup`, :mod:`~recsys.etl.activity` (bots, catalog, k-core),
:mod:`~recsys.etl.pseudonymize`, :mod:`~recsys.etl.indexing`, :mod:`~recsys.etl.items` and
:mod:`~recsys.etl.pipeline`; reason codes in :mod:`~recsys.etl.reasons`. The job is :mod:`recsys.jobs.etl`.
"""
