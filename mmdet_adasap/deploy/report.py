"""The deployment report: every file a detector could ship as - dense and each pruned model, each in fp32 and
INT8 - measured the same way, in one table (``tools/deploy_report.py``).

Why one report: pruning, quantization and robustness are judged by separate tools (``prune_report.py``,
``quantize_onnx.py``, ``test_robustness.py``), each against its own baseline. Choosing what to ship needs them
side by side, on the artifact that ships: the ONNX file run by ONNX Runtime. Per artifact (model x precision):

* the file: the fp32 export with decoding and NMS in the graph (``onnx_export``, dynamic batch) and its static
  INT8 QDQ quantization (``quantize``); its size on disk; the network ops an INT8 file keeps in fp32 (named);
* latency in ONNX Runtime (CPU), median ms per call (:func:`~mmdet_adasap.utils.timing.time_round_robin`): the
  *network* - the artifact's graph cut where its last convolutions end (:func:`network_graph`; for an INT8 file
  after their trailing Q/DQ, so the int8 kernels run as in the whole file) - at each batch and thread count, and
  the whole *detector* (preprocessing, network, decoding, NMS) at batch 1 beside it. Inputs are real test images
  (NMS cost depends on how many boxes pass the score threshold). One thread: the calling thread's CPU time (ORT
  runs every kernel on it, so other processes' load does not count); more threads: wall time. Each artifact is
  timed when it is made, so on a loaded machine the all-core numbers carry that load;
* clean mAP (P), mPC and rPC from the robustness loop through ONNX Runtime
  (:func:`mmdet_adasap.robustness.api.evaluate_robustness` with ``backend='onnxruntime'``), on the config's test
  split; P is that loop's clean mAP;
* FLOPs (conv + linear MACs of the PyTorch model, :func:`mmdet_adasap.apis.params_and_flops`) and, in the report,
  the ratio to dense and each latency's speed-up over the dense fp32 file's.

Resumable: each finished artifact's record is ``OUT/artifacts/<artifact>.json``; a rerun with the same settings
reuses it (and the robustness loop its per-set records), one with other settings is refused, naming the setting.
"""
import json
import os
import os.path as osp
import platform
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from ..apis import build_detector, load_config, params_and_flops
from ..robustness.api import evaluate_robustness
from ..robustness.corruptions import check_severities, resolve_corruptions
from ..utils.io import atomic_write_json
from ..utils.timing import time_round_robin
from .api import default_input_hw, load_real_images
from .onnx_detector import make_session
from .onnx_export import export_onnx, read_metadata
from .quantize import fp32_ops_line, network_nodes, quantize_detector

PRECISIONS = ('fp32', 'int8')
DEMO_CORRUPTIONS = ('gaussian_noise', 'motion_blur', 'snow', 'contrast')  # one per category, as the demo matrix
#: the fields every artifact's record has
FIELDS = ('artifact', 'model', 'precision', 'file', 'size_bytes', 'flops', 'params', 'latency_ms', 'threads',
          'P', 'mPC', 'rPC', 'metric_key', 'settings', 'fp32_network_ops')


class ReportError(ValueError):
    """An input or option the report cannot use (the message names it and the fix)."""


# ----------------------------------------------------------------------------------------------- inputs
def parse_pruned(specs: Sequence[str]) -> Dict[str, str]:
    """``{name: checkpoint}`` from ``NAME=CHECKPOINT`` strings (``--pruned``)."""
    models = {}
    for spec in specs or ():
        name, sep, ckpt = str(spec).partition('=')
        if not sep or not name or not ckpt:
            raise ReportError(f'--pruned takes NAME=CHECKPOINT (e.g. flops50=work_dirs/pruned.pth), got {spec!r}')
        if name == 'dense' or name in models:
            raise ReportError(f'--pruned name {name!r} is used twice (dense is the dense model): give each pruned '
                              'model its own name')
        if not name.replace('-', '').replace('_', '').isalnum():
            raise ReportError(f'--pruned name {name!r} names files: use letters, digits, - and _ only')
        if not osp.isfile(ckpt):
            raise FileNotFoundError(f'--pruned {name}: checkpoint {ckpt!r} does not exist')
        models[name] = ckpt
    return models


