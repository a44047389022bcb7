"""Config loading shared by the tools: clear errors, plugin always imported."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Load an mm config, make sure ``mmdet_adasap`` is imported by it, and set its work_dir
    (CLI > config > ``work_dirs/<config name>``, as mmdet's tools do)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
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
