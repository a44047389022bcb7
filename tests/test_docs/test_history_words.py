"""README, docs, docstrings and comments speak of the product, not of how it was made: no development-stop or
session numbers, branch names, "it used to", or paths outside the repository. History lives in CHANGELOG.md."""
import os.path as osp
import re
from glob import glob

from doc_snippets import REPO

HISTORY = [
    (r'\bstops? \d+\b|\bstop-\d+\b', 'a development stop number'),
    (r'\bsessions? \d+\b|\bover (two|three|several) sessions\b|\bthis session\b', 'a session'),
    (r'\bit used to\b|\bused to (be|start|take|put|run)\b', '"it used to"'),
    (r'\(it was [^)]*\)|\bit was \d', 'a former value ("it was ...")'),
    (r'\bmatrix-run\b|\bfrozen branch\b|\bon (the )?branch\b|\bworktree\b', 'a branch name'),
    (r'/work/|/home/\w+|\.\./shared/|\bshared/notes\b', 'a path outside the repository'),
    (r'\b(earlier|previous|old|former) (versions?|calibration|fit|code|rule|table)\b',
     'an earlier version'),
    (r'\bthis VM\b|\bthis virtual machine\b', 'the machine the work ran on'),
    (r'\bthrowaway script\b|\bnot shipped\b', 'work that is not in the repository'),
]
PATTERN = re.compile('|'.join(f'(?:{p})' for p, _ in HISTORY), re.I)
THIS = {'tests/test_docs/test_history_words.py'}


def checked_files():
    pats = ['README.md', 'docs/*.md', 'Makefile', 'mmdet_adasap/**/*.py', 'tools/*.py', 'tools/*.sh',
            'configs/**/*.py', 'tests/**/*.py', 'setup.py', 'requirements/*.txt', 'pytest.ini']
    found = {f for p in pats for f in glob(p, root_dir=REPO, recursive=True)}
    return sorted(found - THIS)


def history_hits(path, text):
    hits = []
    for n, line in enumerate(text.split('\n'), 1):
        m = PATTERN.search(line)
        if m:
            why = next(w for p, w in HISTORY if re.search(p, m.group(0), re.I))
            hits.append(f'{path}:{n}: {why}: {m.group(0)!r} in {line.strip()[:120]!r}')
    return hits


def test_no_development_history_outside_the_changelog():
    hits = []
    for path in checked_files():
        with open(osp.join(REPO, path), encoding='utf-8') as f:
            hits += history_hits(path, f.read())
    assert not hits, 'move these to CHANGELOG.md or say what the product does:\n' + '\n'.join(hits)


def test_the_grep_catches_each_kind_and_names_file_and_line():
    text = ('fine\nwhen stop 8 measured it\nover two sessions\nthe grid used to start at a fifth\n'
            'lr 0.02 (it was 0.01)\nthe frozen branch `matrix-run`\nsee ../shared/notes/STACK.md\n'
            'on this VM\na throwaway script, not shipped\nsession 3\n/work/main\nthe earlier calibration\n')
    hits = history_hits('README.md', text)
    assert [h.split(':')[1] for h in hits] == [str(n) for n in range(2, 13)]
    assert hits[0].startswith("README.md:2: a development stop number: 'stop 8'")
    assert not history_hits('x.py', 'an ONNX Runtime session\nthe pytest session fixture\nstop the run\n')
