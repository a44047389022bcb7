"""VOC AP50 with per-class APs: mmdet 3.x's ``VOCMetric`` computes them (``eval_map``) but only logs them."""
import math
import warnings
from collections import OrderedDict

from mmengine.logging import MMLogger

from mmdet.evaluation import VOCMetric
from mmdet.evaluation.functional import eval_map
from mmdet.registry import METRICS

PER_CLASS_PREFIX = 'AP_'


@METRICS.register_module()
class VOCPerClassMetric(VOCMetric):
    """``VOCMetric`` (``metric='mAP'``, one IoU threshold) that also returns ``AP_<class>`` per class.

    ``mAP`` is exactly ``VOCMetric``'s value (the same single ``eval_map`` call, legacy VOC coordinates);
    ``AP50`` is rounded to 3 digits as ``VOCMetric`` does. A class without ground truth in the set gets
    ``nan`` (``eval_map`` leaves it out of the mean, and so does every aggregate here). The log table names
    the dataset's own classes (``VOCMetric`` passes ``'voc'``, which labels rows with the 20 VOC names).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.metric != 'mAP' or len(self.iou_thrs) != 1:
            raise ValueError(f'{type(self).__name__} computes AP at one IoU threshold; got metric={self.metric!r}, '
                             f'iou_thrs={self.iou_thrs}')

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        dataset_type = self.dataset_meta.get('dataset_type')
        classes = tuple(self.dataset_meta['classes'])
        if dataset_type in ('VOC2007', 'VOC2012'):
            expected = '11points' if dataset_type == 'VOC2007' else 'area'
            if self.eval_mode != expected:
                warnings.warn(f'Pascal {dataset_type} uses `{expected}` as default evaluate mode, '
                              f'but you are using {self.eval_mode}.')
        iou_thr = self.iou_thrs[0]
        mean_ap, per_class = eval_map(preds, gts, scale_ranges=self.scale_ranges, iou_thr=iou_thr,
                                      dataset=classes, logger=logger, eval_mode=self.eval_mode,
                                      use_legacy_coordinate=True)
        out = OrderedDict(mAP=float(mean_ap))
        out[f'AP{int(iou_thr * 100):02d}'] = round(mean_ap, 3)
        for name, res in zip(classes, per_class):
            ap = res['ap']
            ap = float(ap.item() if hasattr(ap, 'item') else ap) if res['num_gts'] > 0 else math.nan
            out[PER_CLASS_PREFIX + name] = ap
        return out
