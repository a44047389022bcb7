"""Cost of one training step with each sharpness-aware variant, as a ratio to a plain SGD step.

Runs the real ``model.train_step`` (data preprocessor, detector loss, optim wrapper) on a synthetic batch, for:
SGD, SAM, ASAM, AdaSAP-radius ASAM (per-neuron radii from the pruner's channel groups, both normalisations)
and ASAM with ``sam_interval=5``. Prints the median time per step (per block of ``sam_interval`` steps for the
interval variant, so its plain steps are averaged in), the ratio to SGD, the wrapper's own buffers and, on
CUDA, peak memory. Targets: SAM/ASAM/AdaSAP <= 2.05x SGD, sam_interval=5 <= 1.25x.

    python tools/benchmark_step.py                       # CPU: demo detector + SSD300 at 272 px
    python tools/benchmark_step.py --device cuda --size-ssd300 300 --batch-ssd300 32 --amp

``--hook-path`` times what users actually run instead: real Runner iterations of the demo AdaSAP config on the
synthetic VOC (``data/synthetic_voc``; ``tools/make_synthetic_voc.py``) with phases of ``--phase-iters`` iterations
(radius refreshed every iteration), against the plain-SGD baseline config's warm-up iterations (same model,
data and batch), and the fine-tune iterations after the physical switch against a standalone ASAM step of the
small model. Targets: warm-up and pruning <= 2.05x SGD, fine-tune <= 1.1x the standalone step.
``--demo-wall`` also runs the whole shipped demo AdaSAP config (6 epochs) masks-only and physical, prints both wall
times and checks that the final masks agree (``--checkpoint`` = the dense demo checkpoint to start from).

    python tools/benchmark_step.py --hook-path [--phase-iters 8 8 8] [--checkpoint DENSE.pth] [--demo-wall]
"""
import statistics
import time

import torch
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData
from mmengine.utils import ProgressBar

import mmdet_adasap  # noqa: F401  (registers modules, applies upstream fixes)
from mmdet_adasap.apis import ToolParser, build_detector, load_config, run_tool
from mmdet_adasap.engine import AdaptiveRadius
from mmdet_adasap.engine.optim_wrappers import amp_variant_of
from mmdet_adasap.utils.timing import time_round_robin

DETECTORS = {  # name -> (config, default size, default batch)
    'demo': ('configs/demo/ssd-r18mini_synthvoc_dense.py', 256, 8),
    # 272 px is the smallest input at which all six SSD300 feature maps stay non-empty
    'ssd300': ('configs/ssd/ssd300_voc0712_dense.py', 272, 2),
}


def parse_args():
    p = ToolParser(description=__doc__.split('\n')[0])
    p.add_argument('--detectors', nargs='+', default=list(DETECTORS), choices=list(DETECTORS))
    p.add_argument('--size-demo', type=int, help='input size of the demo detector (default 256)')
    p.add_argument('--size-ssd300', type=int, help='input size of SSD300 (default 272 on CPU)')
    p.add_argument('--batch-demo', type=int)
    p.add_argument('--batch-ssd300', type=int)
    p.add_argument('--iters', type=int, default=10, help='timed steps per variant (blocks for sam_interval)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--clock', choices=['wall', 'cpu'],
                   help='wall time (default on CUDA) or this process\'s CPU time (default on CPU: robust to other '
                        'processes sharing the cores, which make wall-time ratios meaningless)')
    p.add_argument('--amp', action='store_true', help='autocast (bf16 on CPU, fp16 + dynamic scale on CUDA)')
    p.add_argument('--hook-path', action='store_true', help='time real AdaSAPHook runs (see the module docstring)')
    p.add_argument('--phase-iters', type=int, nargs=3, default=[8, 8, 8], metavar=('WARMUP', 'PRUNING', 'FINETUNE'))
    p.add_argument('--checkpoint', help='dense demo checkpoint the hook-path runs start from (default: random init)')
    p.add_argument('--data-root', default='data/synthetic_voc/VOCdevkit/')
    p.add_argument('--demo-wall', action='store_true', help='with --hook-path: whole demo AdaSAP run, masks vs physical')
    args = p.parse_args()
    args.clock = args.clock or ('wall' if args.device == 'cuda' else 'cpu')
    if args.iters < 1 or args.warmup < 0:
        p.error(f'--iters must be >= 1 and --warmup >= 0, got {args.iters} and {args.warmup}')
    return args


