"""INT8 post-training quantization of an exported detector (``onnx_export``) with ONNX Runtime's own tools.

Static quantization (``onnxruntime.quantization.quantize_static``), QDQ format, per-channel int8 weights, 8-bit
activations calibrated (MinMax) on real images of the config's *train* split run through its *test* pipeline and
placed on the export's input canvas exactly as the parity check places its images (``api.load_real_images``).

What is quantized: only the network. The nodes eligible are the operators of :data:`QUANTIZED_OP_TYPES` that are
a ``Conv`` or feed one (every node some ``Conv`` depends on): backbone, neck and head convolutions, residual
``Add``s, pooling. Everything downstream of the last convolutions - box decoding (``delta2bbox`` / distances:
``Add``, ``Mul``, ``Exp``), score activations, the ``nms_pre`` selection, ``NonMaxSuppression`` and the
``max_per_img`` cut - is left out by name (``nodes_to_quantize``), so it runs in fp32 on dequantized head
outputs. Selecting by graph position rather than by op type alone keeps decoding's ``Add``/``Mul`` fp32, and it
does not depend on the pre-NMS tensor names (which sit *after* decoding, so cutting there would leave decoding
eligible). The file's ``mmdet_adasap`` metadata is copied and gains ``precision: int8`` and the calibration
record (images, seed, source, method).

A network op that is not quantized (its type has no INT8 kernel in ONNX Runtime's quantizer registries, or it is
not in :data:`QUANTIZED_OP_TYPES`: RTMDet's SiLU is ``Sigmoid`` + ``Mul``, the input normalisation ``Sub`` +
``Div``) stays fp32 between a ``DequantizeLinear`` and the next ``QuantizeLinear``, and so may the quantizable op
after it (ORT's quantizer quantizes a pass-through op such as ``MaxPool`` only on a quantized input);
:func:`left_fp32` reads the quantized graph and names each network op that runs in fp32, with the reason;
the metadata keeps the list (``quantization.fp32_network_ops``), and the tool and the deployment report print
it. Layout ops (:data:`LAYOUT_OPS`) compute nothing and are not listed.

Accuracy is judged, not element parity: :func:`onnx_clean_map` evaluates a file through the same path as
``tools/test_robustness.py --backend onnxruntime`` (``use_onnxruntime`` + the Runner's test loop and the
config's evaluator) on the val split (test where there is none).
"""
import copy
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.runner import Runner

from ..utils.io import atomic_write_bytes
from .api import dataset_leaf, load_real_images
from .onnx_detector import use_onnxruntime
from .onnx_export import METADATA_KEY, ExportError, read_metadata

