"""PruningHook inside real mmengine training runs of the demo detector on the tiny synthetic VOC set."""
import os.path as osp

import torch
from mmengine.runner import Runner

from helpers import shrink_for_smoke_test
from mmdet_adasap.apis import load_config
from mmdet_adasap.engine.hooks.pruning_state import STATE_KEY
from pruning_fixtures import REPO


def _cfg(tiny_voc, work_dir, max_epochs, schedule, physical=False):
    cfg = load_config(osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py'))
    cfg = shrink_for_smoke_test(cfg, tiny_voc, work_dir, samples=4)
    cfg.train_dataloader.batch_size = 2  # 2 iterations per epoch
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
    cfg.custom_hooks = [dict(type='PruningHook', target=dict(type='flops', ratio=0.5), schedule=schedule,
                             round_to=8, input_shape=(1, 3, 256, 256), export='pruned.pth', physical=physical,
                             allow_random_init=True)]
    return cfg


def _masked_weights_are_zero(pruner):
    for g in pruner.groups:
        drop = ~pruner.masks.masks[g.name]
        for s in g.slices:
            if drop.any() and s.param.detach().index_select(s.dim, s.index[drop]).abs().max() != 0:
                return False
    return True


def test_exponential_schedule_masks_persist_in_checkpoints_and_resume(tiny_voc, tmp_path):
    work_dir = str(tmp_path / 'run')
    schedule = dict(type='exponential', steps=2, interval=1, start=0)
    runner = Runner.from_cfg(_cfg(tiny_voc, work_dir, 1, schedule))
    runner.train()
    pruner = runner.adasap_pruner
    assert pruner.steps_done == 2
    assert pruner.cost_ratio() <= 0.5 and _masked_weights_are_zero(pruner)
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu')
    saved = ckpt[STATE_KEY]['pruner']['masks']
    assert {k: int(v.sum()) for k, v in saved.items()} == pruner.masks.num_kept()
    name = next(n for n, m in saved.items() if not m.all())
    g = pruner.groups.by_name[name]
    root = ckpt['state_dict'][f'{name}.weight']
    assert root[~saved[name]].abs().max() == 0  # checkpointed weights are masked too
    assert osp.isfile(osp.join(work_dir, 'pruned.pth'))
    assert g.size > int(saved[name].sum())

    # resume for one more epoch: masks come back from the checkpoint and stay applied
    cfg = _cfg(tiny_voc, work_dir, 2, schedule)
    cfg.resume = True
    runner2 = Runner.from_cfg(cfg)
    runner2.train()
    p2 = runner2.adasap_pruner
    assert p2.steps_done == 2, 'no pruning step may fire again after resume'
    assert p2.masks.num_kept() == pruner.masks.num_kept() and _masked_weights_are_zero(p2)


def test_physical_switch_after_the_last_step_trains_the_small_model_and_resumes(tiny_voc, tmp_path):
    """physical=True: after the schedule's last step (iteration 1) the model is the exported one; checkpoints
    hold its shapes and the channel record; resume re-shapes the dense model and trains on."""
    work_dir = str(tmp_path / 'run')
    schedule = dict(type='exponential', steps=2, interval=1, start=0)
    runner = Runner.from_cfg(_cfg(tiny_voc, work_dir, 2, schedule, physical=True))
    dense_params = sum(p.numel() for p in runner.model.parameters())
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')
    assert hook.physical_state['iter'] == 1 and hook.physical_state['cost_ratio'] <= 0.5
    small = sum(p.numel() for p in runner.model.parameters())
    assert small < dense_params
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    exported = torch.load(osp.join(work_dir, 'pruned.pth'), map_location='cpu')
    assert ckpt['meta']['adasap_channels'] == exported['meta']['adasap_channels'] == hook.physical_state['config']
    assert sum(v.numel() for k, v in exported['state_dict'].items() if 'running' not in k and 'num_batches' not in k
               ) == small
    cfg = _cfg(tiny_voc, work_dir, 3, schedule, physical=True)
    cfg.resume = True
    runner2 = Runner.from_cfg(cfg)
    runner2.train()
    assert runner2.iter == runner.iter * 3 // 2 and sum(p.numel() for p in runner2.model.parameters()) == small
    assert runner2.adasap_pruner.steps_done == 2, 'no pruning step may fire again after resume'
