"""VOC datasets that fail loudly on bad input instead of mmdet's silent skips and anonymous parse errors."""
import os.path as osp
import xml.etree.ElementTree as ET

from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS

from .synthetic_voc import SYNTHETIC_VOC_CLASSES, SYNTHETIC_VOC_PALETTE


@DATASETS.register_module()
class CheckedVOCDataset(VOCDataset):
    """``VOCDataset`` with input checks that name the offending file.

    Args:
        unknown_class (str): what to do with an ``<object>`` whose name is not in ``metainfo['classes']``:
            ``'error'`` (default: a typo in a class list otherwise silently drops objects) or ``'skip'``
            (mmdet's behaviour; use it to train on a subset of classes on purpose).
    """

    def __init__(self, *args, unknown_class: str = 'error', **kwargs):
        if unknown_class not in ('error', 'skip'):
            raise ValueError(f"unknown_class must be 'error' or 'skip', got {unknown_class!r}")
        self.unknown_class = unknown_class
        super().__init__(*args, **kwargs)
        if tuple(self._metainfo['classes']) != tuple(VOCDataset.METAINFO['classes']):
            # VOCMetric prints mmdet's hard-coded VOC class names for any 'VOC2007'/'VOC2012' dataset_type;
            # with other classes that table would mislabel every row. The AP values are unaffected.
            self._metainfo['dataset_type'] = None

    def load_data_list(self):
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(f'VOC data root {self.data_root!r} does not exist '
                                    '(generate the synthetic set with tools/make_synthetic_voc.py, '
                                    'or point data_root at your VOCdevkit)')
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'VOC split file {self.ann_file!r} does not exist')
        return super().load_data_list()

    def parse_data_info(self, img_info):
        xml_path = img_info['xml_path']
        if not osp.isfile(xml_path):
            raise FileNotFoundError(f'{xml_path}: annotation listed in {self.ann_file} is missing')
        self._parsing = xml_path  # ElementTree objects carry no path; class errors need it
        try:
            return super().parse_data_info(img_info)
        except ET.ParseError as e:
            raise ValueError(f'{xml_path}: malformed VOC XML ({e})') from e
        except (AttributeError, TypeError) as e:
            # a missing <bndbox>/<name>/<size> child surfaces as None.text / int(None)
            raise ValueError(f'{xml_path}: incomplete VOC annotation ({e})') from e

    def _parse_instance_info(self, raw_ann_info, minus_one=True):
        if self.unknown_class == 'error':
            classes = self._metainfo['classes']
            for obj in raw_ann_info.findall('object'):
                name = obj.findtext('name')
                if name not in classes:
                    raise ValueError(f'{self._parsing}: object class {name!r} is not in the dataset classes {tuple(classes)}'
                                     " (fix the class list, or set unknown_class='skip' to drop such objects)")
        return super()._parse_instance_info(raw_ann_info, minus_one=minus_one)


@DATASETS.register_module()
class SyntheticVOCDataset(CheckedVOCDataset):
    """The shipped synthetic VOC-layout set (see :mod:`.synthetic_voc`): its classes are its metainfo."""
    METAINFO = {'classes': SYNTHETIC_VOC_CLASSES, 'palette': SYNTHETIC_VOC_PALETTE}
