"""INT8 post-training quantization of an exported detector (``deploy.quantize``, ``tools/quantize_onnx.py``).

On the trained demo detector (the committed dense start) exported at its 256 px input, calibrated on 8 images
of the tiny synthetic VOC's train split: the INT8 file holds Q/DQ nodes and int8 per-channel Conv weights, is
smaller, keeps the export's metadata (plus precision int8 and the calibration record), leaves decoding and NMS
in fp32 (graph inspected), and its clean mAP on the tiny val split is within 2 points of the fp32 file's
(measured: fp32 62.32, int8 61.91, a 0.42-point drop on these 6 images; 0.15 points on the shipped 300-image
val split with 200 calibration images, where the tool's default tolerance is 1 point; 6 images are noisier, so
2 here). The check does fail on a broken file: one Conv's weight scales x4 drops 26 points. Bad input is
refused by name.
"""
import os.path as osp

import numpy as np
import onnx
import pytest
import torch

from mmdet_adasap.apis import load_config
from mmdet_adasap.deploy import (CalibrationImages, QuantizeError, accuracy_check, calibration_images,
                                 export_detector, network_nodes, quantized_summary, read_metadata)
from mmdet_adasap.deploy.quantize import train_dataset_cfg
from conftest import run_tool
from helpers import demo_config_on, load_tool
from pruning_fixtures import REPO

quantize_tool = load_tool('quantize_onnx')

DENSE_START = osp.join(REPO, 'docs/results/demo/dense_start.pth')
TINY_TOLERANCE = 2.0  # points: 6 val images; measured drop 0.42, the edited file's 26 (module docstring)


@pytest.fixture(scope='module')
def quantized(tiny_voc, tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('quantize')
    config = demo_config_on(tiny_voc, tmp)
    fp32 = str(tmp / 'demo.onnx')
    export_detector(load_config(config), DENSE_START, fp32, batch=1, input_hw=(256, 256))
    int8 = str(tmp / 'demo_int8.onnx')
    yield dict(tmp=tmp, config=config, fp32=fp32, int8=int8)
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def tool_run(quantized):
    """The tool run in-process (its mAP line captured by the test that reads it)."""
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = quantize_tool.main([quantized['config'], quantized['fp32'], quantized['int8'], '--calib-images',
                                     '8', '--seed', '1', '--tolerance', str(TINY_TOLERANCE), '--threads', '1'])
    return status, out.getvalue()


def test_int8_file_is_quantized_smaller_and_keeps_the_metadata(quantized, tool_run):
    status, _ = tool_run
    assert status == 0
    fp32, int8 = quantized['fp32'], quantized['int8']
    model = onnx.load(int8)
    ops = [n.op_type for n in model.graph.node]
    assert 'QuantizeLinear' in ops and 'DequantizeLinear' in ops
    # every Conv's weight is an int8 initializer, dequantized per output channel (axis 0)
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == 'Conv']
    assert convs
    for conv in convs:
        dq = producer[conv.input[1]]
        assert dq.op_type == 'DequantizeLinear', conv.name
        assert inits[dq.input[0]].data_type == onnx.TensorProto.INT8, conv.name
        scale = onnx.numpy_helper.to_array(inits[dq.input[1]])
        assert scale.ndim == 1 and scale.size == inits[dq.input[0]].dims[0], conv.name  # per channel
    assert osp.getsize(int8) < 0.5 * osp.getsize(fp32)
    before, after = read_metadata(fp32), read_metadata(int8)
    assert after['precision'] == 'int8' and 'precision' not in before
    assert {k: after[k] for k in before} == before  # the export's contract is carried over unchanged
    assert after['calibration']['images'] == 8 and after['calibration']['seed'] == 1
    assert after['calibration']['split'] == 'train' and after['calibration']['images_read'] == 8
    assert quantized_summary(int8)['int8_initializers'] >= len(convs)
    # the activations are uint8 (U8S8, the default: ORT's x86-64 int8 convolutions' fast path)
    act = [n for n in model.graph.node if n.op_type == 'QuantizeLinear' and n.input[0] not in inits]
    assert act and {inits[q.input[2]].data_type for q in act} == {onnx.TensorProto.UINT8}
    assert after['quantization']['activations'] == 'uint8 per-tensor'


