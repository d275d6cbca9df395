"""Synthetic datasets generated with Spark (``recsys synth``)."""

from recsys.synth.generate import SynthSpec, synth_interactions, synth_items, write_dataset

__all__ = ["SynthSpec", "synth_interactions", "synth_items", "write_dataset"]
