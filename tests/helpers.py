"""Shrinking real configs so that one real iteration runs on the tiny synthetic set in the test suite."""
import importlib.util
import os
import os.path as osp
import sys

from mmengine.config import Config

from mmdet_adasap.apis import load_config, strip_pretrained
from mmdet_adasap.datasets import SYNTHETIC_VOC_CLASSES

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')  # the demo detector


def _walk(node, fn):
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            _walk(v, fn)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _walk(v, fn)


def shrink_for_smoke_test(cfg: Config, data_root: str, work_dir: str, scale=None, samples: int = 2) -> Config:
    """Point every dataset at ``data_root``, use ``samples`` images per split, one epoch, no pretrained
    download, and optionally a smaller image ``scale`` for every Resize.

    The model keeps its class count: the synthetic class names take the first slots of the class list and the
    rest is padded with the config's own names, so ``NumClassCheckHook`` and the head stay untouched.
    """
    root = data_root.rstrip('/') + '/'
    num_classes = _num_classes(cfg.model)
    classes = tuple(SYNTHETIC_VOC_CLASSES) + tuple(f'unused_{i}' for i in range(num_classes - 6))

    def fix(d):
        if 'data_root' in d:
            d['data_root'] = root
            d['metainfo'] = dict(classes=classes)
            d['indices'] = samples
        if d.get('type') == 'RepeatDataset':
            d['times'] = 1
        if d.get('type') == 'Resize' and scale is not None:
            d['scale'] = scale

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        _walk(cfg[key], fix)
        cfg[key].update(batch_size=samples, num_workers=0, persistent_workers=False)
    _walk(cfg.model, fix)
    strip_pretrained(cfg.model)  # no downloads in tests
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.work_dir = work_dir
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'), dist_cfg=dict(backend='gloo'))
    cfg.log_level = 'WARNING'
    # the runner logs and dumps the config text several times per run, each yapf-formatted (~1.4 s for a real
    # detector); unformatted text is the same valid Python and the formatting is not under test
    super(Config, cfg).__setattr__('_format_python_code', False)
    return cfg


def _num_classes(model_cfg) -> int:
    found = []
    _walk(model_cfg, lambda d: found.append(d['num_classes']) if 'num_classes' in d else None)
    if not found or len(set(found)) != 1:
        raise ValueError(f'cannot tell the class count of this model: {found}')
    return found[0]


# real-VOC config -> reduced Resize scale for smoke tests (None keeps the config's: SSD300's VGG extra layers need
# the full 300 px)
SMOKE_SCALES = {
    'ssd300_voc0712': None,
    'ssd512_voc0712': (320, 320),
    'ssdlite-mbv2_voc0712': (192, 192),
    'faster-rcnn_r50_fpn_voc0712': (320, 192),
}


def shrink_adasap_for_smoke_test(cfg: Config, data_root: str, work_dir: str, phase_iters=(1, 1, 1), scale=None,
                                 samples: int = 2) -> Config:
    """:func:`shrink_for_smoke_test` plus AdaSAP phases of ``phase_iters`` (warm-up, pruning, fine-tune)
    iterations, one pruning step, no dense checkpoint to load (random weights, allowed on purpose)."""
    cfg = shrink_for_smoke_test(cfg, data_root, work_dir, scale=scale, samples=samples)
    warmup, pruning, finetune = phase_iters
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=warmup + pruning + finetune, val_interval=10 ** 6)
    hook = cfg.default_hooks.adasap
    hook.by_epoch = False
    hook.warmup.end = warmup
    hook.pruning.end = warmup + pruning
    hook.pruning.schedule = dict(type='one_shot')
    hook.allow_random_init = True
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 6, by_epoch=False, save_last=False)
    cfg.load_from = None
    return cfg


def shrink_scales(cfg: Config, side: int, base: int = 640) -> Config:
    """Every ``base`` px scale of the RTMDet / YOLOX pipelines (mosaic canvas and its 2x resize, resize, crop,
    pad, affine border, the multi-scale batch range) to ``side``, in place."""
    def fix(d):
        for key in ('img_scale', 'scale', 'crop_size', 'size'):
            value = d.get(key)
            if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1] in (base, 2 * base):
                d[key] = (value[0] * side // base,) * 2
        if d.get('type') == 'RandomAffine':
            d['border'] = (-side // 2, -side // 2)
        if d.get('type') == 'BatchSyncRandomResize':
            d['random_size_range'] = (side * 3 // 4, side * 5 // 4)

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'custom_hooks', 'model'):
        _walk(cfg[key], fix)
    return cfg


def state_digest(state_dict) -> str:
    """sha256 over a state dict's names, shapes and bytes: equal digests, bit-identical weights."""
    import hashlib
    h = hashlib.sha256()
    for name, value in state_dict.items():
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_tool(name: str):
    """``tools/<name>.py`` as a module (its ``main(argv)`` is what the command line runs), without putting
    ``tools/`` on ``sys.path``."""
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool_exit_message(name: str, *argv: str) -> str:
    """Run ``tools/<name>.py ARGV`` in this process, from the repository root, as the command line would (its
    ``main()`` under that ``sys.argv``), and return the message it exits with ('' when it returns normally).

    For the bad-input tests: a tool's error is an exception, which the command line prints as
    :func:`mmdet_adasap.apis.cli.error_line` gives it, or a ``SystemExit`` carrying its message; starting a fresh
    interpreter (several seconds of imports) for each one would tell nothing more."""
    from mmdet_adasap.apis.cli import error_line
    module = load_tool(name)
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = [f'tools/{name}.py', *argv]
    os.chdir(REPO)
    try:
        module.main()
    except SystemExit as e:
        return '' if e.code in (None, 0) else str(e.code)
    except Exception as e:  # noqa: BLE001  (what run_tool prints)
        return error_line(e)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return ''


def demo_config_on(tiny_voc: str, tmp) -> str:
    """The demo detector's config with every split on the tiny synthetic set and the loaders in-process, dumped
    to ``tmp/demo_tiny.py`` (what the deploy tests export, quantize and evaluate)."""
    root = tiny_voc + '/'
    options = {'train_dataloader.dataset.datasets.0.data_root': root,
               'train_dataloader.dataset.datasets.1.data_root': root}
    for key in ('val_dataloader', 'test_dataloader'):
        options.update({f'{key}.dataset.data_root': root, f'{key}.num_workers': 0,
                        f'{key}.persistent_workers': False})
    path = str(tmp / 'demo_tiny.py')
    load_config(DEMO_CONFIG, options).dump(path)
    return path


def write_matrix(path: str, dense: dict, pruned_config: str, methods: dict, seeds, corruptions, cfg_options: dict,
                 extra: str = '') -> str:
    """A tiny comparison matrix file (one ratio 0.5, severity 3, 2 latency repeats on 1 thread) for the harness
    tests; ``extra``: more keywords of its ``evaluation`` dict, as source text (``', key=value'``)."""
    text = (f'dense = {dense!r}\npruned_config = {pruned_config!r}\n'
            f'methods = {methods!r}\nreference = "adasap"\n'
            'ratio_key = "default_hooks.adasap.pruning.target.ratio"\nratios = [0.5]\n'
            f'seeds = dict(test={list(seeds)!r})\nsplits = dict(test=dict())\n'
            f'evaluation = dict(corruptions={list(corruptions)!r}, unseen=None, severities=[3], '
            f'latency=dict(repeats=2, threads=1), cfg_options={cfg_options!r}{extra})\n')
    with open(path, 'w') as f:
        f.write(text)
    return path