def synthetic_batch(num_classes: int, batch: int, size: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g))
        n = 4
        xy = torch.rand(n, 2, generator=g) * size * 0.6
        wh = torch.rand(n, 2, generator=g) * size * 0.35 + size * 0.05
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                      labels=torch.randint(0, num_classes, (n,), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def l2_scores(groups):
    """Each neuron's L2 norm over all its slices (AdaSAP's default importance)."""
    for g in groups:
        sq = torch.zeros(g.num_channels)
        for s in g.slices:
            w = s.param.detach().float().cpu()
            per_channel = w.pow(2).sum(dim=[d for d in range(w.dim()) if d != s.dim]) if w.dim() > 1 else w.pow(2)
            sq += per_channel.index_select(0, s.index.cpu())
        g.importance = sq.sqrt()
    return groups


def variants(sgd: dict):
    yield 'SGD', dict(type='OptimWrapper', optimizer=sgd), 1, False
    yield 'SAM (rho 0.05)', dict(type='SAMOptimWrapper', optimizer=sgd, rho=0.05), 1, False
    yield 'ASAM (rho 0.5)', dict(type='SAMOptimWrapper', optimizer=sgd, rho=0.5, adaptive=True), 1, False
    for norm in ('global', 'neuron'):
        yield f'AdaSAP ASAM ({norm})', dict(type='SAMOptimWrapper', optimizer=sgd, rho=0.5, adaptive=True,
                                            normalize=norm), 1, True
    yield 'ASAM sam_interval=5', dict(type='SAMOptimWrapper', optimizer=sgd, rho=0.5, adaptive=True,
                                      sam_interval=5), 5, False


def wrapper_buffer_bytes(ow) -> int:
    plan = getattr(ow, '_plan', None)
    if plan is None:
        return 0
    tensors = list(ow._saved) + list(ow._saved_stats) + [t for t in plan.owner + plan.radius if t is not None]
    return sum(t.numel() * t.element_size() for t in tensors)


def bookkeeping_seconds(model, data, ow, device, clock, repeats: int = 5) -> float:
    """Median time of the wrapper's own work in a sharpness step, outside the two passes."""
    plan = getattr(ow, '_plan', None)
    if plan is None:
        return 0.
    ow.optimizer.zero_grad()
    with ow._autocast():
        loss, _ = model.parse_losses(model(**model.data_preprocessor(data, True), mode='loss'))
    loss.backward()
    params = [p for p in plan.params if p.grad is not None]
    saved = [s for s, p in zip(ow._saved, plan.params) if p.grad is not None]
    active = None if len(params) == len(plan.params) else [i for i, p in enumerate(plan.params) if p.grad is not None]

    def bookkeeping():
        eps, total = plan.compute([p.grad for p in params], active)
        ow._finite_on_every_rank(total)
        with torch.no_grad():
            torch._foreach_copy_(saved, params)
            torch._foreach_add_(params, eps)
            torch._foreach_copy_(params, saved)
    ms, = time_round_robin([bookkeeping], repeats, warmup=0, sync=device == 'cuda', clock=clock, inference=False)
    ow.optimizer.zero_grad()
    return ms / 1e3


def bench_detector(name: str, args) -> list:
    cfg_path, size, batch = DETECTORS[name]
    size = getattr(args, f'size_{name}') or size
    batch = getattr(args, f'batch_{name}') or batch
    cfg = load_config(cfg_path)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every tensor's initialiser
    # init_weights: without it some weights stay uninitialised memory (NaN, denormals: slow on CPU)
    model, _ = build_detector(cfg, init_weights=True)
    logger.setLevel(level)
    model = model.to(args.device).train()
    num_classes = cfg.model.bbox_head.num_classes
    data = synthetic_batch(num_classes, batch, size)
    from mmdet_adasap.pruning import build_channel_groups  # the pruner's groups
    groups = l2_scores(build_channel_groups(model, (1, 3, size, size)).neuron_groups())
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f'\n== {name}: {cfg_path}, {size}x{size}, batch {batch}, {n_params / 1e6:.2f} M params, '
          f'{len(groups)} neuron groups ({sum(g.num_channels for g in groups)} neurons), device {args.device}'
          f'{", amp" if args.amp else ""}')
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    # variants run interleaved, one block each per round, so load from other processes hits them alike
    runs = []
    for label, ow_cfg, block, adasap in variants(cfg.optim_wrapper.optimizer):
        if args.amp:
            ow_cfg = dict(ow_cfg, type=amp_variant_of(ow_cfg['type']))
            ow_cfg.setdefault('dtype', 'float16' if args.device == 'cuda' else 'bfloat16')
            if ow_cfg['type'] == 'AmpOptimWrapper' and args.device != 'cuda':
                raise SystemExit("error: mmengine's AmpOptimWrapper (the SGD baseline) needs CUDA; "
                                 'drop --amp on CPU')
        ow = build_optim_wrapper(model, ow_cfg)
        if adasap:
            policy = AdaptiveRadius(rho_min=0.01, rho_max=2.0)
            policy.update(groups)
            ow.set_radius_policy(policy)
        runs.append(dict(label=label, ow=ow, block=block, peak=0.))
    bar = ProgressBar((args.warmup + args.iters) * len(runs))

    def run_block(run):
        if args.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        for _ in range(run['block']):
            model.train_step(data, run['ow'])
        if args.device == 'cuda':
            torch.cuda.synchronize()
            run['peak'] = max(run['peak'], (torch.cuda.max_memory_allocated() - before) / 2**20)
        bar.update()
    ms = time_round_robin([lambda r=r: run_block(r) for r in runs], args.iters, args.warmup,
                          sync=args.device == 'cuda', clock=clock, inference=False)
    for run, t in zip(runs, ms):
        run['time'] = t / 1e3 / run['block']
    rows = [(r['label'], r['time'], wrapper_buffer_bytes(r['ow']) / 2**20, r['peak'] or None,
             bookkeeping_seconds(model, data, r['ow'], args.device, clock)) for r in runs]
    print()
    base = rows[0][1]
    print(f'{args.clock} clock')
    print(f'{"variant":<24}{"ms/step":>10}{"x SGD":>8}{"eps ms":>8}{"buffers MiB":>13}'
          + ('  step peak MiB' if rows[0][3] else ''))
    for label, t, buf, peak, eps_s in rows:
        print(f'{label:<24}{t * 1e3:>10.1f}{t / base:>8.2f}{eps_s * 1e3:>8.1f}{buf:>13.1f}'
              + (f'{peak:>15.0f}' if peak else ''))
    print('eps ms: the perturbation bookkeeping alone (eps, save, w += eps, restore) per sharpness step')
    return rows