DEFAULT_CALIB_IMAGES = 200
#: the activations' 8-bit type: ``uint8`` (U8S8, the default) or ``int8`` (S8S8). ONNX Runtime's x86-64 int8
#: convolutions (MLAS) multiply unsigned activations by signed weights; on the AVX-512 VNNI CPU measured, the
#: demo network ran at 0.62x (batch 1) and 0.57x (batch 8) of fp32 with uint8 activations and at 1.23x with int8
#: ones (docs/deploy.md). ORT's docs name S8S8 the portable first choice (ARM, GPUs): ``--activations int8``.
ACTIVATION_TYPES = ('uint8', 'int8')
DEFAULT_TOLERANCE = 1.0  # mAP points (percent)
#: operator types quantized, and only where they are part of the network (a Conv or upstream of one)
QUANTIZED_OP_TYPES = ('Conv', 'Add', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Relu', 'Concat')
#: network ops that only move or shape data (or make constants): not listed among the ops left in fp32
LAYOUT_OPS = ('Constant', 'ConstantOfShape', 'Shape', 'Cast', 'Identity', 'Gather', 'Unsqueeze', 'Squeeze',
              'Reshape', 'Flatten', 'Transpose', 'Slice', 'Split', 'Expand', 'Range', 'Pad')
NO_KERNEL = 'no INT8 kernel in ONNX Runtime'
NOT_CHOSEN = 'ONNX Runtime has an INT8 kernel, not quantized here (QUANTIZED_OP_TYPES)'
AFTER_FP32 = 'its input comes from an fp32 op'


class QuantizeError(ValueError):
    """An input, option or data the quantizer cannot use (the message names it)."""


# ----------------------------------------------------------------------------------------------- inputs
def check_onnx_file(path: str, what: str = 'ONNX model') -> dict:
    """The export metadata of ``path``; ``FileNotFoundError`` / ``QuantizeError`` naming a missing file, a
    file that is not ONNX or one not exported by ``tools/export_onnx.py``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist')
    if not path.endswith('.onnx'):
        raise QuantizeError(f'{what} {path!r} is not an .onnx file (export it with tools/export_onnx.py)')
    try:
        return read_metadata(path)
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends: the file is not ONNX)
        raise QuantizeError(f'{what} {path!r} is not a readable ONNX model ({type(e).__name__}: {e})') from e


def check_calib_count(count, batch) -> int:
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
        raise QuantizeError(f'--calib-images must be a positive number of images, got {count!r}')
    if batch != 'dynamic' and count < int(batch):
        raise QuantizeError(f'--calib-images {count} is fewer than the export\'s fixed batch of {batch}: '
                            f'calibrate on at least {batch} images')
    return int(count)


def train_dataset_cfg(cfg) -> dict:
    """The config's train dataset with every (leaf) dataset's pipeline replaced by the test pipeline, so that
    calibration images are prepared as the deployed model's inputs are (no augmentation)."""
    loader = cfg.get('train_dataloader')
    if not loader or not loader.get('dataset'):
        raise QuantizeError('the config has no train_dataloader.dataset to draw calibration images from')
    test = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    pipeline = dataset_leaf(test['dataset']).get('pipeline') if test and test.get('dataset') else None
    pipeline = pipeline or cfg.get('test_pipeline')
    if not pipeline:
        raise QuantizeError('the config has no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    dataset = copy.deepcopy(loader['dataset'])

    def visit(d):
        if d.get('datasets'):
            for child in d['datasets']:
                visit(child)
        elif isinstance(d.get('dataset'), dict):
            visit(d['dataset'])
        else:
            root = d.get('data_root')
            if root and not osp.isdir(root):
                raise FileNotFoundError(f'train_dataloader.dataset data_root {root!r} not found'
                                        + ('' if osp.isabs(root) else f' (relative to {os.getcwd()})')
                                        + ': calibration needs real training images')
            d['pipeline'] = copy.deepcopy(pipeline)
    visit(dataset)
    return dataset


def calibration_images(cfg, meta: dict, count: int, seed: int = 0) -> Tuple[np.ndarray, str]:
    """``count`` calibration images, float32 (count, 3, H, W) raw pixels on the export's canvas, from the
    config's train split through its test pipeline (``seed`` chooses which; with replacement only when the
    split is smaller than ``count``), and a description of them."""
    check_calib_count(count, 'dynamic')
    images, fitted, picked = load_real_images(train_dataset_cfg(cfg), meta, count, seed)
    h, w = meta['input_hw']
    fit = {'shrunk': f'shrunk to fit and padded to {h}x{w}', 'padded': f'padded to {h}x{w}',
           '': f'{h}x{w}'}[fitted]
    repeated = len(picked) - len(set(picked))
    return images.numpy(), (f'{count} images of the train split ({len(set(picked))} distinct'
                            f'{f", {repeated} repeated: the split is smaller" if repeated else ""}; seed {seed}), '
                            f'through the test pipeline, {fit}')


class CalibrationImages:
    """ONNX Runtime ``CalibrationDataReader`` over calibration images (an instance of it by the ABC's
    ``get_next`` subclass hook, so that importing this module does not import ONNX Runtime): batches of the
    export's fixed batch size (the last one topped up with the first images when ``count`` is not a multiple),
    or one image a batch for a dynamic-batch export. ``images_yielded`` counts the distinct images handed out."""

    def __init__(self, images: np.ndarray, batch='dynamic', input_name: str = 'input'):
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.size = 1 if batch == 'dynamic' else int(batch)
        self.input_name = input_name
        self.rewind()

    def rewind(self):
        self._next = 0
        self.images_yielded = 0

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self._next >= len(self.images):
            return None
        chunk = self.images[self._next:self._next + self.size]
        self.images_yielded += len(chunk)
        self._next += self.size
        if len(chunk) < self.size:
            chunk = np.concatenate([chunk, self.images[:self.size - len(chunk)]])
        return {self.input_name: chunk}

    def __len__(self):
        return -(-len(self.images) // self.size)

    def __iter__(self):
        return self

    def __next__(self):
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch


# ----------------------------------------------------------------------------------------------- graph
def network_nodes(model) -> List:
    """The nodes of the network part of an exported graph: every ``Conv`` and every node a ``Conv`` depends on
    (preprocessing included, which has no quantizable op). Decoding, score activation and NMS come after the
    last convolutions and are not in it."""
    producer = {out: node for node in model.graph.node for out in node.output}
    seen, stack = set(), [n for n in model.graph.node if n.op_type == 'Conv']
    for node in stack:
        seen.add(id(node))
    while stack:
        node = stack.pop()
        for name in node.input:
            parent = producer.get(name)
            if parent is not None and id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return [n for n in model.graph.node if id(n) in seen]


def left_fp32(model) -> Dict[str, dict]:
    """The network's computing nodes of a quantized graph that run in fp32, by op type: ``{op: dict(why=..,
    nodes=[names])}``. A node runs in int8 when its type is quantized and its inputs come from
    ``DequantizeLinear`` nodes (ORT fuses the pattern into its int8 kernel); ``why``: :data:`NO_KERNEL` (its
    type is in none of ORT's quantizer registries), :data:`NOT_CHOSEN`, or :data:`AFTER_FP32` (a quantized type
    fed by an fp32 node)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry  # optional, as onnx
    kernels = set(QDQRegistry) | set(QLinearOpsRegistry)
    producer = {out: node for node in model.graph.node for out in node.output}
    out: Dict[str, dict] = {}
    for node in network_nodes(model):
        if node.op_type in LAYOUT_OPS + ('QuantizeLinear', 'DequantizeLinear'):
            continue
        fed = [producer[x].op_type for x in node.input if x in producer]
        why = (NO_KERNEL if node.op_type not in kernels else NOT_CHOSEN if node.op_type not in QUANTIZED_OP_TYPES
               else None if fed and all(op == 'DequantizeLinear' for op in fed) else AFTER_FP32)
        if why is None:
            continue
        out.setdefault(node.op_type, dict(why=why, nodes=[]))['nodes'].append(node.name)
    return out


def fp32_ops_line(fp32_ops: Dict[str, dict], shown: int = 4) -> str:
    """One line naming the network ops left in fp32 (``left_fp32``'s list), or '' when there are none."""
    parts = []
    for op, entry in sorted(fp32_ops.items()):
        names = entry['nodes']
        more = f', ... {len(names) - shown} more' if len(names) > shown else ''
        parts.append(f'{op} x{len(names)} ({entry["why"]}: {", ".join(names[:shown])}{more})')
    return 'left fp32 in the network: ' + '; '.join(parts) if parts else ''


def _name_nodes(model) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f'{node.op_type}_{i}'
            while name in used:
                name += '_'
            node.name = name
            used.add(name)


# ----------------------------------------------------------------------------------------------- quantize
def quantize_network(onnx_file: str, out_file: str, reader, activations: str = 'uint8', pre_process: bool = True):
    """ONNX Runtime's static quantization of ``onnx_file``'s network into ``out_file``, as every INT8 file of the
    package is made (this module's INT8 detectors, the INT8 latency tables' graphs): QDQ, per-channel symmetric
    int8 weights, per-tensor asymmetric ``activations`` (:data:`ACTIVATION_TYPES`), MinMax calibration on
    ``reader``, only the nodes of :func:`network_nodes` whose type is in :data:`QUANTIZED_OP_TYPES`. Returns the
    prepared fp32 model (its nodes named) and the names of the nodes quantized."""
    import onnx  # optional: only writing / reading ONNX needs it
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,  # optional, as onnx
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process  # optional, as onnx
    prepared = osp.join(osp.dirname(osp.abspath(out_file)), f'.{osp.basename(out_file)}.prepared.onnx')
    try:
        if pre_process:  # ORT's shape inference + graph optimisation, as its quantization docs recommend
            quant_pre_process(onnx_file, prepared, skip_symbolic_shape=True)
        else:
            onnx.save(onnx.load(onnx_file), prepared)
        model = onnx.load(prepared)
        _name_nodes(model)
        onnx.save(model, prepared)
        nodes = [n.name for n in network_nodes(model) if n.op_type in QUANTIZED_OP_TYPES]
        quantize_static(prepared, out_file, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8 if activations == 'uint8' else QuantType.QInt8,
                        weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options=dict(ActivationSymmetric=False, WeightSymmetric=True))
    finally:
        if osp.exists(prepared):
            os.remove(prepared)
    return model, nodes


def quantize_detector(onnx_file: str, out_file: str, cfg, calib_images: int = DEFAULT_CALIB_IMAGES,
                      seed: int = 0, pre_process: bool = True, activations: str = 'uint8') -> dict:
    """Quantize ``onnx_file`` (an fp32 export) to ``out_file`` (INT8 QDQ) with calibration images of ``cfg``'s
    train split and ``activations`` of :data:`ACTIVATION_TYPES`; returns the metadata written into ``out_file``
    (the fp32 file's plus ``precision``, ``calibration`` and ``quantization``). Written to a temporary file, then
    moved."""
    import onnx  # optional: only writing / reading ONNX needs it

    if activations not in ACTIVATION_TYPES:
        raise QuantizeError(f'--activations {activations!r}: choose one of {ACTIVATION_TYPES}')
    meta = check_onnx_file(onnx_file)
    if meta.get('precision', 'fp32') != 'fp32':
        raise QuantizeError(f'{onnx_file!r} is already {meta["precision"]}: quantize the fp32 export')
    count = check_calib_count(calib_images, meta['batch'])
    if not str(out_file).endswith('.onnx'):
        raise QuantizeError(f'output file {out_file!r} should end with .onnx')
    folder = osp.dirname(osp.abspath(out_file))
    if not osp.isdir(folder):
        raise FileNotFoundError(f'output folder {folder!r} does not exist: create it first (nothing was written)')
    if osp.abspath(out_file) == osp.abspath(onnx_file):
        raise QuantizeError(f'output file {out_file!r} is the input file: write the INT8 model elsewhere')
    images, source = calibration_images(cfg, meta, count, seed)
    reader = CalibrationImages(images, meta['batch'])

    with tempfile.TemporaryDirectory(prefix='quantize_') as tmp:
        quantized = osp.join(tmp, 'int8.onnx')
        model, nodes = quantize_network(onnx_file, quantized, reader, activations, pre_process)
        out = onnx.load(quantized)
        fp32_ops = left_fp32(out)
        op_counts, quantized_names = {}, set(nodes)
        for node in model.graph.node:
            if node.name in quantized_names:
                op_counts[node.op_type] = op_counts.get(node.op_type, 0) + 1
        new_meta = dict(meta, precision='int8',
                        calibration=dict(images=count, seed=seed, split='train', source=source, method='MinMax',
                                         images_read=reader.images_yielded),
                        quantization=dict(tool='onnxruntime.quantization.quantize_static', format='QDQ',
                                          weights='int8 per-channel (symmetric)', activations=f'{activations} per-tensor',
                                          quantized_ops=op_counts, fp32='decoding, score activation, NMS',
                                          fp32_network_ops=fp32_ops, fp32_file=osp.abspath(onnx_file)))
        del out.metadata_props[:]
        src = onnx.load(onnx_file, load_external_data=False)
        for entry in src.metadata_props:
            copied = out.metadata_props.add()
            copied.key, copied.value = entry.key, entry.value
            if entry.key == METADATA_KEY:
                copied.value = json.dumps(new_meta)
        onnx.checker.check_model(out)
        atomic_write_bytes(out_file, out.SerializeToString())  # a detector's graph: far below protobuf's 2 GB
    return new_meta


# ----------------------------------------------------------------------------------------------- accuracy
def onnx_clean_map(cfg, onnx_file: str, work_dir: Optional[str] = None, threads: Optional[int] = None
                   ) -> Tuple[float, str, str]:
    """``(mAP, metric key, split)``: clean accuracy of ``onnx_file`` run by ONNX Runtime on ``cfg``'s val split
    (test where there is none) with the config's evaluator, through ``use_onnxruntime`` and the Runner's test
    loop (the robustness tool's ONNX Runtime path). mAP as the metric reports it (VOC / COCO: 0-1)."""
    # robustness sits above deploy (its ONNX Runtime backend imports deploy): read when the check runs
    from ..robustness.loop import default_metric_key

    cfg = copy.deepcopy(cfg)
    split = 'val' if cfg.get('val_dataloader') and cfg.get('val_evaluator') else 'test'
    if split == 'val':
        cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
    if not cfg.get('test_dataloader') or not cfg.get('test_evaluator'):
        raise QuantizeError('the config has neither a val nor a test dataloader + evaluator to measure mAP on')
    use_onnxruntime(cfg, onnx_file, threads)
    cfg.test_cfg = dict(type='TestLoop')
    evaluator = cfg.test_evaluator[0] if isinstance(cfg.test_evaluator, (list, tuple)) else cfg.test_evaluator
    key = default_metric_key(evaluator)
    with tempfile.TemporaryDirectory(prefix='quantize_eval_') as tmp:
        cfg.work_dir = work_dir or tmp
        cfg.visualizer = dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                              name=f'quantize_eval_{osp.basename(onnx_file)}_{os.getpid()}_{id(cfg)}')
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
    if key not in metrics:
        raise QuantizeError(f'the evaluator gave no {key!r} (got {sorted(metrics)})')
    return float(metrics[key]), key, split


def accuracy_check(cfg, fp32_file: str, int8_file: str, tolerance: float = DEFAULT_TOLERANCE,
                   threads: Optional[int] = None) -> dict:
    """Clean mAP of both files (:func:`onnx_clean_map`), the drop in points and whether it is within
    ``tolerance`` points; ``line`` is the report line."""
    fp32, key, split = onnx_clean_map(cfg, fp32_file, threads=threads)
    int8, _, _ = onnx_clean_map(cfg, int8_file, threads=threads)
    drop = (fp32 - int8) * 100
    line = (f'{key} on the {split} split: fp32 mAP {fp32 * 100:.2f}, int8 mAP {int8 * 100:.2f}, drop '
            f'{drop:.2f} points (tolerance {tolerance:g})')
    return dict(fp32=fp32, int8=int8, drop=drop, tolerance=tolerance, ok=bool(drop <= tolerance), key=key,
                split=split, line=line)


def quantized_summary(onnx_file: str) -> dict:
    """What a quantized file holds: its op counts of ``QuantizeLinear`` / ``DequantizeLinear``, the names of
    the ops whose inputs are dequantized (computed in int8 by ORT's QDQ fusion) and the int8 initializers."""
    import onnx  # optional: only writing / reading ONNX needs it
    model = onnx.load(onnx_file)
    producer = {out: node for node in model.graph.node for out in node.output}
    int8 = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    fed = {}
    for node in model.graph.node:
        if node.op_type not in ('QuantizeLinear', 'DequantizeLinear') and any(
                producer.get(x) is not None and producer[x].op_type == 'DequantizeLinear' for x in node.input):
            fed[node.op_type] = fed.get(node.op_type, 0) + 1
    ops = [n.op_type for n in model.graph.node]
    return dict(quantize=ops.count('QuantizeLinear'), dequantize=ops.count('DequantizeLinear'),
                dequantized_inputs=fed, int8_initializers=len(int8))


def file_sizes(*files: str) -> List[int]:
    return [osp.getsize(f) for f in files]
