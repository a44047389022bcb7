"""The deployment report (``deploy.report``, ``tools/deploy_report.py``): dense + one pruned model x fp32 / INT8.

On the tiny synthetic VOC with the committed demo dense start and a one-shot prune of it to 0.5 FLOPs (as
tools/prune.py prunes), one corruption at severity 3, 2 timed calls, 1 calibration image: the JSON holds the 4
artifacts with every field, and its numbers agree with independent computations (rPC = mPC / P, the INT8 file
smaller than the fp32 one and the size its bytes on disk, each speed-up the dense fp32 ms over the artifact's ms,
the FLOPs ratio the pruned model's count over dense, the fp32 clean mAP what ``evaluate_robustness`` gives for
that file alone); the markdown and the plot exist; a rerun reuses the finished artifacts; bad input is refused
by name.
"""
import copy
import json
import os
import os.path as osp

import pytest
import torch

from mmdet_adasap.apis import build_detector, input_size_of, load_config, params_and_flops
from mmdet_adasap.deploy import read_metadata
from mmdet_adasap.deploy.quantize import fp32_ops_line
from mmdet_adasap.deploy.report import FIELDS, ReportError, deploy_report, network_graph, parse_pruned
from mmdet_adasap.pruning import ChannelPruner, save_pruned_checkpoint
from mmdet_adasap.robustness.api import evaluate_robustness
from helpers import demo_config_on, load_tool
from pruning_fixtures import REPO

report_tool = load_tool('deploy_report')
DENSE_START = osp.join(REPO, 'docs/results/demo/dense_start.pth')
SETTINGS = dict(corruptions=['gaussian_noise'], severities=[3], calib_images=1, batches=[1, 2],
                thread_counts=[1], repeats=2)