# ------------------------------------------------------------------------------------------- the hook path
ADASAP_DEMO = 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py'
SGD_DEMO = 'configs/adasap/ssd-r18mini_synthvoc_l2prune_sgd_flops50.py'


class IterTimer(Hook):
    """Time of every training iteration, hooks included (from the first before-iteration hook to the last
    after-iteration hook), with the AdaSAP phase it ran in."""
    priority = 'HIGHEST'

    def __init__(self, clock):
        self.clock, self.rows, self._t0 = clock, [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._t0 = self.clock()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        hook = next(h for h in runner.hooks if hasattr(h, 'phase'))
        self.rows.append((hook.phase, self.clock() - self._t0))


def _hook_run_cfg(config, args, work_dir, physical=True, phase_iters=None):
    cfg = load_config(config, work_dir=work_dir)
    for split in ('train_dataloader',):
        for d in cfg[split].dataset.get('datasets', [cfg[split].dataset]):
            d.data_root = args.data_root
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 9, by_epoch=False)
    cfg.default_hooks.adasap.physical = physical
    cfg.default_hooks.adasap.export = None
    cfg.load_from = args.checkpoint
    cfg.randomness = dict(seed=0)  # the same data order in every run: masks-only and physical prune alike
    if phase_iters is not None:
        w, p, f = phase_iters
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=w + p + f, val_interval=10 ** 9)
        cfg.param_scheduler = None
        hook = cfg.default_hooks.adasap
        hook.by_epoch, hook.warmup.end, hook.pruning.end = False, w, w + p
        if hook.warmup.sharpness is not None:
            hook.warmup.sharpness.refresh_interval = 1
        hook.pruning.schedule = dict(type='exponential', steps=2)
    return cfg


def _timed_run(cfg, clock):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    timer = IterTimer(clock)
    runner.register_hook(timer)
    start = time.perf_counter()
    runner.train()
    return runner, timer.rows, time.perf_counter() - start


def _median(rows, phase, skip=1):
    times = [t for ph, t in rows if ph == phase][skip:]  # the first iteration of a phase builds things once
    return statistics.median(times)


