"""A VOC-layout split as a COCO json (what mmdet's ``CocoDataset`` and ``CocoMetric`` read).

The boxes are the ones mmdet's ``VOCDataset`` loads (VOC's 1-based corners minus one: ``x1 = xmin - 1``,
``x2 = xmax - 1``), written as COCO ``[x1, y1, x2 - x1, y2 - y1]``, so ``CocoDataset`` yields exactly the boxes
``VOCDataset`` does; ``area = w * h``. ``difficult`` objects follow mmdet's own converter
(``tools/dataset_converters/pascal_voc.py``): ``iscrowd=1`` (COCO ignores them, as VOC AP does); ``'keep'``
writes them as ordinary objects, ``'drop'`` leaves them out. Category ids are 1..K in class order, image
ids 1..N in split order (year by year); ``file_name`` is relative to the VOCdevkit, so a config sets
``data_root`` to the VOCdevkit and ``data_prefix=dict(img='')``.
"""
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Optional, Sequence

from ..datasets import SYNTHETIC_VOC_CLASSES
from ..utils.io import atomic_write_bytes
from .voc_c import split_image_ids

DIFFICULT_MODES = ('crowd', 'keep', 'drop')


def voc_to_coco(voc_root: str, out_json: Optional[str] = None, split: str = 'test',
                years: Sequence[str] = ('VOC2007',), classes: Optional[Sequence[str]] = None,
                difficult: str = 'crowd') -> dict:
    """Convert ``<voc_root>/<year>/ImageSets/Main/<split>.txt`` (with its ``Annotations``) to a COCO dict;
    written to ``out_json`` when given. ``classes``: default the synthetic set's; an object of another
    class is an error naming the file."""
    if difficult not in DIFFICULT_MODES:
        raise ValueError(f'difficult must be one of {DIFFICULT_MODES}, got {difficult!r}')
    classes = list(SYNTHETIC_VOC_CLASSES if classes is None else classes)
    cat_ids = {name: i + 1 for i, name in enumerate(classes)}
    years = [y if y.startswith('VOC') else f'VOC{y}' for y in years]
    images, annotations = [], []
    for year, ids in split_image_ids(voc_root, years, split).items():
        for img_name in ids:
            xml_path = osp.join(voc_root, year, 'Annotations', f'{img_name}.xml')
            if not osp.isfile(xml_path):
                raise FileNotFoundError(f'annotation {xml_path!r} of image {img_name!r} ({year} {split}) is missing')
            root = ET.parse(xml_path).getroot()
            size = root.find('size')
            image_id = len(images) + 1
            images.append(dict(id=image_id, file_name=f'{year}/JPEGImages/{img_name}.jpg',
                               width=int(size.find('width').text), height=int(size.find('height').text)))
            for obj in root.findall('object'):
                name = obj.find('name').text
                if name not in cat_ids:
                    raise ValueError(f'{xml_path}: object class {name!r} is not in the classes {tuple(classes)}')
                flag = obj.find('difficult')
                is_difficult = flag is not None and int(flag.text) == 1
                if is_difficult and difficult == 'drop':
                    continue
                box = obj.find('bndbox')
                x1, y1, x2, y2 = (float(box.find(k).text) - 1 for k in ('xmin', 'ymin', 'xmax', 'ymax'))
                w, h = x2 - x1, y2 - y1
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=cat_ids[name],
                                        bbox=[x1, y1, w, h], area=w * h,
                                        iscrowd=int(is_difficult and difficult == 'crowd')))
    coco = dict(info=dict(description=f'{", ".join(years)} {split} of {voc_root} (mmdet_adasap voc_to_coco)'),
                images=images, annotations=annotations,
                categories=[dict(id=cat_ids[c], name=c, supercategory='none') for c in classes])
    if out_json:
        os.makedirs(osp.dirname(osp.abspath(out_json)), exist_ok=True)
        atomic_write_bytes(out_json, json.dumps(coco).encode())
    return coco
