"""A latency table timed in ONNX Runtime (issue 32): built through the same measurement as the PyTorch table with
the ORT timing backend, fingerprinted with its runtime and precision, refused where another is asked for, and its
ORT timings agreeing with an independent ``onnxruntime.InferenceSession`` timing of the same graph. An int8 table
times graphs quantized as ``tools/quantize_onnx.py`` quantizes (QDQ, uint8 activations), its layers without the
Q/DQ and layout kernels at their ends; fp32 and int8 tables refuse targets asking for the other. A tiny
conv-BN-ReLU network keeps it fast; no assertion about speed targets (``tools/benchmark_latency_prune.py
--runtime onnxruntime [--precision int8]`` prints those)."""
import argparse
import json
import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import load_tool, tool_exit_message

from mmdet_adasap.deploy import ort_timing
from mmdet_adasap.deploy.ort_timing import (BOUNDARY_OPS, INT8_BOUNDARY_OPS, OrtTiming, kernel_ms, onnx_bytes,
                                            profiled_session)
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


def test_unknown_precisions_and_int8_pytorch_tables_are_refused(capsys):
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'.*--precision"):
        OrtTiming(precision='fp16')
    assert OrtTiming(precision='int8').precision == 'int8'
    for tool in ('build_latency_table', 'benchmark_latency_prune'):
        code = tool_exit_message(tool, 'configs/demo/ssd-r18mini_synthvoc_dense.py', '--runtime', 'pytorch',
                                 '--precision', 'int8')
        err = capsys.readouterr().err  # argparse's usage error, before anything is built
        assert code == '2' and '--precision int8 is for --runtime onnxruntime' in err, (tool, code, err)
    args = load_tool('build_latency_table').parse_args(['configs/demo/ssd-r18mini_synthvoc_dense.py', '--runtime',
                                                        'onnxruntime', '--precision', 'int8'])
    assert (args.runtime, args.precision) == ('onnxruntime', 'int8')


# ------------------------------------------------------------------------------------------------ int8
@pytest.fixture(scope='module')
def int8_table():
    """The tiny network's ORT int8 table: one real build (quantized grid layers and calibration models)."""
    groups = _groups()
    return groups, measure_latency_table(groups, threads=1, timing=OrtTiming(threads=1, precision='int8'),
                                         points=3, round_to=8, repeats=2, model_repeats=3, show_progress=False)


def test_int8_table_records_its_precision_and_is_calibrated(int8_table):
    groups, table = int8_table
    assert (table['fingerprint']['runtime'], table['fingerprint']['precision']) == ('onnxruntime', 'int8')
    assert set(table['layers']) == {n for n, l in groups.layers.items() if l.groups_touching}
    assert all(v > 0 for e in table['layers'].values() for row in e['ms'] for v in row)
    assert len(table['calibration']) == len(table['fit']['rel_errors']) >= 2 and table['dense_ms'] > 0


def test_fp32_and_int8_tables_refuse_targets_asking_for_the_other(tables, int8_table):
    groups, fp32, _ = tables
    _, int8 = int8_table
    check_table(int8, groups, dict(runtime='onnxruntime', precision='int8'))  # accepted
    with pytest.raises(ValueError, match=r"precision='int8'.*precision='fp32'.*--precision fp32"):
        check_table(int8, groups, dict(runtime='onnxruntime', precision='fp32'))
    with pytest.raises(ValueError, match=r"precision='fp32'.*precision='int8'.*--precision int8"):
        check_table(fp32, groups, dict(runtime='onnxruntime', precision='int8'))
    kw = dict(round_to=8, ranking='knapsack', forward_fn=lambda m, x: m(x))
    with pytest.raises(ValueError, match=r"precision='int8'.*precision='fp32'"):
        ChannelPruner(_tiny(), SHAPE, target=dict(type='latency', ratio=0.7, runtime='onnxruntime',
                                                  precision='fp32'), latency_table=int8, **kw)
    with pytest.raises(ValueError, match=r"precision='fp32'.*precision='int8'"):
        ChannelPruner(_tiny(), SHAPE, target=dict(type='latency', ratio=0.7, runtime='onnxruntime',
                                                  precision='int8'), latency_table=fp32, **kw)
    pruner = ChannelPruner(_tiny(), SHAPE, target=dict(type='latency', ratio=0.7, runtime='onnxruntime',
                                                       precision='int8'), latency_table=int8, **kw)
    assert pruner.cost.name == 'latency' and pruner.cost.dense > 0


def _op_types(graph: bytes) -> list:
    import onnx  # the exporter's format, imported where it is read
    return [n.op_type for n in onnx.load_from_string(graph).graph.node]


