"""The probe of a real detector (the demo SSD, random init) on the tiny set: one neuron per group, removal only
(the cheap measure); its numbers against a direct recomputation with the neuron's slices zeroed by hand."""
import json
import os.path as osp

import pytest
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


def test_fixed_batches_carry_boxes_at_the_network_input_scale(tiny_voc):
    """mmdet's test pipeline loads the boxes after Resize (original image coordinates, for the evaluator); the
    probe's loss needs them resized with the image: the packed boxes equal the raw ones times the scale factor."""
    from mmdet_adasap.analysis.probe import boxes_follow_the_image
    opts = {'val_dataloader.dataset.data_root': tiny_voc + '/', 'val_dataloader.batch_size': 2}
    cfg = load_config(CONFIG, opts)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    sample = fixed_batches(cfg, model, 1)[0]['data_samples'][0]
    raw = load_config(CONFIG, opts).val_dataloader.dataset
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    ds = DATASETS.build(dict(raw, pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]))
    info = next(d for d in (ds[i] for i in range(len(ds))) if d['img_id'] == sample.metainfo['img_id'])
    sx, sy = sample.metainfo['scale_factor']
    expected = torch.as_tensor(info['gt_bboxes'].tensor) * torch.tensor([sx, sy, sx, sy])
    assert sample.gt_instances.bboxes.shape == expected.shape and (sx, sy) != (1.0, 1.0)
    assert torch.allclose(sample.gt_instances.bboxes, expected, atol=1e-3)
    pipe = boxes_follow_the_image(cfg.val_dataloader.dataset.pipeline)
    assert [t['type'] for t in pipe][:3] == ['LoadImageFromFile', 'LoadAnnotations', 'Resize']
    with pytest.raises(ValueError, match='LoadAnnotations'):
        boxes_follow_the_image([dict(type='LoadImageFromFile'), dict(type='Resize')])


def test_compare_probes_means_and_intervals_against_scipy():
    import numpy as np
    from scipy import stats
    from mmdet_adasap.analysis.probe import PROBE_SCHEMA, compare_probes, summarize_probe
    rng = np.random.default_rng(3)
    rows = [dict(rank=i, rank_fraction=i / 9, removal=float(v)) for i, v in enumerate(rng.normal(size=10))]
    res = dict(schema=PROBE_SCHEMA, label='ck', rows=rows, summary=summarize_probe(rows, {'removal': None}))
    table = compare_probes([res], bottom=0.5)
    low = [r['removal'] for r in rows if r['rank_fraction'] < 0.5]
    lo, hi = stats.t.interval(0.95, len(low) - 1, loc=np.mean(low), scale=stats.sem(low))
    row = next(line for line in table.splitlines() if line.startswith('| ck | removal'))
    assert f'{np.mean(low):.4g} [{lo:.4g}, {hi:.4g}] (n=5)' in row
    rho = stats.spearmanr([r['rank'] for r in rows], [r['removal'] for r in rows]).statistic
    assert row.endswith(f'| {rho:+.2f} |')
    with pytest.raises(ValueError, match='is not a mmdet_adasap.neuron_probe'):
        compare_probes([dict(res, schema='other')])


def test_compare_probes_tool_names_a_missing_probe(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location('compare_probes', osp.join(REPO, 'tools/compare_probes.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit, match=r'nope/neuron_probe.json does not exist; run tools/neuron_sensitivity.py'):
        tool.main([str(tmp_path / 'nope')])
