"""An exported ONNX detector run by ONNX Runtime behind mmdet's model interface.

``OnnxDetector`` is registered in mmdet's ``MODELS`` and its ``test_step`` / ``val_step`` return
``DetDataSample``s with ``pred_instances`` in original-image pixels, exactly like a PyTorch detector's. So the
deployed model is evaluated by the *same* code as the PyTorch one - the Runner's test loop, ``VOCMetric``, the
robustness loop and its reports - with only ``cfg.model`` swapped (:func:`use_onnxruntime`); there is no second
metric implementation to drift.

The dataloader's images (uint8, BGR as mmcv loads them, after the config's test pipeline) go into the graph as
raw pixels; normalisation and colour conversion are inside the graph (see ``onnx_export``). A smaller image is
padded bottom/right with the mean colour (zero after normalisation, as ``DetDataPreprocessor`` pads); a larger
one is an error naming both sizes.
"""
import hashlib
import os.path as osp
from typing import List, Optional, Union

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from .onnx_export import read_metadata


def make_session(onnx_file: Union[str, bytes], threads: Optional[int] = None):
    """An ONNX Runtime CPU session of a file (or a serialised model); ``threads`` sets intra-op threads
    (default: ORT's, all cores)."""
    import onnxruntime as ort  # optional runtime: only an ONNX Runtime session needs it
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_file, opts, providers=['CPUExecutionProvider'])


@MODELS.register_module()
class OnnxDetector(BaseModel):
    """Runs ``onnx_file`` (from ``tools/export_onnx.py``) in ONNX Runtime; test/val only."""

    def __init__(self, onnx_file: str, threads: Optional[int] = None, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=dict(type='BaseDataPreprocessor'), init_cfg=None)
        if not osp.isfile(onnx_file):
            raise FileNotFoundError(f'ONNX model {onnx_file!r} does not exist')
        self.onnx_file = onnx_file
        self.meta = read_metadata(onnx_file)
        self.session = make_session(onnx_file, threads)
        with open(onnx_file, 'rb') as f:  # what the robustness fingerprint (a state_dict hash) sees
            digest = hashlib.sha256(f.read()).digest()
        self.register_buffer('onnx_sha256', torch.tensor(list(digest), dtype=torch.uint8))
        h, w = self.meta['input_hw']
        self.input_hw = (h, w)
        mean = np.asarray(self.meta['mean'], dtype=np.float32)
        self.pad_value = (mean[::-1] if self.meta['bgr_to_rgb'] else mean).reshape(3, 1, 1)  # raw channel order

    # -------------------------------------------------------------------------------------- running
    def _canvas(self, image: torch.Tensor) -> np.ndarray:
        img = image.detach().cpu().numpy().astype(np.float32)
        h, w = img.shape[-2:]
        eh, ew = self.input_hw
        if (h, w) == (eh, ew):
            return img
        if h > eh or w > ew:
            raise ValueError(f'{self.onnx_file!r} was exported for {eh}x{ew} inputs, the test pipeline gives '
                             f'{h}x{w}: export at the pipeline\'s size (tools/export_onnx.py --input-size) or '
                             'change the test Resize')
        canvas = np.broadcast_to(self.pad_value, (3, eh, ew)).copy()
        canvas[:, :h, :w] = img
        return canvas

    def run(self, batch: np.ndarray):
        """``dets`` (B, K, 5), ``labels`` (B, K) for a float32 (B, 3, H, W) raw-pixel batch, honouring a
        static batch size by chunking (the last chunk padded with copies of its first image)."""
        size = self.meta['batch']
        if size == 'dynamic' or size == len(batch):
            return self.session.run(['dets', 'labels'], {'input': batch})
        dets, labels = [], []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            n = len(chunk)
            if n < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], size - n, 0)])
            d, l = self.session.run(['dets', 'labels'], {'input': chunk})
            dets.append(d[:n])
            labels.append(l[:n])
        return np.concatenate(dets), np.concatenate(labels)

    def predict_samples(self, inputs: List[torch.Tensor], data_samples: List[DetDataSample]) -> list:
        dets, labels = self.run(np.stack([self._canvas(x) for x in inputs]))
        for d, l, sample in zip(dets, labels, data_samples):
            keep = l >= 0
            boxes = torch.from_numpy(d[keep, :4].copy())
            scale = sample.metainfo.get('scale_factor')
            if scale is not None:  # back to original-image pixels, as mmdet's rescale=True
                boxes = boxes / boxes.new_tensor(scale).repeat(2)
            sample.pred_instances = InstanceData(bboxes=boxes, scores=torch.from_numpy(d[keep, 4].copy()),
                                                 labels=torch.from_numpy(l[keep].copy()))
        return data_samples

    # -------------------------------------------------------------------------------------- mm interface
    def test_step(self, data) -> list:
        data = self.data_preprocessor(data, False)
        return self.predict_samples(data['inputs'], data['data_samples'])

    val_step = test_step

    def train_step(self, data, optim_wrapper):
        raise RuntimeError('OnnxDetector runs an exported model for evaluation only; train the PyTorch model')

    def forward(self, inputs, data_samples=None, mode: str = 'predict'):
        if mode != 'predict':
            raise RuntimeError(f'OnnxDetector supports mode="predict" only, got {mode!r}')
        return self.predict_samples(inputs, data_samples)


#: custom hooks that act on the PyTorch model's weights (RTMDet's / YOLOX's EMA): dropped for an ONNX model
WEIGHT_HOOKS = ('EMAHook', )


def use_onnxruntime(cfg, onnx_file: str, threads: Optional[int] = None):
    """Make a loaded mm config evaluate ``onnx_file`` in ONNX Runtime instead of its PyTorch model (same
    dataset, pipeline, metric and loops; the custom hooks of :data:`WEIGHT_HOOKS` dropped: the file's weights
    are the EMA ones the export took); nothing is loaded from a checkpoint."""
    if not osp.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX model {onnx_file!r} does not exist')
    if not onnx_file.endswith('.onnx'):
        raise ValueError(f'--backend onnxruntime needs the exported .onnx file, got {onnx_file!r} '
                         '(export it with tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx)')
    cfg.model = dict(type='OnnxDetector', onnx_file=onnx_file, threads=threads)
    if cfg.get('custom_hooks'):  # an EMA copy of the model's weights: an ONNX file has none (and no deepcopy)
        cfg.custom_hooks = [h for h in cfg.custom_hooks if str(h.get('type', '')).split('.')[-1] not in WEIGHT_HOOKS]
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    if 'mmdet_adasap.deploy' not in imports:  # registers OnnxDetector
        cfg.custom_imports = dict(imports=imports + ['mmdet_adasap.deploy'], allow_failed_imports=False)
    cfg.load_from = None
    cfg.resume = False
    return cfg
