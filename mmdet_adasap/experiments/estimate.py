"""How long a matrix will take, from one short measurement: a few real training iterations of every method (and
of the dense config when the matrix trains it) and one evaluation set, scaled by the schedule and the protocol.

The phases of a run cost alike per iteration while the pruned network is only masked (the warm-up's cost is
measured), so the estimate is an upper bound once the fine-tune runs on the physically pruned model.
"""
import os.path as osp
import statistics
import time
from typing import Callable, Dict, Optional

from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmdet_adasap.apis import load_config
from mmdet_adasap.robustness.api import evaluate_robustness
from .compare import dense_checkpoint_path
from .matrix import Matrix


class _Enough(Exception):
    pass


class _IterTimer(Hook):
    priority = 'LOWEST'

    def __init__(self, iters: int):
        self.iters, self.times, self._t = iters, [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._t = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.times.append(time.perf_counter() - self._t)
        if len(self.times) >= self.iters:
            raise _Enough


def time_training(config: str, options: dict, iters: int, work_dir: str, edit: Optional[Callable] = None) -> dict:
    """Median seconds per training iteration (the first two, warm-up, left out), iterations per epoch, epochs.
    ``work_dir`` is kept: mmengine's visualizer outlives its Runner and writes there again. ``edit``: a method's
    schedule / phases edit of the loaded config (:meth:`Method.load_options`)."""
    cfg = load_config(config, dict(options, load_from=None), work_dir)
    if edit is not None:
        cfg = edit(cfg)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 6)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    timer = _IterTimer(iters + 2)
    runner.register_hook(timer)
    try:
        runner.train()
    except _Enough:
        pass
    return dict(s_per_iter=statistics.median(timer.times[2:]), iters_per_epoch=len(runner.train_dataloader),
                epochs=runner.max_epochs)


def time_eval_set(matrix: Matrix, split: str, checkpoint: str, work_dir: str) -> float:
    """Seconds of one evaluation set of a trained ``checkpoint`` (the clean set: a cached corrupted set reads
    and infers the same way). An untrained detector is no proxy: its diffuse scores pass every box to NMS."""
    res = evaluate_robustness(matrix.dense_config, checkpoint, work_dir, corruptions=['brightness'], severities=[1],
                              plots=False, resume=False,
                              cfg_options=dict(matrix.eval_options(split), log_level='WARNING'))
    return res['clean']['seconds']


def estimate(matrix: Matrix, split: str, out_dir: str, iters: int = 6,
             log: Callable[[str], None] = print) -> Dict[str, float]:
    """Seconds per run of each method, of the dense training and of the whole matrix; logs a table. The
    evaluation is timed with the dense start once it exists (the matrix's checkpoint or ``OUT/dense``)."""
    sets = 1 + len(matrix.corruptions()) * len(matrix.evaluation['severities'])
    ckpt = dense_checkpoint_path(matrix, out_dir, split)
    if osp.isfile(ckpt):
        per_set = time_eval_set(matrix, split, ckpt, osp.join(out_dir, 'estimate', 'eval'))
        log(f'[estimate] one evaluation set: {per_set:.1f} s; {sets} sets per model (clean + corrupted)')
    else:
        per_set = 0.0
        log(f'[estimate] evaluation NOT timed (no trained dense start at {ckpt} yet); add {sets} sets per run')
    out, total = {}, 0.0
    for name, m in matrix.methods.items():
        load, edit = m.load_options({**matrix.splits[split], **m.cfg_options})
        t = time_training(m.config, load, iters, osp.join(out_dir, 'estimate', name), edit)
        train = t['s_per_iter'] * t['iters_per_epoch'] * t['epochs'] + per_set  # + the end-of-training val
        out[name] = train + sets * per_set
        n = sum(1 for r in matrix.runs(split) if r.method == name)
        total += n * out[name]
        log(f'[estimate] {name}: {t["s_per_iter"]:.2f} s/iter x {t["iters_per_epoch"]} iters x {t["epochs"]} epochs '
            f'= {train / 60:.1f} min training + {sets * per_set / 60:.1f} min evaluation = {out[name] / 60:.1f} '
            f'min per run, {n} runs')
    if not matrix.dense_checkpoint:
        t = time_training(matrix.dense_config, matrix.splits[split], iters, osp.join(out_dir, 'estimate', 'dense'))
        out['dense'] = t['s_per_iter'] * t['iters_per_epoch'] * t['epochs'] + (1 + sets) * per_set
        total += out['dense']
        log(f'[estimate] dense start: {t["s_per_iter"]:.2f} s/iter x {t["iters_per_epoch"]} x {t["epochs"]} epochs '
            f'+ evaluation = {out["dense"] / 60:.1f} min')
    out['total'] = total
    log(f'[estimate] the {split} matrix: {len(matrix.runs(split))} runs, {total / 3600:.2f} h '
        '(on this machine now; VOC-C sets from a cache, rendering not included)')
    return out
