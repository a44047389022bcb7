"""The comparison harness on a tiny matrix (2 pruning methods x 1 ratio x 2 seeds, evaluated at the end of pruning
too, and a no-pruning control; 1 corruption, 3 iterations per run on the tiny synthetic set): the table equals the
runs' own result files, a killed matrix resumes without redoing finished runs, and bad input is refused naming the
run or method.

The dense start is a fixed random initialisation, so accuracy is not under test; the evaluation runs at IoU 0.1
so that the numbers differ between runs (as in tests/test_robustness/test_evaluation.py).
"""
import json
import os
import os.path as osp
from functools import partial

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from conftest import REPO
from helpers import shrink_adasap_for_smoke_test, shrink_for_smoke_test, write_matrix
from mmdet.registry import HOOKS
from mmdet_adasap.analysis.stats import paired_difference
from mmdet_adasap.experiments import load_matrix, run_matrix
from mmdet_adasap.experiments.compare import check_methods, table_only
from mmdet_adasap.experiments.table import paired

DENSE = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_dense.py')
METHODS = {'l2prune_sgd': 'L2 + SGD', 'adasap': 'AdaSAP (L2)'}
CONTROL = osp.join(REPO, 'configs/compare/methods/ssd-r18mini_synthvoc_control_sgd.py')
KILL = {'run': None}  # the run whose training dies after its 2nd iteration (first attempt only)


@HOOKS.register_module(force=True)
class KillAfterSecondIteration(Hook):
    priority = 'LOWEST'  # after the CheckpointHook has saved iteration 2

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 1:
            raise KeyboardInterrupt('killed')


def _matrix_file(tmp, tiny_voc, dense_ckpt):
    methods = {k: dict(config=osp.join(REPO, f'configs/adasap/ssd-r18mini_synthvoc_{k}_flops50.py'), label=v,
                       end_of_pruning=[0.5]) for k, v in METHODS.items()}
    methods['control_sgd'] = dict(config=CONTROL, label='control, SGD', control=True)
    opts = {'test_dataloader.dataset.data_root': tiny_voc + '/', 'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False, 'test_evaluator.iou_thrs': 0.1}
    return write_matrix(str(tmp / 'matrix.py'), dict(config=DENSE, checkpoint=dense_ckpt),
                        osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py'), methods, [1, 2],
                        ['gaussian_noise'], opts)


def _shrink(tiny_voc):
    def transform(cfg, run):
        load_from = cfg.load_from
        if cfg.default_hooks.get('adasap') is None:  # a control: the same 3 iterations, without pruning
            cfg = shrink_for_smoke_test(cfg, tiny_voc, cfg.work_dir, samples=4)
            cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=10 ** 6)
        else:
            cfg = shrink_adasap_for_smoke_test(cfg, tiny_voc, cfg.work_dir, (1, 1, 1), samples=4)
        cfg.load_from = load_from
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=-1)
        if run is not None and run.name == KILL['run']:
            cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='KillAfterSecondIteration')]
        return cfg
    return transform


