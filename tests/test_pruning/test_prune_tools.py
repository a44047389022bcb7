"""tools/prune.py and tools/prune_report.py as a user runs them."""
import json
import os.path as osp

import torch

from conftest import run_tool
from helpers import tool_exit_message
from mmdet_adasap.pruning.export import META_KEY


def test_prune_then_report(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # see pruning_fixtures.single_thread
    cfg = 'configs/demo/ssd-r18mini_synthvoc_dense.py'
    dense = tmp_path / 'dense.pth'
    # a "trained" checkpoint: the config's own init, saved the way mmengine saves checkpoints
    from mmdet.registry import MODELS
    from mmengine.config import Config
    model = MODELS.build(Config.fromfile(cfg).model)
    torch.save({'meta': {'epoch': 3}, 'state_dict': model.state_dict()}, dense)
    out = tmp_path / 'pruned.pth'
    proc = run_tool('tools/prune.py', cfg, str(dense), '--target', 'params', '--ratio', '0.5', '--out', str(out),
                    timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(out, map_location='cpu')
    assert ckpt['meta'][META_KEY] and ckpt['meta']['epoch'] == 3
    assert sum(v.numel() for k, v in ckpt['state_dict'].items() if 'running' not in k and 'num_batches' not in k) \
        <= 0.5 * sum(p.numel() for p in model.parameters())

    report_dir = tmp_path / 'report'
    proc = run_tool('tools/prune_report.py', cfg, '--checkpoint', str(dense), '--pruned', str(out),
                    '--repeats', '3', '--batches', '1', '--thread-counts', '1', '--out-dir', str(report_dir),
                    timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((report_dir / 'report.json').read_text())
    assert summary['pruned']['params'] / summary['dense']['params'] <= 0.5
    assert summary['dense']['latency_ms'] > 0 and summary['pruned']['flops'] < summary['dense']['flops']
    assert '| parameters |' in proc.stdout and osp.getsize(report_dir / 'report.png') > 10_000
    rows = summary['deploy_latency']  # PyTorch and ONNX Runtime, network and deployed detector
    assert {(r['part'], r['runtime'], r['batch']) for r in rows} == {
        (p, r, 1) for p in ('network', 'deployed') for r in ('pytorch', 'onnxruntime')}
    assert all(r['dense'] > 0 and r['pruned'] > 0 and r['threads'] == 1 for r in rows)
    assert osp.isfile(report_dir / 'pruned.onnx') and '| deployed | onnxruntime | 1 | 1 |' in proc.stdout


def test_tools_name_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    cfg = 'configs/demo/ssd-r18mini_synthvoc_dense.py'
    dense = tmp_path / 'dense.pth'
    from mmdet.registry import MODELS
    from mmengine.config import Config
    torch.save({'state_dict': MODELS.build(Config.fromfile(cfg).model).state_dict()}, dense)
    message = tool_exit_message('prune', cfg, str(dense), '--ratio', '1.5', '--out', str(tmp_path / 'x.pth'))
    assert '1.5' in message
    message = tool_exit_message('prune_report', cfg, '--pruned', str(dense), '--out-dir', str(tmp_path / 'r'))
    assert 'not a pruned checkpoint' in message
