"""SAMOptimWrapper under mmengine's stock MMDistributedDataParallel: 2 CPU processes over gloo."""
import os.path as osp

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.optim import build_optim_wrapper

from test_engine import ddp_worker
from test_engine.tiny_models import TinyNet, tiny_batch

STEPS = 3


def spawn(tmp_path, wrapper_kwargs, poison=False):
    ctx = mp.start_processes(ddp_worker.run, args=(2, str(tmp_path / 'pg'), str(tmp_path), STEPS, wrapper_kwargs,
                                                   poison), nprocs=2, join=False, start_method='spawn')
    for p in ctx.processes:
        p.join(timeout=180)
    alive = [p.pid for p in ctx.processes if p.is_alive()]
    for p in ctx.processes:
        if p.is_alive():
            p.kill()
    assert not alive, f'DDP workers hung (deadlock?): pids {alive}'
    assert all(p.exitcode == 0 for p in ctx.processes), [p.exitcode for p in ctx.processes]
    return [torch.load(osp.join(tmp_path, f'rank{r}.pth')) for r in range(2)]


def single_process_reference(wrapper_kwargs):
    """The same steps in one process: loss = mean of the two ranks' losses (DDP averages gradients)."""
    torch.manual_seed(0)
    model = TinyNet()
    ow = build_optim_wrapper(model, dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                                         **wrapper_kwargs))
    ow.bind(model)
    for step in range(STEPS):
        batches = [tiny_batch(seed=100 * step + r) for r in range(2)]

        def closure():
            return sum(model(**b)['loss_cls'] for b in batches) / 2

        ow.sharpness_step(closure(), closure)
    return {n: p.detach() for n, p in model.named_parameters()}


def test_ranks_stay_identical_and_match_one_process(tmp_path):
    kwargs = dict(rho=0.3, adaptive=True)
    r0, r1 = spawn(tmp_path, kwargs)
    for n in r0['params']:
        assert torch.equal(r0['params'][n], r1['params'][n]), n
    for r in (r0, r1):  # two passes per step, one count per step
        assert (r['forward_calls'], r['inner_count'], r['sam_steps']) == (2 * STEPS, STEPS, STEPS)
    ref = single_process_reference(kwargs)
    for n, p in ref.items():
        torch.testing.assert_close(r0['params'][n], p, rtol=1e-4, atol=1e-6, msg=n)


def test_nonfinite_gradient_on_one_rank_skips_everywhere_without_deadlock(tmp_path):
    # first pass in no_sync: rank 1's own gradient is finite, only the all-reduced decision makes it skip
    r0, r1 = spawn(tmp_path, dict(rho=0.3, sync_first_pass=False), poison=True)
    assert r0['nonfinite_skips'] == r1['nonfinite_skips'] == 1
    for n in r0['params']:
        assert torch.equal(r0['params'][n], r1['params'][n]), n
        assert torch.isfinite(r0['params'][n]).all(), n
    assert r0['forward_calls'] == r1['forward_calls'] == 2 * STEPS