@pytest.fixture(scope='module')
def report(tiny_voc, tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('deploy_report')
    config = demo_config_on(tiny_voc, tmp)
    cfg = load_config(config)
    dense, meta = build_detector(cfg, DENSE_START)
    size = input_size_of(cfg)
    pruner = ChannelPruner(copy.deepcopy(dense), (1, 3, size, size), target=dict(type='flops', ratio=0.5))
    pruner.prune_one_shot()
    pruned, channels = pruner.export_with_config()
    ckpt = str(tmp / 'flops50.pth')
    save_pruned_checkpoint(ckpt, pruned, channels, {k: meta[k] for k in ('dataset_meta', ) if k in meta})
    out = str(tmp / 'out')
    lines = []
    result = deploy_report(config, DENSE_START, {'flops50': ckpt}, out, log=lines.append, **SETTINGS)
    yield dict(config=config, ckpt=ckpt, out=out, result=result, lines=lines, tmp=tmp,
               flops=(params_and_flops(dense, (1, 3, size, size))['flops'],
                      params_and_flops(pruned, (1, 3, size, size))['flops']))
    torch.set_num_threads(before)


def test_the_json_has_four_artifacts_with_every_field(report):
    with open(osp.join(report['out'], 'deploy_report.json')) as f:
        saved = json.load(f)
    arts = saved['artifacts']
    assert [a['artifact'] for a in arts] == ['dense_fp32', 'dense_int8', 'flops50_fp32', 'flops50_int8']
    keys = {'network_b1_t1', 'network_b2_t1', 'detector_b1_t1'}
    for a in arts:
        assert set(FIELDS) | {'flops_ratio', 'speedup'} <= set(a), a['artifact']
        assert set(a['latency_ms']) == keys and set(a['speedup']) == keys
        assert all(v > 0 for v in a['latency_ms'].values())
        assert 0 <= a['mPC'] <= 1 and 0 < a['P'] <= 1 and a['metric_key'] == 'pascal_voc/mAP'
    assert saved['settings']['corruptions'] == ['gaussian_noise'] and saved['machine']['cores'] >= 1
    assert any(line.startswith('[deploy-report] dense_int8: quantizing') for line in report['lines'])


def test_the_numbers_agree_with_independent_computations(report):
    arts = {a['artifact']: a for a in report['result']['artifacts']}
    dense = arts['dense_fp32']
    for name, a in arts.items():
        assert a['rPC'] == pytest.approx(a['mPC'] / a['P']), name
        assert a['size_bytes'] == osp.getsize(osp.join(report['out'], a['file'])), name
        for key, ms in a['latency_ms'].items():
            assert a['speedup'][key] == pytest.approx(dense['latency_ms'][key] / ms), (name, key)
    for model in ('dense', 'flops50'):
        assert arts[f'{model}_int8']['size_bytes'] < arts[f'{model}_fp32']['size_bytes']
        assert arts[f'{model}_int8']['flops'] == arts[f'{model}_fp32']['flops']
    assert dense['speedup']['network_b1_t1'] == 1.0 and dense['flops_ratio'] == 1.0
    d, p = report['flops']
    assert arts['flops50_fp32']['flops_ratio'] == pytest.approx(p / d) and 0.4 < p / d < 0.6
    alone = evaluate_robustness(report['config'], osp.join(report['out'], dense['file']),
                                str(report['tmp'] / 'alone'), ['gaussian_noise'], [3], plots=False,
                                backend='onnxruntime')['summary']
    assert dense['P'] == alone['P'] and dense['mPC'] == alone['mPC']
    assert dense['P'] > 0.3  # the trained detector detects: the comparisons mean something


def test_markdown_and_plot_are_written(report):
    with open(osp.join(report['out'], 'deploy_report.md')) as f:
        text = f.read()
    for name in ('dense_fp32', 'dense_int8', 'flops50_fp32', 'flops50_int8'):
        assert f'| {name} |' in text
    assert 'network b1 1 thread ms' in text and 'detector b1 1 thread ms' in text and '(1.00x)' in text
    # the network ops each INT8 file keeps in fp32, as its quantization metadata lists them (the normalisation)
    for name in ('dense_int8', 'flops50_int8'):
        left = read_metadata(osp.join(report['out'], 'onnx', f'{name}.onnx'))['quantization']['fp32_network_ops']
        assert left and f'- {name}: {fp32_ops_line(left)}' in text
    assert osp.getsize(osp.join(report['out'], 'deploy_report.png')) > 1000


def test_the_network_graph_ends_where_the_convolutions_end(report):
    import onnx
    for name in ('dense_fp32', 'dense_int8'):
        graph = onnx.load(network_graph(osp.join(report['out'], 'onnx', f'{name}.onnx'),
                                        str(report['tmp'] / f'{name}_net.onnx')))
        ops = {n.op_type for n in graph.graph.node}
        assert 'Conv' in ops and not ops & {'NonMaxSuppression', 'Exp', 'TopK'}, (name, ops)
        if name.endswith('int8'):  # the last convolutions keep their int8 output (Q/DQ) as in the whole file
            producer = {o: n for n in graph.graph.node for o in n.output}
            assert {producer[o.name].op_type for o in graph.graph.output} == {'DequantizeLinear'}


def test_a_rerun_reuses_the_finished_artifacts(report, capsys):
    records = [osp.join(report['out'], 'artifacts', f'{a}.json')
               for a in ('dense_fp32', 'dense_int8', 'flops50_fp32', 'flops50_int8')]
    before = [os.stat(r).st_mtime_ns for r in records]
    onnx_before = os.stat(osp.join(report['out'], 'onnx', 'dense_int8.onnx')).st_mtime_ns
    assert report_tool.main([report['config'], DENSE_START, '--pruned', f'flops50={report["ckpt"]}', '--out',
                             report['out'], '--corruptions', 'gaussian_noise', '--severities', '3',
                             '--calib-images', '1', '--batches', '1', '2', '--threads', '1', '--repeats', '2']) == 0
    out = capsys.readouterr().out
    assert out.count('finished, reusing') == 4 and '| flops50_int8 |' in out
    assert [os.stat(r).st_mtime_ns for r in records] == before
    assert os.stat(osp.join(report['out'], 'onnx', 'dense_int8.onnx')).st_mtime_ns == onnx_before
    # other settings are refused by name, not mixed into the finished records
    with pytest.raises(ReportError, match=r"dense_int8.json was measured with calib_images=1, this run asks "
                                          r"for 2: pass --no-resume"):
        deploy_report(report['config'], DENSE_START, {'flops50': report['ckpt']}, report['out'], log=print,
                      **dict(SETTINGS, calib_images=2))


def test_bad_input_is_refused_by_name(report, tmp_path):
    config, out = report['config'], str(tmp_path / 'o')
    with pytest.raises(ReportError, match=r"--pruned takes NAME=CHECKPOINT .*got 'pruned\.pth'"):
        parse_pruned(['pruned.pth'])
    with pytest.raises(ReportError, match="--pruned name 'dense' is used twice"):
        parse_pruned([f'dense={report["ckpt"]}'])
    with pytest.raises(FileNotFoundError, match="--pruned p: checkpoint 'nope.pth' does not exist"):
        parse_pruned(['p=nope.pth'])
    with pytest.raises(ReportError, match=r"--threads takes positive integers or \"all\", got '0'"):
        report_tool.main([config, DENSE_START, '--out', out, '--threads', '0'])
    with pytest.raises(ReportError, match=r'--batches \[8\] and --threads \[1\] must include 1'):
        deploy_report(config, DENSE_START, {}, out, **dict(SETTINGS, batches=[8]))
    with pytest.raises(ValueError, match='unknown corruption'):
        deploy_report(config, DENSE_START, {}, out, **dict(SETTINGS, corruptions=['no_such_corruption']))
    with pytest.raises(ValueError, match="is a pruned checkpoint; this tool takes the dense checkpoint"):
        deploy_report(config, report['ckpt'], {}, out, **SETTINGS)
    assert not osp.exists(osp.join(out, 'artifacts', 'dense_fp32.json'))
