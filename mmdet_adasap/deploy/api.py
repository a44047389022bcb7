"""Export a config + checkpoint (dense or pruned) to ONNX and check it against PyTorch: what the tools call."""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.structures import DetDataSample

from ..apis import build_detector, find_resize_shape
from .onnx_detector import make_session
from .onnx_export import DEFAULT_OPSET, export_onnx, read_metadata
from .parity import match_detections


def default_input_hw(cfg, model) -> Tuple[int, int]:
    """The test pipeline's Resize scale (H, W), rounded up to the preprocessor's pad_size_divisor (a
    keep-ratio scale bounds every resized image, so the padded canvas holds each of them)."""
    shape = find_resize_shape(cfg)
    if shape is None:
        raise ValueError('the config\'s test pipeline has no Resize scale: pass --input-size H [W]')
    divisor = getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1
    return tuple(int(math.ceil(v / divisor) * divisor) for v in shape[2:])


def export_detector(cfg, checkpoint: Optional[str], out_file: str, batch: Union[int, str] = 1,
                    opset: int = DEFAULT_OPSET, input_hw: Optional[Sequence[int]] = None):
    """``(PyTorch model, metadata)`` after exporting the config's model with ``checkpoint`` to ``out_file``."""
    model, _ = build_detector(cfg, checkpoint)
    hw = tuple(input_hw) if input_hw else default_input_hw(cfg, model)
    meta = export_onnx(model, out_file, hw, batch=batch, opset=opset,
                       metadata=dict(config=getattr(cfg, 'filename', None), checkpoint=checkpoint))
    return model, meta


@torch.no_grad()
def pytorch_predictions(model, images: torch.Tensor):
    """mmdet's own test path (data preprocessor + ``predict``, boxes in input pixels) for raw BGR images."""
    h, w = images.shape[-2:]
    samples = [DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.),
                                           pad_shape=(h, w), batch_input_shape=(h, w))) for _ in images]
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), False)
    return [r.pred_instances for r in model.predict(data['inputs'], data['data_samples'], rescale=False)]


def check_parity(model, onnx_file: str, batch: int = 2, seed: int = 0, session=None) -> dict:
    """Worst box / score difference (after matching order) between PyTorch and ONNX Runtime on ``batch``
    random uint8 images of the exported size; one entry per image plus the overall worst (``box`` in pixels,
    ``box_rel`` as a fraction of the longer input side: float32 coordinates of a few hundred pixels carry
    ~1e-5 px rounding per operation, so two correct runtimes differ by ~1e-4 px after a deep network)."""
    meta = read_metadata(onnx_file)
    h, w = meta['input_hw']
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, h, w), generator=g, dtype=torch.uint8)
    session = session or make_session(onnx_file)
    run_batch = batch if meta['batch'] == 'dynamic' else meta['batch']
    dets, labels = [], []
    for start in range(0, batch, run_batch):
        d, l = session.run(['dets', 'labels'], {'input': images[start:start + run_batch].float().numpy()})
        dets.append(d)
        labels.append(l)
    dets, labels = np.concatenate(dets), np.concatenate(labels)
    per_image = []
    for i, ref in enumerate(pytorch_predictions(model, images)):
        keep = labels[i] >= 0
        per_image.append(match_detections(ref.bboxes.numpy(), ref.scores.numpy(), ref.labels.numpy(),
                                          dets[i][keep, :4], dets[i][keep, 4], labels[i][keep]))
    box = max(p['box'] for p in per_image)
    return dict(images=per_image, box=box, box_rel=box / max(h, w), score=max(p['score'] for p in per_image),
                unmatched=sum(p['unmatched'] for p in per_image), detections=sum(p['count'][0] for p in per_image))
