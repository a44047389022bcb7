"""Relative links in the README and docs/ point at files and headings that exist."""
import os.path as osp
import re

import pytest

from doc_snippets import REPO, doc_files

LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(path: str) -> set:
    with open(path, encoding='utf-8') as f:
        text = re.sub(r'```.*?```', '', f.read(), flags=re.S)
    return {slug(m) for m in re.findall(r'^#+\s+(.*)$', text, flags=re.M)}


def broken_links(page: str):
    with open(osp.join(REPO, page), encoding='utf-8') as f:
        lines = f.read().split('\n')
    broken = []
    for n, line in enumerate(lines, 1):
        for target in LINK.findall(line):
            if re.match(r'^[a-z]+:', target):
                continue
            path, _, anchor = target.partition('#')
            full = osp.normpath(osp.join(REPO, osp.dirname(page), path)) if path else osp.join(REPO, page)
            if not osp.exists(full):
                broken.append(f'{page}:{n}: {target}: no such file')
            elif anchor and full.endswith('.md') and anchor not in anchors(full):
                broken.append(f'{page}:{n}: {target}: no heading #{anchor} in {osp.relpath(full, REPO)}')
    return broken


@pytest.mark.parametrize('page', doc_files())
def test_relative_links_resolve(page):
    broken = broken_links(page)
    assert not broken, '\n'.join(broken)


def test_slug_matches_github():
    assert slug('The AdaSAP pipeline (`AdaSAPHook`; x.py)') == 'the-adasap-pipeline-adasaphook-xpy'
    assert slug('Upstream problems worked around in the export') == 'upstream-problems-worked-around-in-the-export'
