"""The schedule-length comparison (mmdet_adasap/experiments/schedules.py) on hand-made tables: its paired
intervals against scipy's own t interval of the differences, the seeds it pairs, the time ratios, the files,
and the inputs it refuses."""
import json
import os.path as osp

import numpy as np
import pytest
from scipy import stats

from helpers import tool_exit_message
from mmdet_adasap.experiments.schedules import compare_schedules, load_schedules, write_schedule_comparison

PROTOCOL = dict(dense_sha256='abc', split='test', split_options={}, corruptions=['fog'], severities=[3],
                eval_cfg_options={}, metric_key='pascal_voc/mAP')


def _run(method, seed, mpc, clean, train_s, resumed=False):
    return dict(method=method, ratio=0.25, seed=seed, label=f'{method} label', clean_map=clean, mpc=mpc,
                rpc=100 * mpc / clean, wall_s=dict(train=train_s, total=train_s + 60), resumed=resumed)


def _table(folder, runs, **protocol):
    folder.mkdir()
    table = dict(protocol=dict(PROTOCOL, **protocol), runs=runs, dense=dict(clean_map=60.0, mpc=40.0, rpc=66.7))
    (folder / 'results.json').write_text(json.dumps(table))
    return str(folder)


@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(0)
    short = {m: {s: (30 + rng.normal(), 45 + rng.normal()) for s in (11, 12, 13)} for m in ('l2', 'sam')}
    long = {m: {s: (35 + rng.normal(), 52 + rng.normal()) for s in (11, 12, 13)} for m in ('l2', 'sam')}
    del long['sam'][13]  # not finished at the long schedule
    one = [_run(m, s, *v, train_s=100.0 * (1 + (m == 'sam'))) for m in short for s, v in short[m].items()]
    four = [_run(m, s, *v, train_s=400.0 * (1 + (m == 'sam')) + s) for m in long for s, v in long[m].items()]
    four.append(_run('other', 11, 1.0, 2.0, 1.0))
    four[0]['resumed'], four[0]['wall_s']['train'] = True, 5.0  # its last attempt only: not a training time
    return dict(short=short, long=long, folders={6: _table(tmp_path / 'x1', one), 24: _table(tmp_path / 'x4', four)})


def _t(diffs):
    diffs = np.asarray(diffs)
    low, high = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
    return diffs.mean(), low, high


def _get(result, kind, epochs, method, metric):
    return next(d for d in result['paired'] if (d['kind'], d['epochs'], d['method'], d['metric']) ==
                (kind, epochs, method, metric))


def test_paired_differences_and_time_ratios_match_an_independent_computation(tables):
    short, long = tables['short'], tables['long']
    result = compare_schedules(load_schedules(tables['folders']), ['sam'], reference='l2', ratio=0.25)
    assert result['methods'] == ['l2', 'sam'] and [s['epochs'] for s in result['schedules']] == [6, 24]
    d = _get(result, 'vs_reference', 6, 'sam', 'mpc')
    assert (d['mean'], d['low'], d['high']) == pytest.approx(_t([short['sam'][s][0] - short['l2'][s][0]
                                                                 for s in (11, 12, 13)]))
    d = _get(result, 'vs_reference', 24, 'sam', 'clean_map')  # seed 13 only on one side: paired over 11, 12
    assert list(d['seeds']) == [11, 12] and d['unmatched_seeds'] == [13]
    assert (d['mean'], d['low'], d['high']) == pytest.approx(_t([long['sam'][s][1] - long['l2'][s][1]
                                                                 for s in (11, 12)]))
    d = _get(result, 'vs_shortest', 24, 'l2', 'mpc')
    assert (d['mean'], d['low'], d['high']) == pytest.approx(_t([long['l2'][s][0] - short['l2'][s][0]
                                                                 for s in (11, 12, 13)]))
    rows = {(r['epochs'], r['method']): r for r in result['rows']}
    assert rows[24, 'sam']['seeds'] == [11, 12]
    assert rows[24, 'sam']['mpc']['mean'] == pytest.approx(np.mean([long['sam'][s][0] for s in (11, 12)]))
    assert rows[6, 'sam']['train_ratio'] == pytest.approx(2.0)
    # l2 at 24 epochs: seed 11 resumed (excluded), seeds 12 and 13 trained 412 and 413 s; sam: 812 and 811 s
    assert rows[24, 'l2']['train_s'] == pytest.approx(412.5)
    assert rows[24, 'sam']['train_ratio'] == pytest.approx(811.5 / 412.5)


def test_the_files_and_the_table(tables, tmp_path):
    paths = write_schedule_comparison(tables['folders'], ['sam'], 'l2', 0.25, str(tmp_path / 'out'))
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    text = open(paths['md']).read()
    assert '| 24 | sam label | 2 |' in text and '| sam | ' in text and '24 epochs: mPC | clean' in text
    assert json.load(open(paths['json']))['reference'] == 'l2'


def test_a_method_measured_at_one_schedule_only_has_rows_there_and_no_change_from_the_shortest(tables, tmp_path):
    result = compare_schedules(load_schedules(tables['folders']), ['sam', 'other'], reference='l2', ratio=0.25)
    assert [r['epochs'] for r in result['rows'] if r['method'] == 'other'] == [24]
    d = _get(result, 'vs_reference', 24, 'other', 'mpc')
    assert list(d['seeds']) == [11] and d['low'] is None
    assert d['mean'] == pytest.approx(1.0 - tables['long']['l2'][11][0])
    assert not [d for d in result['paired'] if d['method'] == 'other' and d['kind'] == 'vs_shortest']
    paths = write_schedule_comparison(tables['folders'], ['sam', 'other'], 'l2', 0.25, str(tmp_path / 'out'))
    text = open(paths['md']).read()
    assert '| 24 | other label | 1 |' in text and '| other |' not in text and '| sam | ' in text
    with open(osp.join(tables['folders'][6], 'results.json')) as f:
        no_l2 = _table(tmp_path / 'no_l2', [r for r in json.load(f)['runs'] if r['method'] != 'l2'])
    with pytest.raises(ValueError, match=r"no_l2: no finished run of \['l2'\] at ratio 0.25"):
        compare_schedules(load_schedules({6: no_l2, 24: tables['folders'][24]}),
                          ['sam'], 'l2', 0.25)


def test_matrices_not_measured_alike_and_bad_input_are_refused(tables, tmp_path):
    other = _table(tmp_path / 'sev5', [], severities=[5])
    with pytest.raises(ValueError, match=r'not measured alike: protocol severities is \[3\] in one and \[5\]'):
        load_schedules({6: tables['folders'][6], 24: other})
    with pytest.raises(FileNotFoundError, match=r'nothing/results.json: no table .*--table-only'):
        load_schedules({6: tables['folders'][6], 24: str(tmp_path / 'nothing')})
    with pytest.raises(ValueError, match=r"no finished run of \['adasap'\] at ratio 0.25 \(methods there: "
                                         r"\['l2', 'sam'\]\)"):
        compare_schedules(load_schedules(tables['folders']), ['adasap'], 'l2', 0.25)
    folder = tables['folders'][6]
    assert "schedule 'x4=" in tool_exit_message('compare_schedules', f'x4={folder}', f'6={folder}', '--ratio',
                                                 '0.25', '--methods', 'sam', '--reference', 'l2', '--out',
                                                 str(tmp_path / 'o'))
    assert osp.isdir(folder)
