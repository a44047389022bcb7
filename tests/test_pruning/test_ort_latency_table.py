"""A latency table timed in ONNX Runtime (issue 32): built through the same measurement as the PyTorch table with
the ORT timing backend, fingerprinted with its runtime and precision, refused where another is asked for, and its
ORT timings agreeing with an independent ``onnxruntime.InferenceSession`` timing of the same graph; int8 refused
as not built. A tiny
conv-BN-ReLU network keeps it fast; no assertion about speed targets (``tools/benchmark_latency_prune.py
--runtime onnxruntime`` prints those)."""
import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import tool_exit_message

from mmdet_adasap.deploy.ort_timing import OrtTiming, onnx_bytes
from mmdet_adasap.pruning import ChannelPruner, build_channel_groups
from mmdet_adasap.pruning.latency_measure import measure_latency_table
from mmdet_adasap.pruning.latency_table import check_table

SHAPE = (1, 3, 32, 32)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 8, 1)).eval()


def _groups():
    return build_channel_groups(_tiny(), SHAPE, forward_fn=lambda m, x: m(x))


@pytest.fixture(scope='module')
def tables():
    """(groups, ORT table, PyTorch table) of the tiny network, both calibrated, few repeats."""
    groups = _groups()
    kw = dict(points=3, round_to=8, repeats=2, model_repeats=3, show_progress=False)
    ort = measure_latency_table(groups, threads=1, timing=OrtTiming(threads=1), **kw)
    torch_table = measure_latency_table(groups, threads=1, **kw)
    return groups, ort, torch_table


def test_ort_table_has_the_pytorch_tables_structure(tables):
    groups, ort, pt = tables
    assert set(ort) == set(pt)
    assert set(ort['layers']) == set(pt['layers']) == {n for n, l in groups.layers.items() if l.groups_touching}
    for name, e in ort['layers'].items():
        assert (e['cin'], e['cout']) == (pt['layers'][name]['cin'], pt['layers'][name]['cout'])
        assert np.shape(e['ms']) == np.shape(pt['layers'][name]['ms'])
        assert all(v > 0 for row in e['ms'] for v in row)
    assert ort['modules'] == {}  # ORT has no per-module in-graph timings: the whole-model fit calibrates
    assert len(ort['calibration']) == len(ort['fit']['rel_errors']) >= 2
    assert ort['dense_ms'] > 0 and ort['fit']['scale'] >= 0


def test_fingerprint_names_the_runtime(tables):
    groups, ort, pt = tables
    assert (ort['fingerprint']['runtime'], ort['fingerprint']['precision']) == ('onnxruntime', 'fp32')
    assert pt['fingerprint']['runtime'] == 'pytorch'
    assert ort['fingerprint']['threads'] == 1 and ort['fingerprint']['device'] == 'cpu'


def test_a_table_of_the_other_runtime_is_refused_naming_it(tables):
    groups, ort, pt = tables
    check_table(ort, groups, dict(runtime='onnxruntime', precision='fp32'))  # accepted
    with pytest.raises(ValueError, match=r"runtime='onnxruntime'.*runtime='pytorch'.*--runtime pytorch"):
        check_table(ort, groups, dict(runtime='pytorch'))
    with pytest.raises(ValueError, match=r"runtime='pytorch'.*runtime='onnxruntime'.*--runtime onnxruntime"):
        ChannelPruner(groups.model, SHAPE, target=dict(type='latency', ratio=0.7, runtime='onnxruntime'),
                      latency_table=pt, forward_fn=lambda m, x: m(x))
    legacy = {**pt, 'fingerprint': {k: v for k, v in pt['fingerprint'].items() if k not in ('runtime', 'precision')}}
    with pytest.raises(ValueError, match=r"runtime='pytorch'"):  # a table from before runtimes: a PyTorch one
        check_table(legacy, groups, dict(runtime='onnxruntime'))
    check_table(legacy, groups, dict(runtime='pytorch', precision='fp32'))
    with pytest.raises(ValueError, match=r"precision='fp32'.*precision='int8'.*--precision int8"):
        check_table(ort, groups, dict(precision='int8'))


def test_a_latency_target_asking_for_onnxruntime_accepts_the_ort_table(tables):
    groups, ort, _ = tables
    pruner = ChannelPruner(_tiny(), SHAPE, target=dict(type='latency', ratio=0.7, runtime='onnxruntime', threads=1),
                           latency_table=ort, round_to=8, ranking='knapsack', forward_fn=lambda m, x: m(x))
    assert pruner.cost.name == 'latency' and pruner.cost.dense > 0


def _direct_ms(path, x, runs=15):
    """An independent timing: a plain InferenceSession of the file, one thread, median wall ms."""
    import onnxruntime as ort  # the runtime under test, imported where it is used
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    feed = {sess.get_inputs()[0].name: x}
    sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def test_ort_timing_agrees_with_a_direct_session_and_ranks_widths(tmp_path):
    """Two widths of one conv (16x the MACs apart): the backend's timing of each exported graph (whole runs, and
    the layer's own kernels as a table times it) must be within a factor 4 of a direct InferenceSession timing of
    the same file, and all three must rank the wide one slower."""
    x = torch.randn(1, 32, 48, 48)
    narrow, wide = nn.Conv2d(32, 8, 3, padding=1), nn.Conv2d(32, 128, 3, padding=1)
    graphs = [onnx_bytes(m, x) for m in (narrow, wide)]
    paths = []
    for name, g in zip(('narrow', 'wide'), graphs):
        paths.append(str(tmp_path / f'{name}.onnx'))
        with open(paths[-1], 'wb') as f:
            f.write(g)
    backend = OrtTiming(threads=1).time_graphs(graphs, [x, x], repeats=15)  # whole runs
    kernels = OrtTiming(threads=1).time_layers([(narrow, x), (wide, x)], repeats=15)  # the layers' own kernels
    direct = [_direct_ms(p, x.numpy()) for p in paths]
    for timed in (backend, kernels, direct):
        assert timed[1] > timed[0], (backend, kernels, direct)
    for b, k, d in zip(backend, kernels, direct):
        assert d / 4 < b < d * 4 and d / 4 < k < d * 4, (backend, kernels, direct)


def test_int8_is_refused_as_not_built_naming_the_fix(capsys):
    with pytest.raises(ValueError, match="'int8' is not built yet.*--precision fp32"):
        OrtTiming(precision='int8')
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'.*--precision"):
        OrtTiming(precision='fp16')
    code = tool_exit_message('build_latency_table', 'configs/demo/ssd-r18mini_synthvoc_dense.py', '--runtime',
                             'onnxruntime', '--precision', 'int8')
    err = capsys.readouterr().err  # argparse's usage error, before anything is built
    assert code == '2' and "'int8' is not built yet" in err and '--precision fp32' in err, (code, err)