def check_settings(batches: Sequence[int], thread_counts: Sequence[Optional[int]], repeats: int,
                   calib_images: int) -> None:
    for what, values in (('--batches', batches), ('--threads', [t for t in thread_counts if t is not None])):
        bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad or not list(values if what == '--batches' else thread_counts):
            raise ReportError(f'{what} takes positive integers{" or all" if what == "--threads" else ""}, '
                              f'got {list(values)}')
    if 1 not in batches or 1 not in thread_counts:
        raise ReportError(f'--batches {list(batches)} and --threads {list(thread_counts)} must include 1: the '
                          'speed-up, the plot and the detector timing are read at batch 1 on one thread')
    if not isinstance(repeats, int) or repeats < 1:
        raise ReportError(f'--repeats must be a positive number of timed calls, got {repeats!r}')
    if not isinstance(calib_images, int) or isinstance(calib_images, bool) or calib_images < 1:
        raise ReportError(f'--calib-images must be a positive number of images, got {calib_images!r}')


def thread_key(threads: Optional[int]) -> str:
    return 'all' if threads is None else str(threads)


# ----------------------------------------------------------------------------------------------- graphs
def network_outputs(model) -> List[str]:
    """The tensors where the network of an exported graph ends: the outputs of its last convolutions (of an
    INT8 file, after their trailing QuantizeLinear / DequantizeLinear pair) that the nodes after the network
    (:func:`network_nodes`: decoding, NMS) read as data. Constants and shape arithmetic the network shares with
    them, and feature maps read only for their shapes (the priors' grid), are not ends."""
    nodes = list(model.graph.node)  # held: a node's Python wrapper (and so its id) lives as long as a reference
    inside = {id(n) for n in network_nodes(model)}
    producer = {out: node for node in nodes for out in node.output}

    def conv_end(node) -> bool:  # a Conv, or a Q / DQ chain right after one
        while node is not None and node.op_type in ('QuantizeLinear', 'DequantizeLinear'):
            node = producer.get(node.input[0])
        return node is not None and node.op_type == 'Conv'
    ends = {id(n) for n in nodes if conv_end(n)}
    outputs = []
    for node in nodes:
        if id(node) not in inside and id(node) not in ends and node.op_type not in ('Shape', 'Size'):
            for name in node.input:
                if name in producer and id(producer[name]) in ends and name not in outputs:
                    outputs.append(name)
    return outputs


