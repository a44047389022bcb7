"""One version: the package's, which setup.py reads and CHANGELOG.md's newest entry names."""
import os.path as osp
import re

import mmdet_adasap
from doc_snippets import REPO


def test_changelog_newest_entry_is_the_package_version():
    with open(osp.join(REPO, 'CHANGELOG.md')) as f:
        versions = re.findall(r'^## (\d+\.\d+\.\d+)\b', f.read(), flags=re.M)
    assert versions and versions[0] == mmdet_adasap.__version__, (versions[:1], mmdet_adasap.__version__)


def test_setup_reads_the_package_version():
    with open(osp.join(REPO, 'setup.py')) as f:
        src = f.read()
    assert 'version=VERSION' in src and "version='" not in src
    namespace = {}
    cwd = osp.abspath('.')
    import os
    os.chdir(REPO)
    try:
        exec(src.split('\nsetup(')[0], namespace)
    finally:
        os.chdir(cwd)
    assert namespace['VERSION'] == mmdet_adasap.__version__
