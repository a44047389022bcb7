"""Config loading shared by the tools (clear errors, plugin always imported) and what they read from configs."""
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config

from ..pruning.channel_groups import DEFAULT_INPUT_SHAPE


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Load an mm config, make sure ``mmdet_adasap`` is imported by it, and set its work_dir
    (CLI > config > ``work_dirs/<config name>``, as mmdet's tools do)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as err:  # mmengine parses without a file name: the error says '<unknown>'
        located = find_syntax_error(path)
        if located is None:
            raise
        raise located from err
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    imports = cfg.get('custom_imports', {}).get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    if 'mmdet_adasap' not in imports:
        cfg.custom_imports = dict(imports=list(imports) + ['mmdet_adasap'], allow_failed_imports=False)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def find_syntax_error(path: str, child: Optional[str] = None) -> Optional[SyntaxError]:
    """The first syntax error in config ``path`` or (depth first) its ``_base_`` files, as a SyntaxError that
    names the file and line; None if they all parse."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        compile(text, path, 'exec', dont_inherit=True)
    except SyntaxError as err:
        where = f' (a _base_ of {child!r})' if child else ''
        line = (err.text or '').rstrip('\n')
        return SyntaxError(f'config file {path!r}{where} line {err.lineno}: {err.msg}'
                           + (f': {line.strip()!r}' if line.strip() else '') + '; fix the Python syntax there',
                           (path, err.lineno, err.offset, err.text))
    if not path.endswith('.py'):
        return None
    for base in Config._get_base_files(path):
        base_path = osp.normpath(Config._get_cfg_path(base, path)[0])
        if osp.isfile(base_path) and base_path.endswith('.py'):
            found = find_syntax_error(base_path, child or path)
            if found is not None:
                return found
    return None


def find_resize_shape(cfg) -> Optional[Tuple[int, int, int, int]]:
    """(1, 3, H, W) from the first ``Resize`` scale of the test (else val, train) pipeline."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'Resize' and node.get('scale') is not None:
                found.append(node['scale'])
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        walk(cfg.get(key) or {})
        if found:
            scale = found[0]
            w, h = (scale, scale) if isinstance(scale, int) else scale[:2]
            return (1, 3, int(h), int(w))  # mmcv scales are (w, h); keep_ratio scales give the bounding box
    return None


def trace_shape(cfg) -> Tuple[int, int, int, int]:
    """The input a detector of ``cfg`` is traced and costed at: its test pipeline's resize
    (:func:`find_resize_shape`), else the pruner's default (``DEFAULT_INPUT_SHAPE``)."""
    return find_resize_shape(cfg) or DEFAULT_INPUT_SHAPE


def input_size_of(cfg, default: int = DEFAULT_INPUT_SHAPE[-1]) -> int:
    """The longer side of the test pipeline's Resize scale (what the detector sees), else ``default``."""
    shape = find_resize_shape(cfg)
    return max(shape[2:]) if shape else default
