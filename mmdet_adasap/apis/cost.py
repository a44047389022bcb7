"""What a pruned detector costs: parameters, FLOPs (conv + linear MACs, torch-pruning's counter, the count the
FLOPs target uses) and batch-1 CPU latency measured interleaved with the dense model, so that load on a shared
machine slows both alike and the ratio stays meaningful. One home for ``tools/prune_report.py`` and the method
comparison (``mmdet_adasap.experiments``)."""
from typing import List, Sequence, Tuple

import torch
import torch_pruning as tp

from mmdet_adasap.pruning.channel_groups import TracedPart, model_call
from mmdet_adasap.utils.timing import time_round_robin


def params_and_flops(model: torch.nn.Module, shape: Sequence[int]) -> dict:
    """``params``; ``flops``: conv + linear MACs of the traced part; ``flops_all_ops``: the counter's total."""
    total, _, layer_flops, _ = tp.utils.count_ops_and_params(TracedPart(model), torch.zeros(tuple(shape)),
                                                             layer_wise=True)
    macs = sum(v or 0 for m, v in layer_flops.items() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return dict(params=sum(p.numel() for p in model.parameters()), flops=int(macs), flops_all_ops=int(total))


def interleaved_latency(models: Sequence[torch.nn.Module], shape: Sequence[int], repeats: int,
                        threads: int = 1) -> List[float]:
    """Median ms of one forward of each model's traced part (eval mode), timed in alternating rounds."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return time_round_robin([model_call(m, shape) for m in models], repeats, warmup=2)
    finally:
        torch.set_num_threads(before)


def out_channels_kept(dense: torch.nn.Module, pruned: torch.nn.Module) -> List[Tuple[str, int, int]]:
    """(layer, dense output channels, pruned output channels) of every conv / linear layer, in module order
    (what a pruned model kept, read off the two models; :func:`~mmdet_adasap.pruning.channel_groups.layer_channels`
    is the cost models' prediction of the same from kept counts)."""
    pruned_modules = dict(pruned.named_modules())

    def width(m):
        return m.out_channels if isinstance(m, torch.nn.Conv2d) else m.out_features
    return [(name, width(m), width(pruned_modules[name])) for name, m in dense.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
