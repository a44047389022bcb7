from .checked_voc import CheckedVOCDataset, SyntheticVOCDataset
from .synthetic_voc import SYNTHETIC_VOC_CLASSES, SyntheticVOCSpec, make_synthetic_voc

__all__ = ['CheckedVOCDataset', 'SyntheticVOCDataset', 'SYNTHETIC_VOC_CLASSES', 'SyntheticVOCSpec',
           'make_synthetic_voc']
