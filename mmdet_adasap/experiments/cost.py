"""What a pruned detector costs: parameters, FLOPs (conv + linear MACs, torch-pruning's counter, the count the
FLOPs target uses) and batch-1 CPU latency measured interleaved with the dense model, so that load on a shared
machine slows both alike and the ratio stays meaningful."""
from typing import List, Sequence

import torch
import torch_pruning as tp

from mmdet_adasap.pruning.channel_groups import TracedPart, default_forward
from mmdet_adasap.pruning.latency import time_call


def params_and_flops(model: torch.nn.Module, shape: Sequence[int]) -> dict:
    _, _, layer_flops, _ = tp.utils.count_ops_and_params(TracedPart(model), torch.zeros(shape), layer_wise=True)
    macs = sum(v or 0 for m, v in layer_flops.items() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return dict(params=sum(p.numel() for p in model.parameters()), flops=int(macs))


def interleaved_latency(models: Sequence[torch.nn.Module], shape: Sequence[int], repeats: int,
                        threads: int = 1) -> List[float]:
    """Median ms of one batch-1 forward of each model's traced part, measured in alternating rounds."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(tuple(shape))
        fns = [(lambda m=m, f=default_forward(m): f(m, x)) for m in models]
        for fn in fns:
            time_call(fn, repeats=1, warmup=2)
        times = [[] for _ in models]
        for _ in range(repeats):
            for t, fn in zip(times, fns):
                t.append(time_call(fn, repeats=1, warmup=0))
        return [sorted(t)[len(t) // 2] for t in times]
    finally:
        torch.set_num_threads(before)