def test_decoding_and_nms_stay_fp32(quantized, tool_run):
    model = onnx.load(quantized['int8'])
    producer = {o: n for n in model.graph.node for o in n.output}
    network = {id(n) for n in network_nodes(model)}
    post = [n for n in model.graph.node if id(n) not in network
            and n.op_type not in ('QuantizeLinear', 'DequantizeLinear')]
    assert any(n.op_type == 'NonMaxSuppression' for n in post) and any(n.op_type == 'Exp' for n in post)
    # nothing after the network is quantized: each QuantizeLinear reads the input or a network node's output
    for q in (n for n in model.graph.node if n.op_type == 'QuantizeLinear'):
        src = producer.get(q.input[0])
        assert src is None or id(src) in network, (q.name, src.op_type, src.name)
    # and no post-processing node computes from a dequantized value but the head outputs' layout ops
    for node in post:
        fed = [producer[x] for x in node.input if x in producer and producer[x].op_type == 'DequantizeLinear']
        assert not fed or node.op_type in ('Transpose', 'Reshape'), (node.op_type, node.name)
    nms = next(n for n in post if n.op_type == 'NonMaxSuppression')
    assert all(producer[x].op_type != 'DequantizeLinear' for x in nms.input if x in producer)
    # the pre-NMS tensors named in the metadata are still in the graph (fp32)
    names = {o for n in model.graph.node for o in n.output}
    assert set(read_metadata(quantized['int8'])['pre_nms'].values()) <= names


def test_int8_clean_map_within_tolerance_of_fp32(tool_run):
    status, out = tool_run
    line = next(x for x in out.splitlines() if 'fp32 mAP' in x)
    assert f'(tolerance {TINY_TOLERANCE:g})' in line and 'on the val split' in line, line
    fp32, int8, drop = (float(line.split(key)[1].split()[0].rstrip(',')) for key in ('fp32 mAP', 'int8 mAP', 'drop'))
    assert fp32 > 30, line  # the trained demo detects on the tiny set: the comparison means something
    assert abs(fp32 - int8 - drop) < 0.011 and drop <= TINY_TOLERANCE, line
    assert 'size: fp32' in out and 'int8' in out
    print(line)


def _scale_first_weight_scale(src: str, dst: str, factor: float) -> str:
    """A copy of an INT8 file with the dequantization scales of its first Conv's (the stem's) weights
    multiplied."""
    model = onnx.load(src)
    producer = {o: n for n in model.graph.node for o in n.output}
    conv = next(n for n in model.graph.node if n.op_type == 'Conv')
    scale = next(i for i in model.graph.initializer if i.name == producer[conv.input[1]].input[1])
    scale.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(scale) * factor, scale.name))
    onnx.save(model, dst)
    return dst


def test_accuracy_check_fails_on_an_int8_file_with_one_weight_scale_edited(quantized, tool_run, monkeypatch):
    cfg = load_config(quantized['config'])
    bad = _scale_first_weight_scale(quantized['int8'], str(quantized['tmp'] / 'edited_int8.onnx'), 4.0)
    result = accuracy_check(cfg, quantized['fp32'], bad, TINY_TOLERANCE, threads=1)
    assert not result['ok'] and result['drop'] > TINY_TOLERANCE, result['line']
    # the tool turns it into an error (exit 1 under run_tool) naming both mAPs
    monkeypatch.setattr(quantize_tool, 'accuracy_check', lambda *a, **k: result)
    with pytest.raises(ValueError, match=r'loses .* mAP points .*fp32 .*int8 .*beyond the tolerance of 2'):
        quantize_tool.main([quantized['config'], quantized['fp32'], str(quantized['tmp'] / 'again.onnx'),
                            '--calib-images', '1', '--tolerance', str(TINY_TOLERANCE)])


def test_calibration_reader_yields_exactly_n_train_images(quantized):
    cfg = load_config(quantized['config'])
    meta = read_metadata(quantized['fp32'])
    images, source = calibration_images(cfg, meta, 5, seed=2)
    assert images.shape == (5, 3, 256, 256) and 'train split' in source
    reader = CalibrationImages(images, meta['batch'])
    batches = list(iter(reader.get_next, None))
    assert len(batches) == 5 and sum(len(b['input']) for b in batches) == 5 and reader.images_yielded == 5
    from onnxruntime.quantization import CalibrationDataReader
    assert isinstance(reader, CalibrationDataReader)
    reader.rewind()
    assert reader.get_next()['input'].shape == (1, 3, 256, 256)
    # each image is one of the train split's (through the test pipeline: no flip), none of the val split's
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    train = DATASETS.build(train_dataset_cfg(cfg))
    train_images = [train[i]['inputs'].numpy().astype(np.float32) for i in range(len(train))]
    val = DATASETS.build(cfg.val_dataloader.dataset)
    val_images = [val[i]['inputs'].numpy().astype(np.float32) for i in range(len(val))]
    for image in images:
        assert any(np.array_equal(image, t) for t in train_images)
        assert not any(np.array_equal(image, v) for v in val_images)


