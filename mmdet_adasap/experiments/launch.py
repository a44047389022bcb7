"""The comparison on a cluster, or on several local processes, through submitit.

A matrix for real VOC (5 methods x 3 ratios x 5 seeds, ~75 GPU runs) outgrows one machine. Rather than grow the
claim files (:func:`.run.claim`) into a scheduler of our own, the runs are handed to an existing engine:
submitit's executors (SLURM, or local processes with the same interface, which is how the tests run it).

* ``submit_matrix`` (``--launcher slurm``): the dense start and its record first, as one job; then one job per
  unfinished run, submitted as one job array; the table is written when they are done. A job runs exactly what
  :func:`.compare.run_matrix` runs for that run (``run_one``), so records, resume and tables are unchanged: a
  job that dies leaves its checkpoints and claim, and submitting again continues it.
* ``local_workers`` (``--launcher local --workers K``): K local processes each working through the whole
  matrix, sharing it through the claim files as processes started by hand do.

A run on N GPUs (``--gpus-per-run N``) is one job of one task holding N GPUs of one node: its training is one DDP
training on N processes that the job starts as ``tools/dist_train.sh`` does (:func:`.run.train`), the evaluation
and the record stay in the job's own process. One task rather than submitit's N tasks per job: the claim,
resume and record logic then runs once, as in every other path, and the training processes end through the
project's tested exit of a gloo / NCCL process (``apis/cli.py``); a detector's run does not need several nodes.
"""
import os
import os.path as osp
import signal
from typing import Callable, List, Optional

from mmdet_adasap.utils.console import echo
from . import run as R
from .compare import Progress, check_methods, dense_record, ensure_dense, run_matrix, run_one, selected_runs
from .matrix import Matrix, file_sha256
from .table import write_results

LAUNCHERS = ('none', 'local', 'slurm')


def prepare(matrix: Matrix, out_dir: str, split: str, transform: Optional[Callable] = None) -> dict:
    """The dense start (trained once if the matrix names none) and its evaluated record: what every run needs."""
    os.makedirs(out_dir, exist_ok=True)
    dense_ckpt = ensure_dense(matrix, out_dir, split, transform)
    protocol = matrix.protocol(split, file_sha256(dense_ckpt))
    dense = dense_record(matrix, out_dir, split, dense_ckpt, protocol)
    return dict(dense_ckpt=dense_ckpt, protocol=protocol, dense=dense)


def _in_job(fn: Callable) -> Callable:
    """``fn`` as a job runs it, with SIGTERM's default action back. submitit's job process ignores SIGTERM (it
    logs 'Bypassing signal SIGTERM'; SLURM's preemption notice is meant to reach it as SIGUSR2), and the
    processes a run forks (the corruption workers' Pool) inherit that: their pool's ``terminate()`` then never
    ends them and the job hangs at the pool's exit. A run needs no requeue hook: submitted again, it resumes
    from its checkpoints."""
    def job(*args, **kwargs):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return fn(*args, **kwargs)
    job.__name__ = job.__qualname__ = f'job_{fn.__name__}'
    return job


def run_job(matrix: Matrix, out_dir: str, split: str, name: str, transform: Optional[Callable] = None,
            processes: int = 1):
    """One run of the matrix, in its job's process (the dense start and record exist: ``prepare`` ran first);
    ``processes``: of its DDP training (the job's GPUs)."""
    prep = prepare(matrix, out_dir, split, transform)
    (run,) = [r for r in selected_runs(matrix, split) if r.name == name]
    rec = run_one(matrix, run, out_dir, prep['dense_ckpt'], prep['protocol'], Progress(1, echo), transform,
                  processes)
    if rec is None:
        raise RuntimeError(f'run {name} is held by another live process ({osp.join(run.work_dir(out_dir), R.CLAIM_FILE)})')
    return rec


