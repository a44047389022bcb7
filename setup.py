import re

from setuptools import find_packages, setup

# one version, in the package (mmdet_adasap.__version__); read without importing it (it imports torch)
VERSION = re.search(r"^__version__ = '([^']+)'", open('mmdet_adasap/__init__.py').read(), re.M).group(1)

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
        'mmengine>=0.10.7,<0.11',
        'mmcv>=2.0.0,<2.2.0',  # mmdet 3.3.0 refuses mmcv >= 2.2.0
        'mmdet>=3.3.0,<3.4',
        'torch-pruning>=1.6.1,<1.7',
        'imagecorruptions-imaug>=1.1.5',  # never beside the original `imagecorruptions`
        'pycocotools',
        'tqdm',
    ],
    extras_require={'tests': ['pytest']},
)
