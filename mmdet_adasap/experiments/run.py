"""One run of the matrix: train (or resume) through the Runner, evaluate the export, write its record.

A run's folder holds ``run.json`` (what it is: written before training, so that a restarted matrix never
continues a run made with other settings), the Runner's checkpoints, ``pruned.pth``, ``robustness/`` (the
robustness loop's own per-set records, which resume) and, last, ``record.json`` (the numbers of the table,
written atomically): a run with a ``record.json`` is finished and never redone. ``.claimed`` names the live
process working on the run, so that several processes can share one matrix.
"""
import json
import os
import os.path as osp
import socket
import time
from typing import Callable, Optional


from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet_adasap.apis import build_detector as apis_build_detector
from mmdet_adasap.apis import find_resize_shape, load_config
from mmdet_adasap.apis.cli import exit_process
from mmdet_adasap.robustness.api import evaluate_robustness
from mmdet_adasap.robustness.loop import VOC_METRIC_KEY
from mmdet_adasap.utils.console import console_to_file
from mmdet_adasap.utils.io import atomic_write_json

RECORD_SCHEMA = 'mmdet_adasap.compare.run/1'
RECORD_FILE, SPEC_FILE, EXPORT_FILE, CLAIM_FILE = 'record.json', 'run.json', 'pruned.pth', '.claimed'
CONSOLE_LOG = 'console.log'  # a run's console output (config dump, mmengine's iteration lines), beside its log
END_OF_PRUNING_DIR = 'robustness_end_of_pruning'


def read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def check_same(path: str, found: dict, expected: dict, what: str) -> None:
    """Refuse to continue or tabulate a run made under other settings, naming the run and the field."""
    for key in sorted(set(found) | set(expected)):
        if found.get(key) != expected.get(key):
            raise ValueError(f'{path}: this {what} was made with {key}={found.get(key)!r}, but the matrix now has '
                             f'{key}={expected.get(key)!r} (other dense checkpoint, data or protocol); use another '
                             'output folder or delete that run to redo it')


def check_protocol(path: str, found: dict, expected: dict, what: str) -> None:
    """:func:`check_same` on a protocol; one recorded before the matrix had a ``metric_key`` was VOC's mAP."""
    def keyed(protocol):
        return dict({'metric_key': VOC_METRIC_KEY}, **protocol)
    check_same(path, keyed(found), keyed(expected), what)