@pytest.fixture(scope='module')
def matrix_run(tiny_voc, tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('compare')
    from mmdet_adasap.experiments.run import build_model
    from mmdet_adasap.apis import load_config
    torch.manual_seed(0)
    model = build_model(load_config(DENSE))
    model.init_weights()
    ckpt = str(tmp / 'dense.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    matrix = load_matrix(_matrix_file(tmp, tiny_voc, ckpt))
    out, logs = str(tmp / 'out'), []
    KILL['run'] = 'adasap/ratio0.5/seed2'  # the last pruning run of the matrix
    with pytest.raises(KeyboardInterrupt):
        run_matrix(matrix, out, transform=_shrink(tiny_voc), log=logs.append)
    first = {r: os.stat(osp.join(out, 'runs', *r.split('/'), 'record.json')).st_mtime_ns
             for r in ('l2prune_sgd/ratio0.5/seed1', 'adasap/ratio0.5/seed1', 'l2prune_sgd/ratio0.5/seed2')}
    killed_dir = osp.join(out, 'runs', 'adasap', 'ratio0.5', 'seed2')
    assert not osp.isfile(osp.join(killed_dir, 'record.json')) and osp.isfile(osp.join(killed_dir, 'iter_2.pth'))
    KILL['run'] = None
    resumed_logs = []
    paths = run_matrix(matrix, out, transform=_shrink(tiny_voc), log=resumed_logs.append)
    return dict(matrix=matrix, out=out, paths=paths, logs=logs, resumed_logs=resumed_logs, first=first,
                tmp=tmp, ckpt=ckpt, tiny_voc=tiny_voc)


def _robustness(out, run):
    with open(osp.join(out, 'runs', *run.split('/'), 'robustness', 'robustness.json')) as f:
        return json.load(f)['summary']


def test_killed_matrix_resumes_without_redoing_finished_runs(matrix_run):
    out, first, logs = matrix_run['out'], matrix_run['first'], matrix_run['resumed_logs']
    for run, mtime in first.items():  # finished runs untouched
        assert os.stat(osp.join(out, 'runs', *run.split('/'), 'record.json')).st_mtime_ns == mtime
        assert any(f'{run}: finished before, skipped' in line for line in logs)
    assert any('adasap/ratio0.5/seed2: train (resuming)' in line for line in logs)
    with open(osp.join(out, 'runs', 'adasap', 'ratio0.5', 'seed2', 'record.json')) as f:
        rec = json.load(f)
    assert rec['resumed'] and rec['wall_s']['train'] > 0
    assert any('phase finetune, iter 3/3' in line for line in logs), '\n'.join(logs)
    assert not any('phase warmup' in line for line in logs)
    assert any('matrix ETA' in line for line in matrix_run['logs'])


def test_table_numbers_equal_the_runs_result_files(matrix_run):
    out = matrix_run['out']
    with open(matrix_run['paths']['json']) as f:
        res = json.load(f)
    assert len(res['runs']) == 6 and res['protocol']['severities'] == [3]
    keys = {'method', 'ratio', 'seed', 'split', 'flops_ratio', 'params_ratio', 'latency_ms', 'clean_map', 'mpc', 'rpc'}
    assert keys <= set(res['runs'][0]) and res['dense']['method'] == 'dense'
    with open(matrix_run['paths']['markdown']) as f:
        md = f.read()
    per = {m: {s: _robustness(out, f'{m}/ratio0.5/seed{s}') for s in (1, 2)} for m in METHODS}
    per['control_sgd'] = {s: _robustness(out, f'control_sgd/ratio1/seed{s}') for s in (1, 2)}
    for row in res['summary']:
        for key, skey in (('clean_map', 'P'), ('mpc', 'mPC'), ('rpc', 'rPC')):
            vals = [100 * per[row['method']][s][skey] for s in (1, 2)]
            assert row[key]['mean'] == pytest.approx(np.mean(vals))
            assert row[key]['std'] == pytest.approx(np.std(vals, ddof=1))
        cell = f'{np.mean(vals):.1f} +- {np.std(vals, ddof=1):.1f}'
        assert cell in md.split(row['label'] + ' |')[1].split('\n')[0]
    assert {d['baseline'] for d in res['paired']} == {'l2prune_sgd'}, 'a control is not paired with a pruning run'
    for d in (d for d in res['paired'] if d['stage'] == 'final'):
        skey = {'clean_map': 'P', 'mpc': 'mPC', 'rpc': 'rPC'}[d['metric']]
        ref = {s: 100 * per['adasap'][s][skey] for s in (1, 2)}
        base = {s: 100 * per['l2prune_sgd'][s][skey] for s in (1, 2)}
        assert (d['low'], d['high']) == pytest.approx((paired_difference(ref, base).low,
                                                       paired_difference(ref, base).high))
    for rec in res['runs']:
        if rec['method'] == 'control_sgd':
            assert rec['flops_ratio'] == rec['params_ratio'] == 1.0 and rec['kind'] == 'control'
        else:
            assert 0 < rec['flops_ratio'] <= 0.5 + 1e-9 and rec['params_ratio'] < 1
    for key in ('flops_plot', 'category_plot'):
        with open(matrix_run['paths'][key], 'rb') as f:
            assert f.read(4) == b'\x89PNG'


def test_control_runs_without_pruning_and_is_tabled_apart(matrix_run):
    out = matrix_run['out']
    with open(matrix_run['paths']['json']) as f:
        res = json.load(f)
    rows = [r for r in res['summary'] if r['method'] == 'control_sgd']
    assert [(r['kind'], r['ratio'], r['seeds']) for r in rows] == [('control', 1.0, [1, 2])]
    run_dir = osp.join(out, 'runs', 'control_sgd', 'ratio1', 'seed1')
    from mmdet_adasap.engine.hooks.pruning_state import LEGACY_PHASES_KEY, STATE_KEY
    state = torch.load(osp.join(run_dir, 'iter_3.pth'), weights_only=False)
    assert STATE_KEY in torch.load(osp.join(run_dir.replace('control_sgd', 'adasap').replace('ratio1', 'ratio0.5'),
                                            'iter_3.pth'), weights_only=False), 'the key a pruning run writes'
    assert not {STATE_KEY, LEGACY_PHASES_KEY} & set(state), 'no pruning hook took part in a control run'
    assert not osp.isfile(osp.join(run_dir, 'pruned.pth'))
    dense = torch.load(matrix_run['ckpt'])['state_dict']
    assert {k: v.shape for k, v in state['state_dict'].items()} == {k: v.shape for k, v in dense.items()}
    assert any(not torch.equal(state['state_dict'][k], dense[k]) for k in dense), 'it trained on from the start'
    with open(matrix_run['paths']['markdown']) as f:
        md = f.read()
    control = md.split('## Control: no pruning')[1]
    assert '| control, SGD | 2 |' in control and 'Paired difference' not in control.split('##')[0]
    assert '| control, SGD |' not in md.split('## Control: no pruning')[0]


def test_end_of_pruning_reads_the_checkpoint_of_the_pruning_phase_last_iteration(matrix_run):
    out = matrix_run['out']
    with open(matrix_run['paths']['json']) as f:
        res = json.load(f)
    for rec in (r for r in res['runs'] if r['method'] in METHODS):
        end = rec['end_of_pruning']
        run_dir = osp.join(out, 'runs', rec['method'], 'ratio0.5', f'seed{rec["seed"]}')
        assert end['checkpoint'] == 'iter_2.pth'  # phases (1, 1, 1): the pruning phase ends after iteration 2
        ckpt = torch.load(osp.join(run_dir, end['checkpoint']), weights_only=False)
        assert ckpt['meta']['iter'] == 2
        assert end['flops_ratio'] == pytest.approx(rec['flops_ratio']), 'already pruned to the target there'
        with open(osp.join(run_dir, end['robustness'])) as f:
            summary = json.load(f)['summary']
        assert (end['clean_map'], end['mpc']) == pytest.approx((100 * summary['P'], 100 * summary['mPC']))
    rows = {r['method']: r for r in res['summary'] if r.get('end_of_pruning')}
    assert sorted(rows) == sorted(METHODS)
    for method, row in rows.items():
        vals = [r['end_of_pruning']['mpc'] for r in res['runs'] if r['method'] == method]
        assert row['end_of_pruning']['mpc']['mean'] == pytest.approx(np.mean(vals))
    (d,) = [d for d in res['paired'] if d['stage'] == 'end_of_pruning' and d['metric'] == 'mpc']
    by = {(r['method'], r['seed']): r['end_of_pruning']['mpc'] for r in res['runs'] if r['method'] in METHODS}
    assert d['mean'] == pytest.approx(np.mean([by['adasap', s] - by['l2prune_sgd', s] for s in (1, 2)]))
    with open(matrix_run['paths']['end_of_pruning_plot'], 'rb') as f:
        assert f.read(4) == b'\x89PNG'


def test_latency_method_pairs_only_runs_of_matching_measured_latency(tmp_path, tiny_voc):
    latency = {k: osp.join(REPO, f'configs/adasap/ssd-r18mini_synthvoc_{k}_latency50.py')
               for k in ('adasap', 'l2prune_sgd')}
    src = _matrix_file(tmp_path, tiny_voc, str(tmp_path / 'unused.pth'))
    matrix = load_matrix(src, {'methods.adasap_l': dict(config=latency['adasap'], ratios=[0.6]),
                               'methods.l2_l': dict(config=latency['l2prune_sgd'], ratios=[0.6]),
                               'reference': dict(_delete_=True, flops='adasap', latency='adasap_l')})
    assert (matrix.methods['adasap_l'].kind, matrix.methods['l2_l'].kind) == ('latency', 'latency')
    assert [r.name for r in matrix.runs('test') if r.ratio == 0.6][:2] == ['adasap_l/ratio0.6/seed1',
                                                                           'l2_l/ratio0.6/seed1']

    def rec(method, seed, latency_ratio, mpc):
        return dict(method=method, ratio=0.6, seed=seed, kind='latency', latency_ratio=latency_ratio,
                    clean_map=50.0, mpc=mpc, rpc=mpc / 50.0 * 100)
    records = [rec('adasap_l', 1, 0.60, 31.0), rec('l2_l', 1, 0.62, 30.0),  # 3 % apart: paired
               rec('adasap_l', 2, 0.60, 35.0), rec('l2_l', 2, 0.75, 30.0),  # 20 % apart: not paired
               rec('adasap_l', 3, 0.58, 32.5), rec('l2_l', 3, 0.57, 30.0)]
    diffs = [d for d in paired(records, matrix) if d['metric'] == 'mpc']
    assert len(diffs) == 1 and diffs[0]['kind'] == 'latency' and diffs[0]['unmatched_seeds'] == [2]
    assert (diffs[0]['n'], diffs[0]['mean']) == (2, pytest.approx(1.75))
    records[4].update(clean_map=0.0, mpc=0.0, rpc=None)  # a run that detects nothing: its rPC is undefined
    diffs = {d['metric']: d for d in paired(records, matrix)}
    assert (diffs['rpc']['n'], diffs['rpc']['seeds']) == (1, (1,)), 'rPC paired where both runs define it'
    assert (diffs['mpc']['n'], diffs['mpc']['mean']) == (2, pytest.approx((1.0 - 30.0) / 2))


def test_table_refuses_a_run_with_another_protocol(matrix_run, tmp_path):
    import shutil
    out = str(tmp_path / 'copy')
    shutil.copytree(matrix_run['out'], out)
    with open(table_only(matrix_run['matrix'], out)['json']) as f, open(matrix_run['paths']['json']) as g:
        assert json.load(f)['summary'] == json.load(g)['summary'], 'the table is rebuilt from the records alone'
    path = osp.join(out, 'runs', 'l2prune_sgd', 'ratio0.5', 'seed2', 'record.json')
    with open(path) as f:
        rec = json.load(f)
    rec['protocol']['severities'] = [1, 3, 5]
    with open(path, 'w') as f:
        json.dump(rec, f)
    with pytest.raises(ValueError, match=r'l2prune_sgd/ratio0.5/seed2/record.json: .*severities=\[1, 3, 5\]'):
        table_only(matrix_run['matrix'], out)


def test_another_dense_checkpoint_is_refused(matrix_run):
    other = str(matrix_run['tmp'] / 'other_dense.pth')
    state = torch.load(matrix_run['ckpt'])
    next(iter(state['state_dict'].values())).add_(1.0)
    torch.save(state, other)
    matrix = load_matrix(_matrix_file(matrix_run['tmp'], matrix_run['tiny_voc'], other))
    with pytest.raises(ValueError, match=r'dense/record.json: this dense record was made with dense_sha256='):
        run_matrix(matrix, matrix_run['out'], transform=_shrink(matrix_run['tiny_voc']), log=lambda s: None)


def test_bad_matrices_are_refused(matrix_run, tmp_path):
    src = _matrix_file(tmp_path, matrix_run['tiny_voc'], matrix_run['ckpt'])
    with pytest.raises(ValueError, match=r"method 'adasap' has no config"):
        load_matrix(src, {'methods.adasap.config': ''})
    with pytest.raises(ValueError, match=r"method 'l2prune_sgd' cannot reach ratio 0.01 "
                                         r'\(run l2prune_sgd/ratio0.01\).*unreachable'):
        check_methods(load_matrix(src, {'ratios': [0.5, 0.01]}))
    latency = osp.join(REPO, 'configs/adasap/ssd-r18mini_synthvoc_adasap_latency50.py')
    missing = str(tmp_path / 'no_table.json')
    with pytest.raises(ValueError, match=r"method 'lat': latency table .*no_table.json.*build_latency_table"):
        check_methods(load_matrix(src, {'methods.lat': dict(config=latency, ratios=[0.6], cfg_options={
            'default_hooks.adasap.latency_table': missing})}))
    with pytest.raises(ValueError, match=r"method 'lat' prunes to a latency target; give its own ratios"):
        load_matrix(src, {'methods.lat': dict(config=latency)})
    with pytest.raises(ValueError, match=r"method 'adasap' is a control \(no pruning\), but its config .*names a "
                                         r'pruning target at default_hooks.adasap.pruning.target'):
        load_matrix(src, {'methods.adasap.control': True, 'methods.adasap.end_of_pruning': None})
    with pytest.raises(ValueError, match=r"method 'control_sgd' is a control \(no pruning phase\), so it has no "
                                         r'end of pruning to evaluate'):
        load_matrix(src, {'methods.control_sgd.end_of_pruning': [0.5]})
    with pytest.raises(ValueError, match=r"reference 'control_sgd' for the flops methods is a control method"):
        load_matrix(src, {'reference': 'control_sgd'})


def test_end_of_pruning_in_an_epoch_checkpoint_or_without_its_checkpoint(matrix_run, tmp_path):
    """A hook counting in iterations whose pruning ends on an epoch's last iteration (RTMDet's recipes) finds that
    state in the epoch's checkpoint; with neither file the error names the run and the fix."""
    import shutil
    from mmdet_adasap.experiments.compare import end_of_pruning_checkpoint
    out = str(tmp_path / 'copy')
    shutil.copytree(matrix_run['out'], out)
    matrix = matrix_run['matrix']
    run = next(r for r in matrix.runs('test') if r.method == 'adasap')
    work = run.work_dir(out)
    find = partial(end_of_pruning_checkpoint, matrix, run, out, matrix.train_options(run, matrix_run['ckpt']),
                   _shrink(matrix_run['tiny_voc']))
    assert find() == osp.join(work, 'iter_2.pth')
    shutil.copy(osp.join(work, 'iter_3.pth'), osp.join(work, 'epoch_1.pth'))  # saved after iteration 3: not it
    os.rename(osp.join(work, 'iter_2.pth'), osp.join(work, 'epoch_2.pth'))  # as an epoch of two iterations saves
    assert find() == osp.join(work, 'epoch_2.pth')
    os.remove(osp.join(work, 'epoch_2.pth'))
    with pytest.raises(FileNotFoundError, match=r'run adasap/ratio0.5/seed1: the end-of-pruning evaluation needs '
                                                r'the checkpoint .*iter_2.pth.*max_keep_ckpts'):
        find()


def test_two_processes_share_a_matrix_by_claiming_runs(tmp_path):
    import subprocess
    import sys
    from mmdet_adasap.experiments import run as R
    work = str(tmp_path / 'run')
    assert R.claim(work) and R.claim(work), 'a process may claim its own run again'
    other = subprocess.Popen([sys.executable, '-c', 'import sys, time; '
                              'from mmdet_adasap.experiments import run as R; '
                              f'print(R.claim({work!r}), flush=True); time.sleep(30)'],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'False', 'held by a live process'
    finally:
        other.kill()
        other.wait()
    R.release(work)
    assert not osp.exists(osp.join(work, R.CLAIM_FILE))
    with open(osp.join(work, R.CLAIM_FILE), 'w') as f:
        f.write(R._process_id(other.pid) or f'{os.uname().nodename}:{other.pid}:0')  # a dead holder
    assert R.claim(work), 'a dead process\'s claim is taken over (its run resumes)'


def test_a_ratio_filter_outside_the_matrix_is_refused(matrix_run):
    with pytest.raises(ValueError, match=r'ratio\(s\) \[0.3\] are not among the runs\' ratios \[0.5, 1.0\]'):
        run_matrix(matrix_run['matrix'], matrix_run['out'], ratios=[0.3], log=lambda s: None)


def test_tool_rebuilds_the_table_and_reports_bad_input(matrix_run):
    from conftest import run_tool
    matrix = matrix_run['matrix'].source
    proc = run_tool('tools/compare_methods.py', matrix, '--out', matrix_run['out'], '--table-only')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '# Method comparison (test split)' in proc.stdout and 'AdaSAP (L2) - baseline' in proc.stdout
    proc = run_tool('tools/compare_methods.py', matrix, '--out', matrix_run['out'], '--split', 'val', '--table-only')
    assert proc.returncode != 0 and "holds the 'test' split, not 'val'" in proc.stderr


def test_search_log_gets_one_line_per_finished_run(tmp_path):
    from mmdet_adasap.experiments.compare import SEARCH_LOG, _log_search
    for seed in (1, 2):
        _log_search(str(tmp_path), dict(method='adasap', method_options={'x': 1}, ratio=0.5, seed=seed, split='val',
                                        clean_map=50.0 + seed, mpc=30.0, rpc=60.0))
    with open(tmp_path / SEARCH_LOG) as f:
        lines = [json.loads(line) for line in f]
    assert [(d['seed'], d['clean_map'], d['method_options']) for d in lines] == [(1, 51.0, {'x': 1}),
                                                                                (2, 52.0, {'x': 1})]


def test_a_run_whose_method_config_changed_is_refused(matrix_run, tmp_path):
    """Editing a method's knobs after its runs finished must not reuse them silently."""
    matrix = matrix_run['matrix']
    matrix.methods['l2prune_sgd'].cfg_options = {'optim_wrapper.optimizer.lr': 0.5}
    try:
        with pytest.raises(ValueError, match=r'l2prune_sgd/ratio0.5/seed1/record.json: this run was made with '
                                             r'config_sha256='):
            run_matrix(matrix, matrix_run['out'], transform=_shrink(matrix_run['tiny_voc']), log=lambda s: None)
    finally:
        matrix.methods['l2prune_sgd'].cfg_options = {}


def test_remeasured_latency_replaces_the_in_run_numbers_and_keeps_them(matrix_run, tmp_path, monkeypatch):
    import shutil
    from mmdet_adasap.experiments import compare
    from mmdet_adasap.experiments.remeasure import remeasure_latency
    out = str(tmp_path / 'copy')
    shutil.copytree(matrix_run['out'], out)
    gone = 'l2prune_sgd/ratio0.5/seed2'
    os.remove(osp.join(out, 'runs', *gone.split('/'), 'pruned.pth'))

    def read(run):
        with open(osp.join(out, 'runs', *run.split('/'), 'record.json')) as f:
            return json.load(f)
    before = {r: read(r) for r in ('adasap/ratio0.5/seed1', 'control_sgd/ratio1/seed1', gone)}
    # a stand-in clock: each model's "milliseconds" are its parameter count, so the new ratio must be params_ratio
    monkeypatch.setattr(compare, 'interleaved_latency',
                        lambda models, shape, repeats, threads: [sum(p.numel() for p in m.parameters()) / 1e4
                                                                 for m in models])
    with pytest.raises(ValueError, match=r'ratio\(s\) \[0.3\] are not among the runs'):
        remeasure_latency(matrix_run['matrix'], out, ratios=[0.3])
    logs = []
    for _ in range(2):  # a second pass keeps the first in-run numbers
        paths = remeasure_latency(matrix_run['matrix'], out, log=logs.append)
    for run, old in before.items():
        rec = read(run)
        if run == gone:
            assert rec['latency_ratio'] == old['latency_ratio'] and 'latency_in_run' not in rec
            continue
        assert rec['latency_ratio'] == pytest.approx(rec['params_ratio'])
        assert rec['latency_in_run'] == {k: old[k] for k in ('latency_ms', 'dense_latency_ms', 'latency_ratio')}
        assert (rec['clean_map'], rec['mpc']) == (old['clean_map'], old['mpc'])
    assert read('control_sgd/ratio1/seed1')['latency_ratio'] == pytest.approx(1.0)
    assert any(f'whose model is not on disk: {gone}' in line for line in logs)
    with open(paths['json']) as f:
        res = json.load(f)
    with open(paths['markdown']) as f:
        assert f'for the dense start and {len(res["runs"]) - 1} of {len(res["runs"])} runs' in f.read()
    run = next(r for r in res['runs'] if (r['method'], r['seed']) == ('adasap', 1))
    assert run['latency_ratio'] == pytest.approx(run['params_ratio'])
    assert res['dense']['latency_ms'] == pytest.approx(res['dense']['params'] / 1e4)


def test_last_checkpoint_is_named_under_the_work_dir_as_given(tmp_path, monkeypatch):
    from mmdet_adasap.experiments.run import last_checkpoint
    monkeypatch.chdir(tmp_path)
    os.makedirs('w/run')
    open('w/run/epoch_6.pth', 'w').close()
    with open('w/run/last_checkpoint', 'w') as f:
        f.write(str(tmp_path / 'w' / 'run' / 'epoch_6.pth'))  # mmengine writes it absolute
    assert last_checkpoint('w/run') == osp.join('w/run', 'epoch_6.pth')
    with pytest.raises(FileNotFoundError, match='no last_checkpoint file'):
        last_checkpoint('w')


def test_submitit_jobs_give_the_records_of_the_in_process_run(matrix_run, monkeypatch):
    """The `--launcher slurm` path with submitit's local executor: the dense record as one job, then two runs as
    two jobs; their records equal the in-process matrix's (same seeds), and the table is written."""
    from mmdet_adasap.experiments.launch import make_executor, submit_matrix
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([osp.join(REPO, 'tests'), REPO]))  # the transform's module
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # as the in-process runs (torch.set_num_threads(1))
    out, logs = str(matrix_run['tmp'] / 'out_jobs'), []
    executor = make_executor('local', str(matrix_run['tmp'] / 'jobs'))
    paths = submit_matrix(matrix_run['matrix'], out, executor, methods=['l2prune_sgd'],
                          transform=_shrink(matrix_run['tiny_voc']), log=logs.append)
    assert sum(': job ' in line and ' done' in line for line in logs) == 2, logs
    for seed in (1, 2):
        run = ('runs', 'l2prune_sgd', 'ratio0.5', f'seed{seed}', 'record.json')
        with open(osp.join(matrix_run['out'], *run)) as f, open(osp.join(out, *run)) as g:
            here, job = json.load(f), json.load(g)
        for key in ('clean_map', 'mpc', 'rpc', 'flops_ratio', 'params_ratio', 'config_sha256'):
            assert job[key] == here[key], (seed, key)
        assert job['end_of_pruning']['mpc'] == here['end_of_pruning']['mpc']
    with open(paths['json']) as f:
        assert {r['method'] for r in json.load(f)['runs']} >= {'l2prune_sgd'}
    with pytest.raises(ValueError, match='gpus_per_run=0'):
        make_executor('slurm', str(matrix_run['tmp'] / 'jobs2'), gpus_per_run=0)


def test_a_run_on_two_gpus_is_one_ddp_training_in_its_job(matrix_run):
    """`--gpus-per-run 2`: the job's run trains as one DDP training on 2 processes (gloo on this CPU) that the job
    starts, prunes physically on both ranks alike (the hook refuses diverging ranks) and is evaluated and recorded
    by the job's own process; each rank's console output is in the work dir, the terminal lines reach the caller."""
    import shutil
    from mmdet_adasap.experiments.launch import make_executor, run_job
    out = str(matrix_run['tmp'] / 'out_ddp')
    shutil.copytree(matrix_run['out'], out, ignore=lambda d, names: ['runs'] if d == matrix_run['out'] else [])
    rec = run_job(matrix_run['matrix'], out, 'test', 'adasap/ratio0.5/seed1', _shrink(matrix_run['tiny_voc']),
                  processes=2)
    work_dir = osp.join(out, 'runs', 'adasap', 'ratio0.5', 'seed1')
    with open(osp.join(work_dir, 'record.json')) as f:
        assert {k: v for k, v in json.load(f).items() if k != 'schema'} == rec
    assert rec['train_processes'] == 2 and abs(rec['flops_ratio'] - 0.5) < 0.1
    single = osp.join(matrix_run['out'], 'runs', 'adasap', 'ratio0.5', 'seed1', 'record.json')
    with open(single) as f:
        assert 'train_processes' not in json.load(f)
    last = torch.load(osp.join(work_dir, 'iter_3.pth'), map_location='cpu', weights_only=False)
    assert len(last['adasap_random_state']['ranks']) == 2  # RandomStateHook: one state per training process
    assert osp.isfile(osp.join(work_dir, 'console.log')) and osp.isfile(osp.join(work_dir, 'console.rank1.log'))
    executor = make_executor('local', str(matrix_run['tmp'] / 'jobs3'), gpus_per_run=2)
    assert executor._executor.parameters['gpus_per_node'] == 2
