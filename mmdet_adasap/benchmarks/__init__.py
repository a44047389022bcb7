"""Benchmarks over the library: which detectors prune (:mod:`.generality`) and how latency-aware pruning
lands its targets and what accuracy it keeps (:mod:`.latency_prune`). The ``tools/`` scripts are their command
lines; speed targets live here and in those scripts, never in timed tests."""