def network_graph(onnx_file: str, out_file: str) -> str:
    """``onnx_file`` cut where its network ends (:func:`network_outputs`): the nodes those tensors need, the
    initializers they read, the file's input; written to ``out_file``."""
    import onnx  # optional: only reading / writing ONNX needs it
    from onnx import helper
    model = onnx.load(onnx_file)
    outputs = network_outputs(model)
    if not outputs:
        raise ReportError(f'{onnx_file!r} has no convolutions to time: is it an export of tools/export_onnx.py?')
    nodes = list(model.graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    needed, stack = set(), [producer[o] for o in outputs]
    while stack:
        i = stack.pop()
        if i not in needed:
            needed.add(i)
            stack += [producer[x] for x in nodes[i].input if x in producer]
    kept = [nodes[i] for i in sorted(needed)]  # the file's order: topological
    read = {x for node in kept for x in node.input}
    graph = helper.make_graph(kept, 'network', [model.graph.input[0]],
                              [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
                              [i for i in model.graph.initializer if i.name in read])
    cut = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    onnx.save(cut, out_file + '.tmp')
    os.replace(out_file + '.tmp', out_file)
    return out_file


def ort_latency(onnx_file: str, network_file: str, images, batches: Sequence[int],
                thread_counts: Sequence[Optional[int]], repeats: int) -> dict:
    """``{'network_b<B>_t<T>': ms, 'detector_b1_t<T>': ms}`` (T: a thread count or ``all``), median of
    ``repeats`` calls after 2 warm-up rounds; ``images`` (N, 3, H, W) real inputs, repeated to the batch."""
    feeds = {b: np.ascontiguousarray(np.resize(images, (b, ) + images.shape[1:]), dtype=np.float32)
             for b in batches}
    out = {}
    for threads in thread_counts:
        net, det = make_session(network_file, threads), make_session(onnx_file, threads)
        calls = [lambda b=b: net.run(None, {'input': feeds[b]}) for b in batches]
        calls.append(lambda: det.run(None, {'input': feeds[1]}))
        clock = time.thread_time if threads == 1 else time.perf_counter
        ms = time_round_robin(calls, repeats, warmup=2, clock=clock)
        t = thread_key(threads)
        out.update({f'network_b{b}_t{t}': m for b, m in zip(batches, ms)})
        out[f'detector_b1_t{t}'] = ms[-1]
    return out


# ----------------------------------------------------------------------------------------------- artifacts
def artifact_settings(precision: str, config: str, checkpoint: str, s: dict) -> dict:
    """What an artifact's numbers depend on; a record measured with other values is not reused."""
    keys = ['input_hw', 'corruptions', 'severities', 'seed', 'batches', 'threads', 'repeats', 'cache_root']
    out = dict(config=osp.abspath(config), checkpoint=osp.abspath(checkpoint), **{k: s[k] for k in keys})
    if precision == 'int8':
        out.update(calib_images=s['calib_images'], activations=s['activations'])
    return json.loads(json.dumps(out))  # tuples as lists, as they read back


def reused_record(record_file: str, settings: dict) -> dict:
    """The finished record of ``record_file``; :class:`ReportError` naming the first setting it differs in."""
    with open(record_file) as f:
        record = json.load(f)
    for key, value in settings.items():
        old = record.get('settings', {}).get(key)
        if old != value:
            raise ReportError(f'{record_file} was measured with {key}={old!r}, this run asks for {value!r}: pass '
                              f'--no-resume to measure {record["artifact"]} again, or write to another --out')
    return record


def timing_images(cfg, meta: dict, seed: int):
    """8 real images of the config's test (else val) split on the export's canvas: inputs of the timed calls."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader or not loader.get('dataset'):
        raise ReportError('the config has no test_dataloader.dataset to evaluate and time on')
    images, _, _ = load_real_images(loader['dataset'], meta, 8, seed)
    return images.numpy()


def make_file(model, cfg, name: str, precision: str, checkpoint: str, s: dict, out_dir: str, log) -> str:
    """The artifact's ONNX file: the fp32 export (dynamic batch), or its INT8 quantization (exported first when
    the fp32 file is not there)."""
    fp32 = osp.join(out_dir, 'onnx', f'{name}_fp32.onnx')
    if precision == 'fp32' or not osp.isfile(fp32):
        log(f'[deploy-report] {name}_fp32: exporting {checkpoint} at {s["input_hw"]} -> {fp32}')
        export_onnx(model, fp32, tuple(s['input_hw']), batch='dynamic',
                    metadata=dict(config=getattr(cfg, 'filename', None), checkpoint=checkpoint))
    if precision == 'fp32':
        return fp32
    int8 = osp.join(out_dir, 'onnx', f'{name}_int8.onnx')
    log(f'[deploy-report] {name}_int8: quantizing on {s["calib_images"]} calibration images (seed {s["seed"]})')
    quantize_detector(fp32, int8, cfg, s['calib_images'], s['seed'], activations=s['activations'])
    return int8


def measure_artifact(model, cfg, config: str, name: str, precision: str, checkpoint: str, s: dict,
                     out_dir: str, resume: bool, log) -> dict:
    """Make one artifact's file and measure it: the record :data:`FIELDS` describe."""
    artifact = f'{name}_{precision}'
    onnx_file = make_file(model, cfg, name, precision, checkpoint, s, out_dir, log)
    network = network_graph(onnx_file, osp.join(out_dir, 'onnx', f'{artifact}_network.onnx'))
    images = timing_images(cfg, read_metadata(onnx_file), s['seed'])
    log(f'[deploy-report] {artifact}: timing in ONNX Runtime (batches {s["batches"]}, threads {s["threads"]}, '
        f'{s["repeats"]} calls each)')
    threads = [None if t == 'all' else int(t) for t in s['threads']]
    latency = ort_latency(onnx_file, network, images, s['batches'], threads, s['repeats'])
    log(f'[deploy-report] {artifact}: robustness through ONNX Runtime ({len(s["corruptions"])} corruptions x '
        f'severities {s["severities"]})')
    summary = evaluate_robustness(config, onnx_file, osp.join(out_dir, 'robustness', artifact), s['corruptions'],
                                  s['severities'], cache_root=s['cache_root'], seed=s['seed'], resume=resume,
                                  label=artifact, plots=False, backend='onnxruntime')['summary']
    cost = params_and_flops(model, (1, 3, *s['input_hw']))
    fp32_ops = read_metadata(onnx_file).get('quantization', {}).get('fp32_network_ops', {})
    return dict(artifact=artifact, model=name, precision=precision, file=osp.relpath(onnx_file, out_dir),
                size_bytes=osp.getsize(onnx_file), flops=cost['flops'], params=cost['params'], latency_ms=latency,
                threads={t: (os.cpu_count() or 1) if t == 'all' else int(t) for t in s['threads']},
                P=summary['P'], mPC=summary['mPC'], rPC=summary['rPC'], metric_key=summary['metric_key'],
                settings=artifact_settings(precision, config, checkpoint, s), fp32_network_ops=fp32_ops)


def run_artifact(model, cfg, config: str, name: str, precision: str, checkpoint: str, s: dict, out_dir: str,
                 resume: bool, log) -> dict:
    """One artifact's record: reused from ``OUT/artifacts/<artifact>.json`` when finished with the same
    settings (``resume``), else measured and written there."""
    artifact = f'{name}_{precision}'
    record_file = osp.join(out_dir, 'artifacts', f'{artifact}.json')
    if resume and osp.isfile(record_file):
        record = reused_record(record_file, artifact_settings(precision, config, checkpoint, s))
        log(f'[deploy-report] {artifact}: finished, reusing {record_file}')
        return record
    start = time.perf_counter()
    record = measure_artifact(model, cfg, config, name, precision, checkpoint, s, out_dir, resume, log)
    atomic_write_json(record_file, record)
    log(f'[deploy-report] {artifact}: done in {time.perf_counter() - start:.0f} s: P {100 * record["P"]:.2f}, '
        f'mPC {100 * record["mPC"]:.2f}, network b1 1 thread {record["latency_ms"]["network_b1_t1"]:.2f} ms')
    return record


def with_ratios(records: List[dict]) -> List[dict]:
    """Copies of the records with ``flops_ratio`` (FLOPs / dense FLOPs) and ``speedup`` (per latency key: the
    dense fp32 file's ms / this artifact's ms)."""
    dense = next(r for r in records if r['model'] == 'dense' and r['precision'] == 'fp32')
    out = []
    for r in records:
        speedup = {k: dense['latency_ms'][k] / v for k, v in r['latency_ms'].items()}
        out.append(dict(r, flops_ratio=r['flops'] / dense['flops'], speedup=speedup))
    return out


def machine() -> dict:
    """The CPU the numbers were measured on (its model name where Linux says it) and ONNX Runtime's version."""
    import onnxruntime  # optional runtime: only a report that ran it names it
    cpu = platform.processor() or platform.machine()
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    return dict(cpu=cpu, cores=os.cpu_count() or 1, onnxruntime=onnxruntime.__version__)


def deploy_report(config: str, checkpoint: str, pruned: Dict[str, str], out_dir: str,
                  corruptions: Sequence[str] = DEMO_CORRUPTIONS, severities: Sequence[int] = (3, ),
                  calib_images: int = 200, seed: int = 0, batches: Sequence[int] = (1, 8),
                  thread_counts: Sequence[Optional[int]] = (1, None), repeats: int = 20,
                  input_hw: Optional[Sequence[int]] = None, cache_root: Optional[str] = None, resume: bool = True,
                  log=print, activations: str = 'uint8') -> dict:
    """Measure dense (``config`` + ``checkpoint``) and each pruned model (``{name: pruned checkpoint}``, built on
    ``config`` re-shaped to the checkpoint's channels) x fp32 / int8; write ``OUT/deploy_report.{json,md,png}``
    and return the report (``artifacts``: the records with their ratios to dense fp32). ``None`` in
    ``thread_counts``: all cores; ``activations``: the INT8 files' (:data:`.quantize.ACTIVATION_TYPES`)."""
    check_settings(list(batches), list(thread_counts), repeats, calib_images)
    s = dict(corruptions=resolve_corruptions(corruptions), severities=check_severities(severities), seed=int(seed),
             calib_images=calib_images, activations=activations, batches=sorted(set(batches)), repeats=repeats, cache_root=cache_root,
             threads=[thread_key(t) for t in dict.fromkeys(thread_counts)])
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'dense checkpoint {checkpoint!r} does not exist')
    for ckpt in pruned.values():
        if not osp.isfile(ckpt):
            raise FileNotFoundError(f'pruned checkpoint {ckpt!r} does not exist')
    cfg = load_config(config)
    for sub in ('onnx', 'artifacts', 'robustness'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    records = []
    for name, ckpt in dict(dense=checkpoint, **pruned).items():
        model, _ = build_detector(cfg, ckpt, expect='dense' if name == 'dense' else 'pruned')
        if 'input_hw' not in s:
            s['input_hw'] = list(input_hw or default_input_hw(cfg, model))
        for precision in PRECISIONS:
            records.append(run_artifact(model, cfg, config, name, precision, ckpt, s, out_dir, resume, log))
    report = dict(config=config, machine=machine(), settings={k: v for k, v in s.items() if k != 'cache_root'},
                  artifacts=with_ratios(records))
    write_report(report, out_dir)
    log(f'[deploy-report] written: {out_dir}/deploy_report.md, deploy_report.json, deploy_report.png')
    return report


# ----------------------------------------------------------------------------------------------- output
def latency_keys(report: dict) -> List[str]:
    """The latency columns in order: the network at each thread count and batch, then the detector."""
    s = report['settings']
    return [f'network_b{b}_t{t}' for t in s['threads'] for b in s['batches']] + \
        [f'detector_b1_t{t}' for t in s['threads']]


def column_name(key: str, cores: int) -> str:
    part, batch, threads = key.split('_')
    threads = threads[1:]
    threads = f'{cores} threads' if threads == 'all' else f'{threads} thread' + ('s' if threads != '1' else '')
    return f'{part} b{batch[1:]} {threads} ms'


def report_markdown(report: dict) -> str:
    """The report's table: one row per artifact; each latency with its speed-up over dense fp32."""
    s, m, keys = report['settings'], report['machine'], latency_keys(report)
    h, w = s['input_hw']
    lines = [f'# Deployment report: {osp.basename(report["config"])}', '',
             f'ONNX Runtime {m["onnxruntime"]} on {m["cpu"]} ({m["cores"]} cores); input {h}x{w}; latency: median '
             f'of {s["repeats"]} calls (1 thread: CPU time of the calling thread; more: wall time), in parentheses '
             'the speed-up over dense fp32; network = the graph up to its last convolutions, detector = the whole '
             'file (decoding and NMS included). P = clean mAP on the test split, mPC / rPC over '
             f'{", ".join(s["corruptions"])} at severities {s["severities"]}; INT8 calibrated on '
             f'{s["calib_images"]} train images (seed {s["seed"]}), {s.get("activations", "int8")} activations.', '',
             '| artifact | size MiB | FLOPs / dense | ' + ' | '.join(column_name(k, m['cores']) for k in keys)
             + ' | P | mPC | rPC |', '|---' * (len(keys) + 6) + '|']
    for r in report['artifacts']:
        cells = [f'{r["latency_ms"][k]:.2f} ({r["speedup"][k]:.2f}x)' for k in keys]
        lines.append(f'| {r["artifact"]} | {r["size_bytes"] / 2 ** 20:.2f} | {r["flops_ratio"]:.3f} | '
                     + ' | '.join(cells) + f' | {100 * r["P"]:.2f} | {100 * r["mPC"]:.2f} | {100 * r["rPC"]:.1f} |')
    left = [f'- {r["artifact"]}: {fp32_ops_line(r["fp32_network_ops"])}' for r in report['artifacts']
            if r.get('fp32_network_ops')]
    if left:
        lines += ['', 'Network ops the INT8 files keep in fp32 (each between a DequantizeLinear and a '
                  'QuantizeLinear):'] + left
    return '\n'.join(lines) + '\n'


def plot_tradeoff(report: dict, path: str) -> str:
    """mPC against the network's ONNX Runtime latency at batch 1 on one thread, one labelled point per artifact."""
    import matplotlib  # optional, heavy: only the plot needs it
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # after choosing the headless backend
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    models = list(dict.fromkeys(r['model'] for r in report['artifacts']))
    for r in report['artifacts']:
        x, y = r['latency_ms']['network_b1_t1'], 100 * r['mPC']
        ax.scatter(x, y, marker='o' if r['precision'] == 'fp32' else 's', color=f'C{models.index(r["model"])}')
        ax.annotate(r['artifact'], (x, y), textcoords='offset points', xytext=(5, 4), fontsize=8)
    ax.set_xlabel('ONNX Runtime latency, network, batch 1, 1 thread (ms)')
    ax.set_ylabel(f'mPC ({report["artifacts"][0]["metric_key"]}, %)')
    ax.set_title('Deployed artifacts: robustness vs latency (o fp32, s int8)')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict, out_dir: str) -> None:
    atomic_write_json(osp.join(out_dir, 'deploy_report.json'), report)
    with open(osp.join(out_dir, 'deploy_report.md'), 'w') as f:
        f.write(report_markdown(report))
    plot_tradeoff(report, osp.join(out_dir, 'deploy_report.png'))
