"""Packaging. Besides the package, the wheel carries the repository's configs and tools in
``mmdet_adasap/.mim/{configs,tools}`` (the layout MMDetection's wheel and ``mim`` use), so that an installed
package can run them (console scripts) and a user's config can build on them (docs/plugin.md): a wheel gets
copies (build_py), an editable install gets relative symlinks to the clone's folders (git-ignored)."""
import ast
import glob
import os
import os.path as osp
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# the OpenMMLab stack's ranges, one table with the package's import check (read without importing the package)
STACK = ast.literal_eval(next(n.value for n in ast.parse(open('mmdet_adasap/stack.py').read()).body
                              if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'REQUIRED'))
# one version, in the package (mmdet_adasap.__version__); read without importing it (it imports torch)
VERSION = re.search(r"^__version__ = '([^']+)'", open('mmdet_adasap/__init__.py').read(), re.M).group(1)

ROOT = osp.abspath('.')  # setup.py runs in the project root (pip, build), as the VERSION line above assumes
#: what goes into .mim: folder -> the file patterns shipped from it
MIM_FILES = {'configs': ('**/*.py',), 'tools': ('*.py', '*.sh')}
#: console scripts (mmdet-adasap-<name>) -> the function in mmdet_adasap.apis.entry that runs the shipped tool
CONSOLE_SCRIPTS = {'train': 'train', 'test': 'test', 'prune': 'prune', 'prune-report': 'prune_report',
                   'robustness': 'test_robustness', 'make-voc-c': 'make_voc_c', 'export-onnx': 'export_onnx',
                   'quantize-onnx': 'quantize_onnx', 'make-synthetic-voc': 'make_synthetic_voc',
                   'voc-to-coco': 'voc_to_coco', 'compare-methods': 'compare_methods',
                   'neuron-sensitivity': 'neuron_sensitivity', 'deploy-report': 'deploy_report',
                   'build-latency-table': 'build_latency_table'}


def link_mim(package_dir):
    """Editable install: ``<package>/.mim/<folder>`` -> ``../../<folder>`` (relative, so a moved clone keeps them)."""
    mim = osp.join(package_dir, '.mim')
    os.makedirs(mim, exist_ok=True)
    for folder in MIM_FILES:
        target = osp.join(mim, folder)
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        os.symlink(osp.relpath(osp.join(ROOT, folder), mim), target)


def copy_mim(package_dir):
    """Wheel: copy the shipped files into the build's ``<package>/.mim`` (the source tree is left alone)."""
    for folder, patterns in MIM_FILES.items():
        for pattern in patterns:
            for src in glob.glob(osp.join(ROOT, folder, pattern), recursive=True):
                dst = osp.join(package_dir, '.mim', folder, osp.relpath(src, osp.join(ROOT, folder)))
                os.makedirs(osp.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """build_py that also ships configs/ and tools/ in ``mmdet_adasap/.mim``."""

    def run(self):
        super().run()
        if self.editable_mode:
            link_mim(osp.join(ROOT, 'mmdet_adasap'))
        else:
            copy_mim(osp.join(self.build_lib, 'mmdet_adasap'))


setup(
    name='mmdet-adasap',
    version=VERSION,
    description='AdaSAP (adaptive sharpness-aware pruning) for MMDetection 3.x',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_adasap', 'mmdet_adasap.*']),
    python_requires='>=3.10',
    # Exact pins live in requirements/constraints.txt; these are the compatible ranges.
    install_requires=[
        'torch>=2.1',
        'torchvision',
        *(f'{name}>={low},<{high}' for name, (low, high) in STACK.items()),  # mmdet_adasap/stack.py, checked at import
        'imagecorruptions-imaug>=1.1.5',  # never beside the original `imagecorruptions`
        'pycocotools',
        'tqdm',
    ],
    extras_require={'tests': ['pytest']},
    cmdclass={'build_py': BuildPyWithMim},
    entry_points={'console_scripts': [f'mmdet-adasap-{name} = mmdet_adasap.apis.entry:{func}'
                                      for name, func in CONSOLE_SCRIPTS.items()]},
)
