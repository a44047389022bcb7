"""The probe of a real detector (the demo SSD, random init) on the tiny set: one neuron per group, removal only
(the cheap measure); its numbers against a direct recomputation with the neuron's slices zeroed by hand."""
import json
import os.path as osp

import torch

from conftest import REPO
from mmdet_adasap.analysis.probe import detector_loss, fixed_batches, probe
from mmdet_adasap.apis import load_config
from mmdet_adasap.experiments.run import build_model
from mmdet_adasap.pruning import build_channel_groups

CONFIG = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')


def test_probe_rows_and_removal_equal_a_direct_recomputation(tiny_voc, tmp_path):
    torch.set_num_threads(1)
    opts = {'val_dataloader.dataset.data_root': tiny_voc + '/', 'val_dataloader.batch_size': 2}
    torch.manual_seed(0)
    init = build_model(load_config(CONFIG))
    ckpt = str(tmp_path / 'init.pth')
    torch.save({'state_dict': init.state_dict(), 'meta': {}}, ckpt)
    res = probe(CONFIG, ckpt, str(tmp_path / 'out'), num_batches=1, per_group=1, measures=['removal'],
                cfg_options=opts)
    with open(tmp_path / 'out' / 'neuron_probe.json') as f:
        assert json.load(f)['rows'] == json.loads(json.dumps(res['rows']))
    assert osp.isfile(tmp_path / 'out' / 'neuron_probe.png')
    model = init.eval()
    groups = {g.name: g for g in build_channel_groups(model, (1, 3, 256, 256)).neuron_groups()}
    assert sorted(r['group'] for r in res['rows']) == sorted(groups) and res['neurons'] > len(groups)
    loss = detector_loss(model, fixed_batches(load_config(CONFIG, opts), model, 1))
    with torch.no_grad():
        base = float(loss())
        for row in res['rows'][:2]:
            g = groups[row['group']]
            saved = [(s.param, s.param.detach().clone()) for s in g.slices]
            for s in g.slices:
                s.param.index_fill_(s.dim, s.index[row['channel']:row['channel'] + 1], 0.0)
            masked = float(loss())
            for p, old in saved:
                p.copy_(old)
            assert abs(row['removal'] - (masked - base)) < 1e-6 * max(1.0, abs(base))