def test_int8_activations_on_request(quantized, tmp_path):
    out = str(tmp_path / 's8s8.onnx')
    assert quantize_tool.main([quantized['config'], quantized['fp32'], out, '--calib-images', '1', '--no-check',
                               '--activations', 'int8']) == 0
    model = onnx.load(out)
    inits = {i.name: i for i in model.graph.initializer}
    act = [n for n in model.graph.node if n.op_type == 'QuantizeLinear' and n.input[0] not in inits]
    assert act and {inits[q.input[2]].data_type for q in act} == {onnx.TensorProto.INT8}
    assert read_metadata(out)['quantization']['activations'] == 'int8 per-tensor'
    from mmdet_adasap.deploy import quantize_detector
    with pytest.raises(QuantizeError, match="--activations 'int4': choose one of"):
        quantize_detector(quantized['fp32'], str(tmp_path / 'x.onnx'), load_config(quantized['config']), 1,
                          activations='int4')


def test_bad_input_is_refused_by_name(quantized, tmp_path):
    config, fp32 = quantized['config'], quantized['fp32']
    with pytest.raises(QuantizeError, match='--calib-images must be a positive number of images, got 0'):
        quantize_tool.main([config, fp32, str(tmp_path / 'a.onnx'), '--calib-images', '0', '--no-check'])
    assert not (tmp_path / 'a.onnx').exists()
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a model at all')
    with pytest.raises(QuantizeError, match=f"'{garbage}' is not a readable ONNX model"):
        quantize_tool.main([config, str(garbage), str(tmp_path / 'b.onnx'), '--no-check'])
    pth = tmp_path / 'model.pth'
    pth.write_bytes(b'x')
    with pytest.raises(QuantizeError, match=f"'{pth}' is not an .onnx file"):
        quantize_tool.main([config, str(pth), str(tmp_path / 'c.onnx'), '--no-check'])
    missing = str(tmp_path / 'missing.onnx')
    result = run_tool('tools/quantize_onnx.py', config, missing, str(tmp_path / 'd.onnx'))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: ONNX model '{missing}' does not exist", \
        result.stderr[-1000:]


def test_the_int8_artifact_goes_through_the_robustness_loop_like_the_fp32_one(quantized, tool_run):
    """`tools/test_robustness.py CONFIG MODEL_int8.onnx --backend onnxruntime`: the deployed INT8 file gets P /
    mPC / rPC from the same loop and metric as the fp32 file (here on the tiny test split, one corruption)."""
    from mmdet_adasap.robustness.api import evaluate_robustness
    status, _ = tool_run
    assert status in (None, 0)
    s = {name: evaluate_robustness(quantized['config'], quantized[name], str(quantized['tmp'] / f'robust_{name}'),
                                   ['gaussian_noise'], [3], plots=False, backend='onnxruntime')['summary']
         for name in ('fp32', 'int8')}
    for name, summary in s.items():
        assert summary['rPC'] == pytest.approx(summary['mPC'] / summary['P']), name  # rPC's closed form
    assert s['fp32']['P'] > 0.3  # the trained detector detects: the comparison below means something
    assert abs(s['int8']['P'] - s['fp32']['P']) * 100 <= 2 * TINY_TOLERANCE, s
    assert abs(s['int8']['mPC'] - s['fp32']['mPC']) * 100 <= 2 * TINY_TOLERANCE, s
    print({k: {m: round(100 * v['P' if m == 'P' else m], 2) for m in ('P', 'mPC')} for k, v in s.items()})


