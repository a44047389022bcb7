"""One error style for every shipped tool: the project's errors (and mmengine's config errors) as one ``error:``
line and exit status 1; ``--debug`` or ``ADASAP_DEBUG=1`` shows the traceback."""
import os
import subprocess
import sys

import pytest

from conftest import REPO
from mmdet_adasap.apis.cli import ToolParser, error_line, run_tool

ADASAP = 'configs/adasap/ssd-r18mini_synthvoc_adasap_flops50.py'


def _train(*args):
    proc = subprocess.run([sys.executable, 'tools/train.py', ADASAP, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    return proc.returncode, proc.stdout, proc.stderr


def test_train_prints_a_hook_error_as_one_line_and_the_traceback_with_debug(tmp_path):
    bad = ['--work-dir', str(tmp_path), '--cfg-options', 'default_hooks.adasap.warmup.end=3']  # = pruning.end
    rc, out, err = _train(*bad)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and 'Traceback' not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'phase ends out of order' in lines[0], err[-3000:]
    rc, out, err = _train(*bad, '--debug')  # ADASAP_DEBUG=1: test_run_tool_exits_with_the_status_main_returns...
    assert rc == 1 and 'Traceback' in err and 'phase ends out of order' in err, err[-3000:]


def test_train_prints_a_missing_config_as_one_line(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', str(tmp_path / 'nope.py')], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().startswith('error: ') and 'nope.py' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize('err, line', [
    (ValueError('bad ratio 2'), 'error: bad ratio 2'),
    (FileNotFoundError("checkpoint 'x.pth' does not exist"), "error: checkpoint 'x.pth' does not exist"),
    (KeyError('no key named foo'), 'error: no key named foo'),  # not the repr of the key
    (AssertionError(), 'error: AssertionError: (no message) (--debug shows the traceback)'),
    (ZeroDivisionError('division by zero'), 'error: ZeroDivisionError: division by zero (--debug shows the traceback)'),
])
def test_error_line_prints_input_errors_as_they_are_and_names_other_types(err, line):
    assert error_line(err) == line


def test_run_tool_exits_with_the_status_main_returns_or_1_on_an_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['tool'])
    monkeypatch.delenv('ADASAP_DEBUG', raising=False)
    for main, status in ((lambda: None, 0), (lambda: 3, 3)):
        with pytest.raises(SystemExit) as e:
            run_tool(main)
        assert e.value.code == status

    def fails():
        raise ValueError('ratio must lie in (0, 1], got 2')
    with pytest.raises(SystemExit) as e:
        run_tool(fails)
    assert e.value.code == 1 and capsys.readouterr().err == 'error: ratio must lie in (0, 1], got 2\n'
    monkeypatch.setenv('ADASAP_DEBUG', '1')
    with pytest.raises(ValueError, match='got 2'):
        run_tool(fails)
    monkeypatch.setenv('ADASAP_DEBUG', '0')
    monkeypatch.setattr(sys, 'argv', ['tool', '--debug'])
    with pytest.raises(ValueError, match='got 2'):
        run_tool(fails)


def test_every_shipped_tool_takes_debug_and_runs_through_run_tool():
    tools = sorted(f for f in os.listdir(os.path.join(REPO, 'tools')) if f.endswith('.py'))
    missing = []
    for name in tools:
        with open(os.path.join(REPO, 'tools', name)) as f:
            text = f.read()
        if 'def main(' in text and not ('ToolParser(' in text and 'run_tool(main)' in text):
            missing.append(name)
    assert not missing, f'tools without ToolParser / run_tool(main): {missing}'
    assert ToolParser().parse_args(['--debug']).debug is True


@pytest.mark.parametrize('through_run_tool', [True, False])
def test_a_distributed_tool_never_tears_the_interpreter_down_under_live_gloo_threads(through_run_tool):
    """The cause of the rare SIGABRT after a finished multi-process run (see mmdet_adasap/apis/cli.py): the gloo
    worker threads are alive at exit (a model wrapper holds the group), and Python's own exit tears the interpreter
    down under them. Through run_tool every rank runs its exit handlers and ends without the teardown."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               ADASAP_PROBE_PLAIN='0' if through_run_tool else '1')
    port = str(29400 + 50 * through_run_tool + os.getpid() % 50)
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                           port, os.path.join(REPO, 'tests', 'dist_exit_probe.py')],
                          env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    for rank in (0, 1):
        assert f'rank {rank}: exit handlers ran, 2 gloo threads alive' in log, log[-3000:]
    if through_run_tool:
        assert proc.returncode == 0 and 'interpreter torn down' not in log, log[-3000:]
    else:  # torn down on both ranks, or the teardown itself hit the abort it risks (seen in a suite run)
        aborted = proc.returncode != 0 and 'terminate called without an active exception' in log
        assert aborted or all(f'rank {r}: interpreter torn down' in log for r in (0, 1)), log[-3000:]
