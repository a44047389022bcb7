import copy
import json
import os.path as osp
import re

import pytest

from mmdet_adasap.robustness.report import markdown_report, write_comparison, write_reports
from mmdet_adasap.robustness.result import RESULT_SCHEMA, load_result, summarize

CORR = {'gaussian_noise': (0.5, 0.2), 'zoom_blur': (0.6, 0.3), 'snow': (0.55, 0.25), 'saturate': (0.7, 0.6)}


def _result(label, clean=0.8, shift=0.0, classes=('a', 'b')):
    per = lambda v: {c: v + (0.02 if i else -0.02) for i, c in enumerate(classes)}  # noqa: E731
    clean_rec = {'mAP': clean, 'per_class': per(clean), 'source': 'clean', 'seconds': 2.0}
    corrupted = {c: {str(s): {'mAP': v + shift, 'per_class': per(v + shift), 'source': 'cache:png',
                              'seconds': 2.0 + s / 10} for s, v in zip((1, 5), vals)} for c, vals in CORR.items()}
    return dict(schema=RESULT_SCHEMA, model=dict(label=label), clean=clean_rec, corrupted=corrupted,
                dataset=dict(ann_file='VOC2007/ImageSets/Main/test.txt', classes=list(classes), num_images=6,
                             image_ids_sha256='ids'),
                protocol=dict(metric='AP50', iou_thr=0.5, eval_mode='11points', corruption='before resize',
                              cache_format=None),
                summary=summarize(clean_rec, corrupted))


def _write(tmp_path, name, result):
    path = str(tmp_path / name / 'robustness.json')
    write_reports(result, osp.dirname(path), plots=False)
    return path


def test_single_report_numbers(tmp_path):
    res = _result('dense')
    paths = write_reports(res, str(tmp_path / 'r'))
    assert load_result(paths['json'])['summary'] == json.loads(json.dumps(res['summary']))
    md = markdown_report(res)
    # mPC over the 3 benchmark corruptions; saturate is holdout and reported apart
    bench = [v for c, vals in CORR.items() if c != 'saturate' for v in vals]
    mpc = sum(bench) / len(bench)
    assert re.search(rf'^\| 80.00 \| {100 * mpc:.2f} \| {100 * mpc / 0.8:.2f} \| 65.00 \| 81.25 \|$', md, re.M), md
    assert '| saturate (holdout) | digital | 70.00 | 60.00 | 65.00 |' in md
    assert '| cache:png | 8 | 2.30 | 1.15x |' in md  # timing: mean of 2.1 and 2.5 s vs 2.0 s clean
    assert osp.getsize(paths['severity_plot']) > 1000 and osp.getsize(paths['corruption_plot']) > 1000


def test_comparison_table_and_plots(tmp_path):
    a = _write(tmp_path, 'dense', _result('dense'))
    b = _write(tmp_path, 'adasap', _result('adasap', clean=0.78, shift=0.1))
    out = write_comparison([a, b], str(tmp_path / 'cmp'))
    with open(out['markdown']) as f:
        md = f.read()
    assert re.search(r'^\| dense \| 80.00 \| 40.00 \| 50.00 \| 35.00 \| 45.00 \| 40.00 \|$', md, re.M), md
    assert re.search(r'^\| adasap \| 78.00 \| 50.00 \| 64.10 \| 45.00 \| 55.00 \| 50.00 \|$', md, re.M), md
    assert '| gaussian_noise | 35.00 | 45.00 |' in md
    assert osp.getsize(out['corruption_plot']) > 1000 and osp.getsize(out['severity_plot']) > 1000
    out = write_comparison([a, b], str(tmp_path / 'cmp2'), labels=['D', 'A'])
    with open(out['markdown']) as f:
        assert '| gaussian_noise | 35.00 | 45.00 |' in f.read()


def test_comparison_refuses_other_data_and_subsets(tmp_path):
    a = _write(tmp_path, 'dense', _result('dense'))
    other = _write(tmp_path, 'other', _result('x', classes=('a', 'c')))
    with pytest.raises(ValueError, match=r"other/robustness.json was evaluated with dataset.classes=\['a', 'c'\]"):
        write_comparison([a, other], str(tmp_path / 'cmp'))
    sub = _result('sub')
    del sub['corrupted']['snow']
    sub['summary'] = summarize(sub['clean'], sub['corrupted'])
    with pytest.raises(ValueError, match='benchmark_corruptions'):
        write_comparison([a, _write(tmp_path, 'sub', sub)], str(tmp_path / 'cmp'))
    with pytest.raises(ValueError, match='2 labels for 1'):
        write_comparison([a], str(tmp_path / 'cmp'), labels=['x', 'y'])


def test_load_result_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_result(str(tmp_path / 'none.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"mAP": 0.5}')
    with pytest.raises(ValueError, match='not a robustness result'):
        load_result(str(bad))
    bad.write_text('{oops')
    with pytest.raises(ValueError, match='not JSON'):
        load_result(str(bad))


def test_compare_tool(tmp_path):
    from conftest import run_tool
    a = _write(tmp_path, 'dense', _result('dense'))
    b = _write(tmp_path, 'adasap', _result('adasap', clean=0.78, shift=0.1))
    proc = run_tool('tools/compare_robustness.py', a, b, '--out', str(tmp_path / 'cmp'), '--labels', 'D', 'A')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '| A | 78.00 | 50.00 | 64.10 |' in proc.stdout
    assert osp.isfile(tmp_path / 'cmp' / 'comparison_bars.png')
