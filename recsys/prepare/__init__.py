"""Training-data preparation (``recsys prepare``): pure DataFrame -> DataFrame transforms.

The job (:mod:`recsys.jobs.prepare`) reads ``interactions`` and ``items``, calls these transforms and
overwrites the outputs. Semantics, in one place:

* Only positive implicit feedback (``weight > 0``, not NaN) becomes training examples, truth items and history
  items. Interactions of any weight count as *seen* (``user_histories.seen_items``, excluded at scoring).
* A user's interactions are ordered by ``(ts, item_idx)`` (ties in time broken by item index); "before"
  means earlier in that order.
* ``prepare.split.strategy``:

  - ``leave_last_out``: for users with at least ``min_user_interactions`` (default 3) positive interactions,
    the last is the test item, the one before it the validation item, the rest train. Users with fewer are
    train-only: their interactions are training examples and history, they get no truth rows.
  - ``time_cutoff``: train = positives before ``validation_cutoff`` (or ``cutoff`` without one); a user's
    first positive in ``[validation_cutoff, cutoff)`` is its validation item (the later ones are history for
    the test item only); its first positive at/after ``cutoff`` is its test item; later ones are unused.
  - ``none`` (serving): nothing held out; every positive is train, the truth tables are empty and
    ``user_histories`` ends with each user's latest interaction.

* ``train_examples``: every train interaction with at least ``min_history`` earlier train items; ``history``
  = the ``history_length`` (L) train items just before it. Optionally only the ``max_examples_per_user`` most
  recent per user. Deterministically shuffled (hash of seed, user, ts, item) into >= ``min_row_groups`` files
  and row groups.
* ``validation_truth`` / ``test_truth``: one row per user with such an item and a non-empty history (the L
  positive items just before it: for test, train + validation items).
* ``user_histories``: one row per user with at least one positive interaction before its test item (time
  split: before ``cutoff``); users without a test item use all their interactions.
* ``item_tokens``: every item of ``items`` (cold ones included, ``train_count`` 0), its ``text`` (else
  ``title``) tokenized with the model's tokenizer (``prepare.tokenizer``) to ``max_text_tokens``.

Arrays are left-padded with ``PAD_ITEM`` (-1) to length L, most recent item last.
"""
