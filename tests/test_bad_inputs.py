"""Bad inputs fail early and name the culprit: hostile / truncated checkpoints, config syntax errors, bad
AdaSAPHook sharpness settings."""
import struct
import subprocess
import sys
import zipfile

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint

import mmdet_adasap  # noqa: F401  (applies the upstream fixes)
from mmdet_adasap.apis import load_config, load_detector_checkpoint
from mmdet_adasap.engine.hooks import AdaSAPHook


# ----------------------------------------------------------------------------- hand-written pickles
def _str(text):
    data = text.encode()
    return b'X' + struct.pack('<I', len(data)) + data  # BINUNICODE


def _global(module, name):
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'  # GLOBAL


def _getattr_chain(root, attrs):
    """Pickle code for ``getattr(...getattr(root, attrs[0])..., attrs[-1])``."""
    code = _global(*root)
    for attr in attrs:
        code = _global('builtins', 'getattr') + code + _str(attr) + b'\x86R'  # TUPLE2, REDUCE
    return code


def _call(code, arg):
    return code + _str(arg) + b'\x85R'  # TUPLE1, REDUCE


def _checkpoint(payload: bytes, path) -> str:
    """A torch zip checkpoint whose pickle is ``payload``."""
    torch.save({'a': 1}, str(path))
    with zipfile.ZipFile(str(path)) as z:
        items = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(str(path), 'w') as z:
        for name, data in items.items():
            z.writestr(name, b'\x80\x02' + payload + b'.' if name.endswith('data.pkl') else data)
    return str(path)


BUILTINS = ('builtins', 'getattr')  # getattr.__self__ is the builtins module
HOSTILE = {
    'eval': _call(_getattr_chain(BUILTINS, ['__self__', 'eval']), '1+1'),
    'exec': _call(_getattr_chain(BUILTINS, ['__self__', 'exec']), 'x = 1'),
    'os.system': _call(_global('builtins', 'getattr') + _call(_getattr_chain(BUILTINS, ['__self__', '__import__']),
                                                              'os') + _str('system') + b'\x86R', 'true'),
    'subprocess': _call(_global('builtins', 'getattr') + _call(
        _getattr_chain(BUILTINS, ['__self__', '__import__']), 'subprocess') + _str('getoutput') + b'\x86R', 'true'),
    'importlib.import_module': _call(_global('builtins', 'getattr') + _call(
        _getattr_chain(BUILTINS, ['__self__', '__import__']), 'importlib') + _str('import_module') + b'\x86R', 'os'),
    # a module namespace (a dict the unpickler could write into) and a dunder of the allowed class
    'HistoryBuffer.mean.__globals__': _getattr_chain(('mmengine.logging.history_buffer', 'HistoryBuffer'),
                                                     ['mean', '__globals__']),
    'HistoryBuffer.__init__': _getattr_chain(('mmengine.logging.history_buffer', 'HistoryBuffer'), ['__init__']),
}


@pytest.mark.parametrize('target', sorted(HOSTILE))
def test_getattr_chains_to_dangerous_callables_are_refused_at_the_first_getattr(target, tmp_path):
    path = _checkpoint(HOSTILE[target], tmp_path / 'hostile.pth')
    with pytest.raises(Exception, match=r'refused getattr\(') as info:
        torch.load(path)
    assert 'built-in function eval' not in str(info.value)


def test_the_hostile_pickles_are_real_with_a_plain_getattr_allowed(tmp_path):
    """Without the narrowing (plain builtins.getattr allow-listed) the chains do reach the dangerous callables;
    only torch's refusal to call them stands in the way (and the module namespace is handed out)."""
    paths = {t: _checkpoint(code, tmp_path / f'{i}.pth') for i, (t, code) in enumerate(sorted(HOSTILE.items()))}
    code = ('import builtins, sys, torch\n'
            'torch.serialization.add_safe_globals([builtins.getattr])\n'
            'from mmengine.logging.history_buffer import HistoryBuffer\n'
            'torch.serialization.add_safe_globals([HistoryBuffer])\n'
            'for p in sys.argv[1:]:\n'
            '    try:\n        print(type(torch.load(p)).__name__)\n'
            '    except Exception as e:\n        print(str(e).replace(chr(10), " "))\n')
    out = subprocess.run([sys.executable, '-c', code, *paths.values()], capture_output=True, text=True, check=True)
    lines = dict(zip(paths, out.stdout.strip().splitlines()))
    assert 'built-in function eval' in lines['eval'] and 'built-in function exec' in lines['exec']
    assert 'built-in function __import__' in lines['os.system']
    assert lines['HistoryBuffer.mean.__globals__'] == 'dict'


def test_history_buffer_statistics_methods_still_load(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    path = _checkpoint(_getattr_chain(('mmengine.logging.history_buffer', 'HistoryBuffer'), ['mean']),
                       tmp_path / 'ok.pth')
    assert torch.load(path) is HistoryBuffer.mean


# ----------------------------------------------------------------------------- truncated checkpoint
def test_truncated_checkpoint_error_names_the_file(tmp_path):
    model = nn.Linear(2, 2)
    path = tmp_path / 'cut.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    for load in (lambda: load_checkpoint(model, str(path)), lambda: load_detector_checkpoint(model, str(path))):
        with pytest.raises(RuntimeError, match=r"cannot read checkpoint '.*cut\.pth'.*(corrupt|truncated)"):
            load()


# ----------------------------------------------------------------------------- config syntax errors
def test_config_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / 'base.py').write_text('a = 1\nb = dict(x=1,\nc = 3\n')
    (tmp_path / 'child.py').write_text("_base_ = './base.py'\nd = 4\n")
    (tmp_path / 'bad.py').write_text('a = 1\nb = [1, 2\n')
    with pytest.raises(SyntaxError, match=r"'.*bad\.py' line 2: '\[' was never closed"):
        load_config(str(tmp_path / 'bad.py'))
    with pytest.raises(SyntaxError, match=r"'.*base\.py' \(a _base_ of '.*child\.py'\) line 2"):
        load_config(str(tmp_path / 'child.py'))


# ----------------------------------------------------------------------------- AdaSAPHook sharpness
@pytest.mark.parametrize('phase,sharpness,match', [
    ('finetune', dict(rho=-0.5), r'finetune\.sharpness: rho must be a number >= 0, got -0\.5'),
    ('pruning', dict(rho=0.1, adaptive='yes'), r"pruning\.sharpness: adaptive must be True .* got 'yes'"),
    ('warmup', dict(rho='0.1'), r"warmup\.sharpness: rho must be a number >= 0, got '0\.1'"),
])
def test_adasap_hook_refuses_a_bad_sharpness_of_any_phase_at_construction(phase, sharpness, match):
    cfg = dict(warmup=dict(end=1, sharpness=dict(rho=0.1)), pruning=dict(end=2), finetune=dict(sharpness=None))
    cfg[phase]['sharpness'] = sharpness
    with pytest.raises(ValueError, match=match):
        AdaSAPHook(**cfg)