def _standalone_step(runner, cfg, clock, iters):
    """The small model's own ASAM step (fresh wrapper, the fine-tune radius) on the run's own data."""
    import copy
    model = copy.deepcopy(runner.model.module if hasattr(runner.model, 'module') else runner.model)
    sharp = cfg.default_hooks.adasap.finetune.sharpness
    ow = build_optim_wrapper(model, dict(cfg.optim_wrapper, rho=sharp.rho, adaptive=sharp.adaptive))
    loader = iter(runner.train_dataloader)
    batches = iter([next(loader) for _ in range(iters + 1)])  # loaded before the clock starts
    ms, = time_round_robin([lambda: model.train_step(next(batches), ow)], iters, warmup=1, clock=clock,
                           inference=False)
    return ms / 1e3


def bench_hook_path(args):
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        # SGD before and after the AdaSAP run (A-B-A): a load change during the benchmark moves both SGD runs,
        # and the AdaSAP phases are compared with their mean; the drift between them is printed
        def sgd_iteration(name):
            cfg = _hook_run_cfg(SGD_DEMO, args, f'{tmp}/{name}', phase_iters=args.phase_iters)
            return _median(_timed_run(cfg, clock)[1], 'warmup')

        sgd_runs = [sgd_iteration('sgd_before')]
        cfg = _hook_run_cfg(ADASAP_DEMO, args, f'{tmp}/adasap', phase_iters=args.phase_iters)
        runner, rows, _ = _timed_run(cfg, clock)
        standalone = _standalone_step(runner, cfg, clock, args.phase_iters[2])
        sgd_runs.append(sgd_iteration('sgd_after'))
        sgd = statistics.mean(sgd_runs)
        print(f'\nhook path, demo AdaSAP config, batch {cfg.train_dataloader.batch_size}, phases {args.phase_iters} '
              f'iterations, radius refreshed every iteration ({args.clock} clock, medians; SGD timed before and '
              f'after AdaSAP: {sgd_runs[0] * 1e3:.1f} / {sgd_runs[1] * 1e3:.1f} ms, drift '
              f'{sgd_runs[1] / sgd_runs[0]:.2f})')
        print(f'{"":<36}{"ms/iter":>10}{"ratio":>8}  target')
        print(f'{"SGD (l2prune_sgd warm-up, mean)":<36}{sgd * 1e3:>10.1f}{1:>8.2f}')
        for phase in ('warmup', 'pruning'):
            t = _median(rows, phase)
            print(f'{"AdaSAP " + phase + " (vs SGD)":<36}{t * 1e3:>10.1f}{t / sgd:>8.2f}  <= 2.05')
        fine = _median(rows, 'finetune')
        print(f'{"standalone ASAM step, small model":<36}{standalone * 1e3:>10.1f}{1:>8.2f}')
        print(f'{"AdaSAP fine-tune, physical (vs it)":<36}{fine * 1e3:>10.1f}{fine / standalone:>8.2f}  <= 1.1')
        print(f'plan builds: {runner.optim_wrapper.plan_builds} (structure only; radius refreshes do not count)')
        if args.demo_wall:
            bench_demo_wall(args, tmp)


def bench_demo_wall(args, tmp):
    walls, masks = {}, {}
    for physical in (False, True):
        runner, _, wall = _timed_run(_hook_run_cfg(ADASAP_DEMO, args, f'{tmp}/wall_{physical}', physical=physical),
                                     time.process_time if args.clock == 'cpu' else time.perf_counter)
        hook = next(h for h in runner.hooks if hasattr(h, 'phase'))
        masks[physical] = hook.physical_state['masks'] if physical else runner.adasap_pruner.masks.state_dict()
        walls[physical] = wall
    same = all(torch.equal(masks[False][k], masks[True][k]) for k in masks[False])
    print(f'\ndemo AdaSAP run (6 epochs), wall time: masks-only {walls[False]:.0f} s, physical {walls[True]:.0f} s, '
          f'ratio {walls[True] / walls[False]:.2f} (target <= 0.85); same final masks: {same}')


def main():
    args = parse_args()
    register_all_modules()
    if args.device == 'cuda':
        print(f'GPU: {torch.cuda.get_device_name()}')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads')
    if args.hook_path:
        bench_hook_path(args)
        return
    for name in args.detectors:
        bench_detector(name, args)


if __name__ == '__main__':
    run_tool(main)
