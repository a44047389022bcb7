"""Upstream workarounds: mmengine checkpoints under torch's weights_only default, SSD predict, torch-pruning's
split pieces."""
import logging
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.fileio import FileClient, file_client
from mmengine.logging import MMLogger
from mmengine.runner import Runner

import mmdet_adasap  # noqa: F401
from helpers import shrink_for_smoke_test
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet_adasap.apis import load_config
from mmdet_adasap.pruning.channel_groups import trace
from torch_pruning.dependency import index_mapping

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')


def _demo_cfg(tiny_voc, work_dir, epochs):
    cfg = shrink_for_smoke_test(load_config(DEMO), tiny_voc, work_dir, samples=4)
    cfg.train_cfg.max_epochs = epochs
    return cfg


def test_runner_checkpoint_resumes_with_weights_only_loading(tiny_voc, tmp_path):
    runner = Runner.from_cfg(_demo_cfg(tiny_voc, str(tmp_path), epochs=1))
    runner.train()
    ckpt = osp.join(str(tmp_path), 'epoch_1.pth')
    iters_per_epoch = runner.iter
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}

    # a plain torch.load (weights_only=True by default on torch >= 2.6) reads it once the plugin is imported ...
    state = torch.load(ckpt, map_location='cpu')
    assert 'message_hub' in state and 'optimizer' in state and state['meta']['epoch'] == 1

    # ... and resuming continues from where the first run stopped, with the same weights
    cfg = _demo_cfg(tiny_voc, str(tmp_path / 'resumed'), epochs=2)
    cfg.resume, cfg.load_from = True, ckpt
    resumed = Runner.from_cfg(cfg)
    resumed.load_or_resume()
    assert resumed.epoch == 1 and resumed.iter == iters_per_epoch
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    resumed.train()
    assert resumed.epoch == 2 and resumed.iter == 2 * iters_per_epoch


def test_without_the_allow_list_torch_refuses_the_same_checkpoint(tiny_voc, tmp_path):
    runner = Runner.from_cfg(_demo_cfg(tiny_voc, str(tmp_path), epochs=1))
    runner.train()
    code = ('import torch, sys\n'
            'try:\n    torch.load(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__); sys.exit(3)\n')
    out = subprocess.run([sys.executable, '-c', code, osp.join(str(tmp_path), 'epoch_1.pth')],
                         capture_output=True, text=True)
    assert out.returncode == 3 and 'UnpicklingError' in out.stdout  # the upstream problem is real


def _predict(head_init):
    cfg = load_config(DEMO)
    original = SSDHead.__init__
    SSDHead.__init__ = head_init
    try:
        model = MODELS.build(cfg.model).eval()
    finally:
        SSDHead.__init__ = original
    sample = DetDataSample(metainfo=dict(img_shape=(256, 256), ori_shape=(256, 256), scale_factor=(1., 1.)))
    with torch.no_grad():
        return model.predict(torch.rand(1, 3, 256, 256), [sample])


def test_ssd_head_predicts_with_the_fix_and_crashes_without_it():
    (result, ) = _predict(SSDHead.__init__)
    assert result.pred_instances.bboxes.shape[-1] == 4
    assert (result.pred_instances.scores <= 1).all()  # softmax scores: use_sigmoid_cls=False path
    with pytest.raises(AttributeError, match='loss_cls'):
        _predict(SSDHead.__init__.__wrapped__)


class _UnevenSplit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p, self.q, self.r = (torch.nn.Conv2d(3, 10, 3, padding=1), torch.nn.Conv2d(4, 5, 1),
                                  torch.nn.Conv2d(6, 5, 1))

    def forward(self, x):
        y1, y2 = torch.split(self.p(x), [self.q.in_channels, self.r.in_channels], dim=1)
        return self.q(y1) + self.r(y2)


def _consumer_columns(model):
    """{consumer: the producer channels torch-pruning maps to its input columns}."""
    dg = trace(model, (1, 3, 8, 8), lambda m, x: m(x))
    group = dg.get_pruning_group(model.p, dg.get_pruner_of_module(model.p).prune_out_channels, list(range(10)))
    return {name: sorted(item.root_idxs) for item in group for name in ('q', 'r')
            if item.dep.target.module is getattr(model, name)}


def test_torch_pruning_split_pieces_go_to_their_own_consumers_with_the_fix_and_not_without(monkeypatch):
    assert _consumer_columns(_UnevenSplit()) == {'q': list(range(4)), 'r': list(range(4, 10))}
    monkeypatch.setattr(index_mapping, 'update_split_index_mapping',
                        index_mapping.update_split_index_mapping._adasap_original)
    assert _consumer_columns(_UnevenSplit()) == {'q': list(range(4, 10)), 'r': list(range(4))}  # the bug is real


def _file_client_notices():
    """What a FileClient built as mmengine's CheckpointHook builds it (no file_client_args) logs."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_instance(f'adasap-notices-{len(MMLogger._instance_dict)}')
    logger.addHandler(handler)
    try:
        FileClient.infer_client(None, '.')
        file_client.print_log('a notice the fix keeps', logger='current', level=logging.WARNING)
    finally:
        logger.removeHandler(handler)
    return [r.getMessage() for r in records]


def test_mmengine_file_api_notices_are_dropped_with_the_fix_and_only_they(monkeypatch):
    monkeypatch.setattr(FileClient, '_instances', {})  # FileClient caches its instances: build afresh
    assert _file_client_notices() == ['a notice the fix keeps']
    monkeypatch.setattr(FileClient, '_instances', {})
    monkeypatch.setattr(file_client, 'print_log', file_client.print_log._adasap_original)
    logged = _file_client_notices()
    assert any(m.startswith('"FileClient" will be deprecated') for m in logged)  # the upstream noise is real
    assert any(m.startswith('"HardDiskBackend" is the alias') for m in logged)
