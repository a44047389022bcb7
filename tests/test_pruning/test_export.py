import os.path as osp

import pytest
import torch
import torch_pruning as tp
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import run_tool
from helpers import shrink_for_smoke_test
from mmdet_adasap.apis import fill_channels, load_config, load_detector_checkpoint
from mmdet_adasap.pruning import apply_channel_config, save_pruned_checkpoint
from pruning_fixtures import REPO, flat_outputs


def _no_tracing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('loading a pruned checkpoint must not trace the model')
    monkeypatch.setattr(tp.DependencyGraph, 'build_dependency', refuse)


@pytest.mark.parametrize('arch', ['demo', 'ssd300', 'ssd512', 'ssdlite', 'faster_rcnn'])
def test_export_matches_masked_model_and_reloads_without_tracing(arch, detector, pruned_export, tmp_path,
                                                                 monkeypatch):
    pruner, pruned, config = pruned_export(arch)
    model, shape = pruner.model, pruner.groups.input_shape
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    fwd = pruner.groups.forward_fn
    with torch.no_grad():
        masked, exported = flat_outputs(fwd(model.eval(), x)), flat_outputs(fwd(pruned.eval(), x))
    assert masked.shape == exported.shape
    assert torch.allclose(exported, masked, rtol=1e-4, atol=1e-4 * masked.abs().max().item())
    n_dense, n_pruned = (sum(p.numel() for p in m.parameters()) for m in (model, pruned))
    assert n_pruned < 0.8 * n_dense
    if arch in ('ssd300', 'ssd512'):
        assert config['neck.l2_norm']['pruned']['out_channels'] == \
            config['backbone.features.21']['pruned']['out_channels'] < 512

    path = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), pruned, config)
    fresh, _ = detector(arch)
    _no_tracing(monkeypatch)
    load_detector_checkpoint(fresh, path, expect='pruned')
    with torch.no_grad():
        assert torch.equal(flat_outputs(fwd(fresh.eval(), x)), exported)


def test_mismatching_config_names_the_layer(detector, pruned_export):
    _, _, config = pruned_export('demo')
    ssd300, _ = detector('ssd300')
    with pytest.raises(ValueError, match=r"'backbone\.(layer|conv1)"):
        apply_channel_config(ssd300, config)
    wider = dict(config)
    name = next(iter(wider))
    wider[name] = dict(config[name], dense=dict(config[name]['dense'], out_channels=999))
    with pytest.raises(ValueError, match=name):
        apply_channel_config(detector('demo')[0], wider)


def _demo_pruned_cfg(tiny_voc, work_dir):
    cfg = load_config(osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py'))
    return shrink_for_smoke_test(cfg, tiny_voc, work_dir, samples=2)


def test_pruned_checkpoint_evaluates_through_tools_test_and_fine_tunes_via_load_from(pruned_export, tiny_voc,
                                                                                      tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # the subprocess too (see single_thread)
    _, pruned, config = pruned_export('demo')
    ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), pruned, config)

    cfg = _demo_pruned_cfg(tiny_voc, str(tmp_path / 'test'))
    cfg_path = str(tmp_path / 'pruned_cfg.py')
    cfg.dump(cfg_path)
    proc = run_tool('tools/test.py', cfg_path, ckpt, '--cfg-options', 'log_level=INFO', timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'pascal_voc/mAP' in proc.stdout + proc.stderr
    assert 'size mismatch' not in proc.stdout + proc.stderr  # built at the pruned shapes: loads strictly

    cfg = _demo_pruned_cfg(tiny_voc, str(tmp_path / 'finetune'))
    cfg.load_from = ckpt
    fill_channels(cfg, ckpt)
    runner = Runner.from_cfg(cfg)
    runner.train()
    conv = runner.model.backbone.layer1[0].conv1
    assert conv.out_channels == config['backbone.layer1.0.conv1']['pruned']['out_channels']
    assert conv.weight.shape[0] == conv.out_channels
    state = torch.load(osp.join(cfg.work_dir, 'epoch_1.pth'), map_location='cpu')['state_dict']
    assert state['backbone.layer1.0.conv1.weight'].shape == conv.weight.shape