def make_executor(cluster: str, folder: str, gpus_per_run: int = 1, partition: Optional[str] = None,
                  timeout_min: int = 24 * 60, cpus_per_run: Optional[int] = None, parallel: Optional[int] = None,
                  **slurm_options):
    """A submitit executor: ``cluster='slurm'`` for a SLURM cluster, ``'local'`` for local processes; each job
    one task on one node with ``gpus_per_run`` GPUs (submit its runs with the same ``processes``)."""
    import submitit  # only the launchers need it (requirements/pinned.txt)
    if gpus_per_run < 1:
        raise ValueError(f'gpus_per_run={gpus_per_run}: give at least 1 (a run on N GPUs is one DDP training)')
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = dict(timeout_min=timeout_min, name='mmdet-adasap', tasks_per_node=1, nodes=1, gpus_per_node=gpus_per_run)
    if cluster == 'slurm':
        params.update(slurm_partition=partition, slurm_array_parallelism=parallel,
                      cpus_per_task=cpus_per_run, slurm_additional_parameters=slurm_options or None)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def _wait(jobs: list, log: Callable[[str], None]) -> List[str]:
    """Wait for every job; the failures, each naming the run and the job's log files."""
    failed = []
    for name, job in jobs:
        try:
            job.result()
            log(f'[compare] {name}: job {job.job_id} done')
        except Exception as e:  # the job's own traceback is in its stderr file
            failed.append(f'{name} (job {job.job_id}: {type(e).__name__}; see {job.paths.stderr})')
    return failed


def submit_matrix(matrix: Matrix, out_dir: str, executor, split: str = 'test', methods: Optional[List[str]] = None,
                  ratios: Optional[List[float]] = None, transform: Optional[Callable] = None,
                  log: Callable[[str], None] = echo, processes: int = 1) -> dict:
    """Run the matrix's unfinished runs as one job each through ``executor``; returns the paths of the tables.
    ``processes``: of each run's DDP training (the GPUs ``executor`` gives each job)."""
    runs = selected_runs(matrix, split, methods, ratios)
    check_methods(matrix)
    log(f'[compare] dense start and record: one job ({executor.folder})')
    prep = executor.submit(_in_job(prepare), matrix, out_dir, split, transform).result()
    todo = [r for r in runs if not osp.isfile(osp.join(r.work_dir(out_dir), R.RECORD_FILE))]
    with executor.batch():
        jobs = [(r.name, executor.submit(_in_job(run_job), matrix, out_dir, split, r.name, transform, processes))
                for r in todo]
    log(f'[compare] {len(todo)} run(s) submitted, {len(runs) - len(todo)} finished before: '
        + ', '.join(f'{n} (job {j.job_id})' for n, j in jobs))
    failed = _wait(jobs, log)
    paths = write_results(matrix, out_dir, split, prep['dense'])
    if failed:
        raise RuntimeError(f'{len(failed)} run job(s) failed: {"; ".join(failed)}; submit again to continue them')
    return paths


def local_workers(matrix: Matrix, out_dir: str, workers: int, folder: str, split: str = 'test',
                  methods: Optional[List[str]] = None, ratios: Optional[List[float]] = None,
                  transform: Optional[Callable] = None, log: Callable[[str], None] = echo) -> dict:
    """``workers`` local processes through the whole matrix, sharing it through the claim files."""
    if workers < 1:
        raise ValueError(f'--workers {workers}: give at least 1')
    prep = prepare(matrix, out_dir, split, transform)  # once, before the workers, so that none trains it twice
    ex = make_executor('local', folder)
    jobs = [(f'worker {i + 1}', ex.submit(_in_job(run_matrix), matrix, out_dir, split, transform, methods, echo, ratios))
            for i in range(workers)]
    log(f'[compare] {workers} local worker(s) started (logs: {folder})')
    failed = _wait(jobs, log)
    paths = write_results(matrix, out_dir, split, prep['dense'])
    if failed:
        raise RuntimeError(f'{len(failed)} worker(s) failed: {"; ".join(failed)}; run again to continue')
    return paths
