"""What a pruning hook carries across checkpoints: one small object, one checkpoint entry.

``checkpoint['adasap_pruning']`` holds, at any moment, either the masked pruner's state (before the physical
switch) or the physical record (after it: the dense-relative masks, pruning steps, cost, summary and channel
configuration), plus ``AdaSAPHook``'s phase record (phase, bounds, the importance behind the radii in force).
The pruned shapes themselves are the model's (``meta['adasap_channels']``, written by ``ChannelRecordHook``).
Checkpoints of the earlier layout (the pruner state or ``physical`` in this entry, the phases in
``checkpoint['adasap_phases']``) are read as well.
"""
from dataclasses import dataclass
from typing import Optional

STATE_KEY = 'adasap_pruning'
LEGACY_PHASES_KEY = 'adasap_phases'
VERSION = 2


@dataclass
class PruningState:
    pruner: Optional[dict] = None  # the masked pruner's state, until the pruner exists to take it
    physical: Optional[dict] = None  # set once the model is pruned physically
    phases: Optional[dict] = None  # AdaSAPHook's phase record, until its before_train takes it
    iter: Optional[int] = None  # the iteration of the checkpoint it came from (None: not from a checkpoint)

    def to_checkpoint(self) -> dict:
        return dict(version=VERSION, pruner=self.pruner, physical=self.physical, phases=self.phases)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> Optional['PruningState']:
        entry = checkpoint.get(STATE_KEY)
        if entry is None:
            return None
        iteration = (checkpoint.get('meta') or {}).get('iter')
        if entry.get('version') == VERSION:
            return cls(entry['pruner'], entry['physical'], entry['phases'], iteration)
        physical = entry.get('physical')  # the earlier layout
        return cls(None if physical else entry, physical, checkpoint.get(LEGACY_PHASES_KEY), iteration)

    def continues_at(self, iteration: int) -> bool:
        """Whether training goes on from this state's checkpoint (a resume), not a new run from its weights."""
        return self.iter is not None and self.iter == iteration
