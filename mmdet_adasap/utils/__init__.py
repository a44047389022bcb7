"""General utilities that no single subsystem owns: checks of values where they enter (:mod:`.checks`),
atomic file writes (:mod:`.io`), the one timing function
every latency measurement runs through (:mod:`.timing`) and refusals of renamed public names (:mod:`.renamed`)."""
from .checks import check_int
from .io import TMP_SUFFIX, atomic_write_bytes, atomic_write_json
from .renamed import RenamedError, refuse_renamed
from .timing import steady_allocator, time_round_robin

__all__ = ['check_int', 'TMP_SUFFIX', 'atomic_write_bytes', 'atomic_write_json', 'RenamedError', 'refuse_renamed',
           'steady_allocator', 'time_round_robin']
