"""Run by tests/test_tools/test_tool_errors.py on 2 processes (torchrun): a tool's ``main`` as in a distributed run
(mmengine's launcher, a model wrapper that holds the process group, a final broadcast), ended through
:func:`run_tool` (``ADASAP_PROBE_PLAIN=1``: returning to Python's own exit instead). It reports whether the exit
handlers ran and whether the interpreter was torn down (module globals cleared) with gloo threads alive."""
import atexit
import os

import torch
from mmengine.dist import broadcast_object_list, init_dist
from mmengine.model import MMDistributedDataParallel

import mmdet_adasap  # noqa: F401  (the upstream fix that lets mmengine's launcher and DDP run on CPU)
from mmdet_adasap.apis import run_tool

RANK = os.environ['RANK']


def gloo_threads():
    return sum(open(f'/proc/self/task/{t}/comm').read().startswith('pt_gloo') for t in os.listdir('/proc/self/task'))


class TornDown:
    """Kept in a module global: its ``__del__`` runs only when the interpreter tears the modules down."""

    message = f'rank {RANK}: interpreter torn down\n'.encode()

    def __del__(self, write=os.write):  # builtins and sys.stdout may be gone by then: the file descriptor
        write(1, self.message)


SENTINEL = TornDown()
atexit.register(lambda: print(f'rank {RANK}: exit handlers ran, {gloo_threads()} gloo threads alive', flush=True))


def main():
    init_dist('pytorch', backend='gloo')
    model = MMDistributedDataParallel(torch.nn.Linear(2, 2))  # noqa: F841  (holds the group, as a runner's does)
    box = [{'mAP': 0.5}] if RANK == '0' else [None]
    broadcast_object_list(box)
    assert box[0] == {'mAP': 0.5}
    print(f'rank {RANK}: done', flush=True)


if os.environ.get('ADASAP_PROBE_PLAIN') == '1':
    main()
else:
    run_tool(main)
