"""One detector builder and one checkpoint loader: nothing in the package or the tools builds or loads a
detector past :mod:`mmdet_adasap.apis.model` (the registered PrunedDetector builds its architecture there)."""
import glob
import os.path as osp
import re

from conftest import REPO

ALLOWED = {'mmdet_adasap/apis/model.py', 'mmdet_adasap/models/pruned_detector.py'}
PATTERN = re.compile(r'MODELS\.build\(|[^_]load_checkpoint\(model|load_state_dict\(model|def load_pruned_checkpoint')


def test_no_second_builder_or_loader():
    found = []
    for path in sorted(glob.glob(osp.join(REPO, 'mmdet_adasap', '**', '*.py'), recursive=True)
                       + glob.glob(osp.join(REPO, 'tools', '*.py'))):
        rel = osp.relpath(path, REPO)
        if rel in ALLOWED:
            continue
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if PATTERN.search(line):
                    found.append(f'{rel}:{number}: {line.strip()}')
    assert not found, 'build / load detectors through mmdet_adasap.apis.build_detector:\n' + '\n'.join(found)