def _with_abs_after_first_relu(src: str, dst: str) -> str:
    """A copy of an fp32 export with an ``Abs`` (no INT8 kernel in ONNX Runtime) after the stem's ReLU: the same
    function (|x| = x for x >= 0), an op the quantizer cannot quantize inside the network."""
    model = onnx.load(src)
    relu = next(n for n in model.graph.node if n.op_type == 'Relu')
    out = relu.output[0]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == out:
                node.input[i] = out + '_abs'
    nodes = list(model.graph.node)
    abs_node = onnx.helper.make_node('Abs', [out], [out + '_abs'], name='inserted_abs')
    del model.graph.node[:]
    model.graph.node.extend(nodes[:nodes.index(relu) + 1] + [abs_node] + nodes[nodes.index(relu) + 1:])
    onnx.save(model, dst)
    return dst


def test_a_network_op_without_int8_kernel_is_named_and_left_fp32(quantized, tool_run, capsys):
    """The tool names every network op that runs in fp32 (with the reason) and the metadata keeps the list: the
    demo's input normalisation (``Sub``, ``Div``) only; with an ``Abs`` inserted after the stem's ReLU, the
    ``Abs`` (no INT8 kernel) computes on a dequantized value, and the ``MaxPool`` after it, which ORT's quantizer
    quantizes only on a quantized input, is named too."""
    from mmdet_adasap.deploy.quantize import AFTER_FP32, NO_KERNEL
    assert read_metadata(quantized['int8'])['quantization']['fp32_network_ops'] == {
        'Div': dict(why=NO_KERNEL, nodes=['/preprocess/Div']), 'Sub': dict(why=NO_KERNEL, nodes=['/preprocess/Sub'])}
    src = _with_abs_after_first_relu(quantized['fp32'], str(quantized['tmp'] / 'with_abs.onnx'))
    out = str(quantized['tmp'] / 'with_abs_int8.onnx')
    assert quantize_tool.main([quantized['config'], src, out, '--calib-images', '2', '--no-check']) == 0
    left = read_metadata(out)['quantization']['fp32_network_ops']
    assert left['Abs'] == dict(why=NO_KERNEL, nodes=['inserted_abs'])
    assert left['MaxPool'] == dict(why=AFTER_FP32, nodes=['/backbone/maxpool/MaxPool'])
    assert set(left) == {'Abs', 'MaxPool', 'Sub', 'Div'}, left
    printed = capsys.readouterr().out
    assert f'Abs x1 ({NO_KERNEL}: inserted_abs)' in printed and 'left fp32 in the network:' in printed
    model = onnx.load(out)
    producer = {o: n for n in model.graph.node for o in n.output}
    abs_node = next(n for n in model.graph.node if n.name == 'inserted_abs')
    assert producer[abs_node.input[0]].op_type == 'DequantizeLinear'  # computes on the fp32 value
    conv = next(n for n in model.graph.node if n.op_type == 'Conv' and producer[n.input[0]].op_type ==
                'DequantizeLinear' and producer[producer[producer[n.input[0]].input[0]].input[0]].name ==
                '/backbone/maxpool/MaxPool')
    assert conv  # the next Conv's input is quantized again after the fp32 MaxPool


def test_int8_benchmark_times_each_activation_type_beside_fp32(quantized, tmp_path):
    """``tools/benchmark_int8.py``: one INT8 file per activation type, each timed in turns with fp32 (network
    and detector); the printed ratios are the rows' ms over fp32's. Speed itself is not asserted."""
    tool = load_tool('benchmark_int8')
    out = str(tmp_path / 'bench')
    assert tool.main([quantized['config'], quantized['fp32'], '--calib-images', '1', '--batches', '1',
                      '--repeats', '2', '--out-dir', out]) == 0
    with open(osp.join(out, 'benchmark_int8.md')) as f:
        table = f.read().splitlines()
    assert table[0] == ('| part | batch | fp32 ms | int8_uint8 ms | int8_int8 ms | int8_uint8 / fp32 '
                        '| int8_int8 / fp32 |')
    assert [r.split(' | ')[0] for r in table[2:]] == ['| network', '| detector']
    for row in table[2:]:
        fp32, u8, s8, ru8, rs8 = (float(x) for x in row.strip('| ').split(' | ')[2:])
        assert ru8 == pytest.approx(u8 / fp32, abs=2e-3 + 0.01 * u8 / fp32)
        assert rs8 == pytest.approx(s8 / fp32, abs=2e-3 + 0.01 * s8 / fp32)
    for act in ('uint8', 'int8'):
        meta = read_metadata(osp.join(out, f'int8_{act}.onnx'))
        assert meta['quantization']['activations'] == f'{act} per-tensor'
