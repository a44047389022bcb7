"""The demo's one-seed matrix (configs/demo/ssd-r18mini_synthvoc_demo_matrix.py) on the tiny synthetic set, through
the same code as `make demo` (mmdet_adasap.experiments.demo.run_demo): its table's numbers are the runs' records,
and the dense row's checkpoint is every pruned run's start. The fixture trains the dense start (`--train-dense`);
the default start is the comparison's committed checkpoint, checked against the comparison's records."""
import contextlib
import glob
import io
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from helpers import load_tool, shrink_adasap_for_smoke_test, shrink_for_smoke_test
from mmdet_adasap.experiments import load_matrix
from mmdet_adasap.experiments.demo import old_layout, run_demo, summary_table
from mmdet_adasap.experiments.matrix import file_sha256

MATRIX = osp.join(REPO, 'configs/demo/ssd-r18mini_synthvoc_demo_matrix.py')


def _transform(tiny_voc):
    def transform(cfg, run):
        if run is None:  # the dense start: one epoch on 4 images
            return shrink_for_smoke_test(cfg, tiny_voc, cfg.work_dir, samples=4)
        load_from = cfg.load_from
        cfg = shrink_adasap_for_smoke_test(cfg, tiny_voc, cfg.work_dir, (1, 1, 1), samples=4)
        cfg.load_from = load_from
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1)
        if run.method == 'adasap':  # one run logs as a real one does: the environment block and the config dump
            cfg.log_level = 'INFO'
        return cfg
    return transform


def _quick_table(path):  # the demo's table at its input, batch and threads; fewer timings
    proc = subprocess.run([sys.executable, 'tools/build_latency_table.py', 'configs/demo/ssd-r18mini_synthvoc_dense.py',
                           '--input-size', '256', '--batch', '1', '--threads', '1', '--points', '2', '--repeats', '1',
                           '--out', path], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope='module')
