"""Analysis of experiment results: statistics over seeds (:mod:`.stats`) and the per-neuron mechanism probe
(:mod:`.sensitivity`)."""
from .stats import PairedDifference, SeedSummary, paired_difference, summarize_seeds

__all__ = ['PairedDifference', 'SeedSummary', 'paired_difference', 'summarize_seeds']
