"""Refused: the generality matrix is benchmark code and lives in :mod:`mmdet_adasap.benchmarks.generality`."""
from ..utils.renamed import RenamedError

raise RenamedError('mmdet_adasap.apis.generality moved: use mmdet_adasap.benchmarks.generality')