def test_int8_layer_graph_is_quantized_and_timed_without_its_boundary_kernels(tmp_path):
    """A conv as an int8 table times it: a QDQ graph (uint8 activations, int8 weights); ORT runs it as the
    boundary kernels of INT8_BOUNDARY_OPS around one QLinearConv, and only the QLinearConv is left to charge."""
    import onnx  # the exporter's format, imported where it is read
    conv, x = nn.Conv2d(16, 32, 3, padding=1), torch.randn(1, 16, 24, 24)
    graph = OrtTiming(precision='int8').graph(conv, x)
    ops = _op_types(graph)
    assert {'QuantizeLinear', 'DequantizeLinear', 'Conv'} <= set(ops), ops
    assert 'QuantizeLinear' not in _op_types(OrtTiming(precision='fp32').graph(conv, x))
    model = onnx.load_from_string(graph)
    init = {i.name: i.data_type for i in model.graph.initializer}
    q_types = {init[n.input[2]] for n in model.graph.node if n.op_type == 'QuantizeLinear' and len(n.input) > 2}
    assert q_types == {onnx.TensorProto.UINT8}, q_types  # U8S8: uint8 activations, as quantize.py's default
    assert onnx.TensorProto.INT8 in init.values()  # the weights

    session = profiled_session(graph, 1, str(tmp_path / 'int8'))
    for _ in range(3):
        session.run(None, {'input': x.numpy()})
    profile = session.end_profiling()
    with open(profile) as f:
        kernels = [e['args']['op_name'] for e in json.load(f) if e.get('cat') == 'Node' and
                   e['name'].endswith('_kernel_time')]
    assert {'QuantizeLinear', 'DequantizeLinear', 'QLinearConv'} <= set(kernels), set(kernels)
    assert {k for k in kernels if k not in INT8_BOUNDARY_OPS} == {'QLinearConv'}, set(kernels)
    assert OrtTiming(precision='int8').boundary_ops == INT8_BOUNDARY_OPS
    assert OrtTiming(precision='fp32').boundary_ops == BOUNDARY_OPS
    assert kernel_ms(profile, 1, INT8_BOUNDARY_OPS) < kernel_ms(profile, 1, ())


def _profile(path, runs):
    """A stand-in ORT profile: ``runs`` = [[(op_name, us), ...], ...], one model_run each."""
    events, t = [], 0
    for kernels in runs:
        events.append(dict(cat='Session', name='model_run', ts=t, dur=10000))
        for i, (op, us) in enumerate(kernels):
            events.append(dict(cat='Node', name=f'k{i}_kernel_time', ts=t + 1 + i, dur=us, args=dict(op_name=op)))
        t += 20000
    with open(path, 'w') as f:
        json.dump(events, f)
    return str(path)


def test_kernel_ms_drops_the_int8_boundary_kernels(tmp_path):
    run = [('QuantizeLinear', 20), ('Transpose', 10), ('QLinearConv', 300), ('Transpose', 10),
           ('DequantizeLinear', 15)]
    path = _profile(tmp_path / 'p.json', [run, run[:2] + [('QLinearConv', 250)] + run[3:]])
    assert kernel_ms(path, 0, INT8_BOUNDARY_OPS) == pytest.approx(0.250)
    assert kernel_ms(path, 0, BOUNDARY_OPS) == pytest.approx(0.305)


def test_int8_timing_passes_its_boundary_ops_and_quantizes_whole_models(monkeypatch):
    seen = {}

    def fake_kernel_ms(profile_file, skip, exclude=BOUNDARY_OPS):
        seen['exclude'] = exclude
        return 1.0
    monkeypatch.setattr(ort_timing, 'kernel_ms', fake_kernel_ms)
    conv, x = nn.Conv2d(8, 8, 3, padding=1), torch.randn(1, 8, 12, 12)
    assert OrtTiming(precision='int8').time_layers([(conv, x)], repeats=1) == [1.0]
    assert seen['exclude'] == INT8_BOUNDARY_OPS

    timed = []
    monkeypatch.setattr(OrtTiming, 'time_graphs', lambda self, graphs, inputs, repeats: timed.extend(graphs) or
                        [1.0] * len(graphs))
    OrtTiming(precision='int8').time_models([_tiny()], SHAPE, lambda m, x: m(x), repeats=1)
    ops = _op_types(timed[0])
    assert ops.count('QuantizeLinear') >= 3 and 'DequantizeLinear' in ops, ops  # every conv's input quantized


def test_benchmark_measures_int8_networks_as_int8_graphs(monkeypatch):
    bench = load_tool('benchmark_latency_prune')
    quantized = []
    real = ort_timing.quantize_graph
    monkeypatch.setattr(ort_timing, 'quantize_graph', lambda g, x: quantized.append(x.shape) or real(g, x))
    args = argparse.Namespace(runtime='onnxruntime', precision='int8', threads=1, runs=2)
    ms = bench.measure(args, [_tiny(), _tiny()], (2, 3, 32, 32))
    assert len(ms) == 2 and all(m > 0 for m in ms)
    assert quantized == [torch.Size((2, 3, 32, 32))] * 2  # each network quantized at the measured batch