def _process_id(pid: int) -> Optional[str]:
    """Host, pid and start time of a live process (the start time tells a reused pid apart); None if gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            start = f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        start = '?'
    return f'{socket.gethostname()}:{pid}:{start}'


def claim(work_dir: str) -> bool:
    """Take the run for this process; False if another live process holds it (a dead holder's claim is taken
    over: its run resumes from its checkpoints)."""
    os.makedirs(work_dir, exist_ok=True)
    path, me = osp.join(work_dir, CLAIM_FILE), _process_id(os.getpid())
    try:
        with open(path) as f:
            holder = f.read().strip()
    except FileNotFoundError:
        holder = None
    if holder and holder != me:
        host, pid = holder.split(':')[:2]
        if host == socket.gethostname() and _process_id(int(pid)) == holder:
            return False
    tmp = f'{path}.{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(me)
    os.replace(tmp, path)
    time.sleep(0.2)  # two takers at once: the last writer holds it
    with open(path) as f:
        return f.read().strip() == me


def release(work_dir: str) -> None:
    path = osp.join(work_dir, CLAIM_FILE)
    try:
        with open(path) as f:
            mine = f.read().strip() == _process_id(os.getpid())
        if mine:
            os.remove(path)
    except FileNotFoundError:
        pass


def run_config(config: str, options: dict, work_dir: str, transform: Optional[Callable] = None):
    """The training config of a run, as :func:`train` builds its Runner from it."""
    cfg = load_config(config, options, work_dir)
    cfg.launcher = 'none'
    return cfg if transform is None else transform(cfg)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint the Runner saved last in ``work_dir`` (its ``last_checkpoint`` file), as a path under
    ``work_dir`` as given: mmengine writes it absolute, which would put this machine's folders into records."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{work_dir} holds no checkpoint (no last_checkpoint file): did its training run?')
    with open(path) as f:
        ckpt = f.read().strip()
    here = osp.join(work_dir, osp.basename(ckpt))
    return here if osp.isfile(here) else ckpt


def train(config: str, options: dict, work_dir: str, transform: Optional[Callable] = None, hooks=(),
          processes: int = 1) -> float:
    """Train as ``tools/train.py CONFIG --work-dir W --cfg-options ...`` does, resuming from the work dir's last
    checkpoint when there is one; returns the wall time. ``processes`` > 1: one DDP training on that many
    processes of this machine (one per GPU where there are GPUs), started as ``tools/dist_train.sh`` starts them
    (:func:`_train_rank`); ``hooks`` go to rank 0 only."""
    start = time.perf_counter()
    if processes == 1:
        _train(config, options, work_dir, transform, hooks, 'none')
    elif processes > 1:
        import cloudpickle  # submitit's dependency: a test's or a user's transform may be a closure
        from torch.multiprocessing import spawn
        payload = cloudpickle.dumps((config, options, work_dir, transform, tuple(hooks)))
        spawn(_train_rank, args=(processes, _free_port(), payload), nprocs=processes)
    else:
        raise ValueError(f'processes={processes}: a training needs at least 1 process')
    return time.perf_counter() - start


def _train(config: str, options: dict, work_dir: str, transform, hooks, launcher: str) -> None:
    cfg = run_config(config, options, work_dir, transform)
    cfg.launcher = launcher
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cfg.resume, cfg.load_from = True, None
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    for hook in hooks:
        runner.register_hook(hook, 'LOWEST')
    runner.train()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train_rank(rank: int, world_size: int, port: int, payload: bytes) -> None:
    """One process of a DDP training (``torch.multiprocessing.spawn``'s target): torch's ``env://`` rendezvous
    variables as ``torchrun`` sets them, mmengine's ``pytorch`` launcher, the console in the work dir (rank 0:
    the run's ``console.log``, where the caller's own lines go; rank k: ``console.rank<k>.log``), and the end
    through :func:`~mmdet_adasap.apis.cli.exit_process`: a barrier, then no interpreter teardown under gloo's
    live threads (the abort that module describes)."""
    import cloudpickle  # submitit's dependency, as in train(): only a DDP training needs it
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size))
    config, options, work_dir, transform, hooks = cloudpickle.loads(payload)
    log = osp.join(work_dir, CONSOLE_LOG if rank == 0 else f'console.rank{rank}.log')
    with console_to_file(log):
        _train(config, options, work_dir, transform, hooks if rank == 0 else (), 'pytorch')
    exit_process(0)


def build_model(cfg):
    """The config's detector, untrained (:func:`mmdet_adasap.apis.build_detector`, no checkpoint)."""
    return apis_build_detector(cfg)[0]


def build_detector(config: str, checkpoint: str, options: dict, pruned: bool):
    """The detector of ``checkpoint`` in eval mode, and its trace input shape."""
    cfg = load_config(config, options)
    model, _ = apis_build_detector(cfg, checkpoint, expect='pruned' if pruned else 'dense')
    shape = find_resize_shape(cfg)
    if shape is None:
        raise ValueError(f'{config}: no Resize scale in the test pipeline to measure FLOPs and latency at')
    return model.eval(), shape


def evaluate(config: str, checkpoint: str, work_dir: str, corruptions, severities, eval_options: dict,
             cache_root, label: str, folder: str = 'robustness', metric_key: Optional[str] = None) -> dict:
    """The robustness result of ``checkpoint`` on ``metric_key`` (None: the evaluator's default key; resumes
    finished sets in ``work_dir/<folder>``)."""
    return evaluate_robustness(config, checkpoint, osp.join(work_dir, folder), corruptions=corruptions,
                               severities=severities, cache_root=cache_root, label=label, plots=False,
                               cfg_options=dict(eval_options, log_level='WARNING'), metric_key=metric_key)


def scores(result: dict) -> dict:
    """The table's robustness numbers of one result, in % (mAP x 100, rPC x 100)."""
    s = result['summary']
    pct = lambda v: None if v is None else 100 * v  # noqa: E731
    return dict(clean_map=pct(s['P']), mpc=pct(s['mPC']), rpc=pct(s['rPC']), mpc_unseen=pct(s['mPC_holdout']),
                rpc_unseen=pct(s['rPC_holdout']), per_category={k: pct(v) for k, v in s['per_category'].items()})


def write_record(path: str, record: dict) -> dict:
    atomic_write_json(path, dict(record, schema=RECORD_SCHEMA))
    return record
