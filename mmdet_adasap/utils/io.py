"""Atomic file writes: a path either does not exist or holds the whole file (temporary file, then rename), so
an interrupted run never leaves a half-written result, manifest or image behind."""
import json
import os
import os.path as osp
import tempfile

#: suffix of the temporary files :func:`atomic_write_bytes` writes before the rename (left only by a crash)
TMP_SUFFIX = '.partial'


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` so that ``path`` either does not exist or is complete (temp file + rename)."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=osp.basename(path) + '.', suffix=TMP_SUFFIX, dir=osp.dirname(path) or '.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj, indent: int = 1) -> None:
    """``obj`` as JSON (keys in their order, a trailing newline), written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=indent, sort_keys=False) + '\n').encode())