def demo(tiny_voc, tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('demo')
    table = str(tmp / 'latency.json')
    opts = {'test_dataloader.dataset.data_root': tiny_voc + '/', 'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False, 'test_evaluator.iou_thrs': 0.1}
    matrix = load_matrix(MATRIX, {
        **load_tool('demo').TRAIN_DENSE, 'evaluation.cfg_options': opts, 'evaluation.latency.repeats': 2, 'evaluation.corruptions': ['gaussian_noise'],
        'splits.test': {'train_cfg.max_epochs': 1},  # the dense start's last epoch is then epoch_1.pth
        'methods.adasap_l.ratios': [0.8],  # random init: keep the latency target above the table's floor
        'methods.adasap_l.cfg_options': {'default_hooks.adasap.latency_table': table,
                                         'default_hooks.adasap.pruning.target.batch': 1}})
    terminal = io.StringIO()  # what `make demo` shows: the default log (echo) and anything else printed
    with contextlib.redirect_stdout(terminal):
        summary = run_demo(matrix, str(tmp / 'out'), _quick_table, lambda: None, transform=_transform(tiny_voc))
    return dict(summary=summary, matrix=matrix, out=str(tmp / 'out'), logs=terminal.getvalue().splitlines(),
                table=table)


def test_the_terminal_shows_progress_and_results_and_the_log_files_the_rest(demo):
    logs = demo['logs']
    ours = ('[compare', '[demo]', '===', '')
    assert all(line.startswith(ours) for line in logs), [x for x in logs if not x.startswith(ours)][:5]
    assert not any('System environment' in line or 'Config:' in line for line in logs)
    assert any('adasap/ratio0.5/seed' in line and 'PruningHook: step 1/' in line for line in logs), '\n'.join(logs)
    assert any('AdaSAPHook: phase 3/3' in line for line in logs)
    assert any(': done in ' in line and 'mpc ' in line and 'flops_ratio ' in line for line in logs)
    assert not any('Loads checkpoint' in line for line in logs)
    for run in demo['summary']['runs']:
        (folder,) = glob.glob(osp.join(demo['out'], 'runs', run, '*', '*'))
        with open(osp.join(folder, 'console.log')) as f:
            console = f.read()
        assert 'Loads checkpoint by local backend' in console, run  # mmengine's console lines, in the run's file
        if run == 'adasap':
            assert 'System environment' in console and 'Config:' in console  # and its dumps


def test_the_table_is_the_runs_records(demo):
    import json
    rows, out = demo['summary']['rows'], demo['out']
    assert [r['label'] for r in rows] == ['dense', 'L2 + SGD', 'AdaSAP', 'AdaSAP_L']
    for r in rows[1:]:
        with open(osp.join(out, 'runs', r['method'], f'ratio{r["ratio"]:g}', 'seed1', 'record.json')) as f:
            rec = json.load(f)
        with open(osp.join(out, 'runs', r['method'], f'ratio{r["ratio"]:g}', 'seed1', 'robustness',
                           'robustness.json')) as f:
            summ = json.load(f)['summary']
        assert (r['clean_map'], r['mpc'], r['latency_ratio']) == (rec['clean_map'], rec['mpc'], rec['latency_ratio'])
        assert r['clean_map'] == pytest.approx(100 * summ['P']) and r['mpc'] == pytest.approx(100 * summ['mPC'])
        line = next(x for x in demo['summary']['table'].split('\n') if x.startswith(f'| {r["label"]} |'))
        assert f'| {rec["clean_map"]:.1f} | {rec["mpc"]:.1f} | {rec["rpc"]:.1f} |' in line
        assert f'| {rec["flops_ratio"]:.3f} |' in line
    assert rows[1]['flops_ratio'] <= 0.5 + 1e-9 and rows[2]['flops_ratio'] <= 0.5 + 1e-9
    assert rows[3]['kind'] == 'latency' and '0.8 of the dense latency' in demo['summary']['table']


def test_every_run_starts_from_the_dense_rows_checkpoint(demo):
    dense = demo['summary']['rows'][0]
    assert dense['checkpoint'] == demo['summary']['dense_checkpoint'] == osp.join(demo['out'], 'dense', 'epoch_1.pth')
    sha = file_sha256(dense['checkpoint'])
    assert all(r['dense_sha256'] == sha for r in demo['summary']['rows'][1:])
    assert not any('best' in r.get('checkpoint', '') for r in demo['summary']['rows'])


def test_steps_are_timed_and_a_rerun_reuses_everything(demo, tiny_voc):
    walls = demo['summary']['walls']
    assert any(k.startswith('latency table for adasap_l') for k in walls) and all(v >= 0 for v in walls.values())
    logs = []
    again = run_demo(demo['matrix'], demo['out'], lambda p: pytest.fail('table rebuilt'), lambda: None,
                     transform=_transform(tiny_voc), log=logs.append)
    assert again['table'] == demo['summary']['table']
    assert sum('finished before, skipped' in line for line in logs) == 3
    assert any('reusing the latency table of adasap_l' in line for line in logs)


def test_a_work_dir_from_another_protocol_is_refused_naming_what_to_delete(demo, tiny_voc):
    matrix = load_matrix(MATRIX, {**load_tool('demo').TRAIN_DENSE, 'evaluation.corruptions': ['fog'],
                                  'splits.test': {'train_cfg.max_epochs': 1}})
    matrix.methods['adasap_l'].cfg_options['default_hooks.adasap.latency_table'] = demo['table']
    matrix.methods['adasap_l'].ratios = [0.8]
    with pytest.raises(ValueError, match=r'dense/record.json: this dense record was made with corruptions=.*'
                                         r'delete that run'):
        run_demo(matrix, demo['out'], _quick_table, lambda: None, transform=_transform(tiny_voc), log=lambda s: None)


def test_the_default_start_is_the_comparisons_committed_dense_start():
    import json
    demo = load_matrix(MATRIX)
    compare = load_matrix(osp.join(REPO, 'configs/compare/ssd-r18mini_synthvoc_compare.py'))
    assert (demo.dense_config, demo.dense_checkpoint) == (compare.dense_config, compare.dense_checkpoint)
    with open(osp.join(REPO, 'docs/results/demo/results.json')) as f:
        protocol = json.load(f)['protocol']
    assert file_sha256(osp.join(REPO, demo.dense_checkpoint)) == protocol['dense_sha256']
    trained = load_matrix(MATRIX, load_tool('demo').TRAIN_DENSE)
    assert trained.dense_checkpoint is None and trained.dense_config.endswith('ssd-r18mini_synthvoc_dense.py')


def test_demo_runs_never_validate_on_the_test_split():
    from mmdet_adasap.apis import load_config
    matrix = load_matrix(MATRIX, load_tool('demo').TRAIN_DENSE)
    for run in matrix.runs('test'):
        cfg = load_config(matrix.methods[run.method].config, matrix.train_options(run, 'dense.pth'))
        assert cfg.train_cfg.val_begin > cfg.train_cfg.max_epochs, run.name  # mmengine validates the last epoch
    dense = load_config(matrix.dense_config, matrix.splits['test'])
    assert dense.train_cfg.val_begin > dense.train_cfg.max_epochs


def test_old_demo_layout_is_named(tmp_path):
    (tmp_path / 'demo_dense').mkdir()
    (tmp_path / 'demo_summary.json').write_text('{}')
    assert old_layout(str(tmp_path)) == [str(tmp_path / 'demo_dense'), str(tmp_path / 'demo_summary.json')]
    assert summary_table([]).count('\n') == 1


def test_removed_demo_options_name_what_replaces_them():
    from conftest import run_tool
    for flag, hint in (('--work-dir', 'use --out DIR'), ('--baselines', 'tools/compare_methods.py'),
                       ('--retrain', 'make clean-demo')):
        proc = run_tool('tools/demo.py', flag)
        assert proc.returncode == 2 and hint in proc.stderr, proc.stderr
