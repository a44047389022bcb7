"""Body of the 2-process gloo DDP tests (run by torch.multiprocessing.spawn from test_ddp.py)."""
import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import build_optim_wrapper

from test_engine.tiny_models import TinyNet, tiny_batch


class PoisonRank0FirstPass(TinyNet):
    """Rank 0 only: a non-finite loss in the first pass of the first step."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        if dist.get_rank() == 0 and self.forward_calls == 1:
            out['loss_cls'] = out['loss_cls'] * float('inf')
        return out


def run(rank, world_size, init_file, out_dir, steps, wrapper_kwargs, poison):
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # same initial weights on both ranks
        model = (PoisonRank0FirstPass if poison else TinyNet)()
        ddp = MMDistributedDataParallel(module=model, device_ids=None)
        ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                                             **wrapper_kwargs))
        for step in range(steps):
            ddp.train_step(tiny_batch(seed=100 * step + rank), ow)  # each rank its own half of the batch
        torch.save(dict(params={n: p.detach() for n, p in model.named_parameters()},
                        forward_calls=model.forward_calls, inner_count=ow._inner_count, sam_steps=ow.sam_steps,
                        nonfinite_skips=ow.nonfinite_skips),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()
