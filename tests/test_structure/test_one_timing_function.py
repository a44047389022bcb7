"""One timing function: every latency in the package and its tools is measured by
:func:`mmdet_adasap.utils.timing.time_round_robin` (allocator fixed, warm-up, round-robin, median, CUDA
synchronisation); no other module times calls in a loop of its own."""
import ast

from package_graph import PACKAGE, parse, python_files, timing_loops

TIMING_MODULE = 'mmdet_adasap/utils/timing.py'


def test_the_finder_sees_a_hand_rolled_timing_loop():
    loop = ast.parse('import time\n'
                     'def bench(model, x, n):\n'
                     '    times = []\n'
                     '    for _ in range(n):\n'
                     '        t0 = time.perf_counter()\n'
                     '        model(x)\n'
                     '        times.append(time.perf_counter() - t0)\n'
                     '    return sorted(times)[n // 2]\n')
    assert timing_loops(loop) == [(4, 'a loop collecting elapsed times')]
    synced = ast.parse('import time, torch\n'
                       'def once(model, x, clock=time.process_time):\n'
                       '    t0 = clock()\n'
                       '    model(x)\n'
                       '    torch.cuda.synchronize()\n'
                       '    return clock() - t0\n')
    assert timing_loops(synced) == [(2, 'once: an elapsed time beside torch.cuda.synchronize')]
    # a run's wall time, recorded once, is no timing loop
    assert timing_loops(ast.parse('import time\nt = time.perf_counter()\nrun()\nwall = time.perf_counter() - t\n')) \
        == []


def test_the_timing_module_is_found_by_the_finder():
    assert timing_loops(parse(TIMING_MODULE)), 'the finder no longer sees time_round_robin itself'


def test_no_other_timing_loops():
    others = [f'{path}:{line}: {why}' for path in python_files(PACKAGE, 'tools') if path != TIMING_MODULE
              for line, why in timing_loops(parse(path))]
    assert not others, ('calls timed outside mmdet_adasap.utils.timing; time them with time_round_robin '
                        '(clock=, inference=, sync= cover CPU clocks, training steps and CUDA):\n' + '\n'.join(others))
