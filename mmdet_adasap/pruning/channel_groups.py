"""Coupled output-channel groups of an mmdet detector, found by torch-pruning's ``DependencyGraph``.

Torch-Pruning traces the network and tells which layers' channels must be removed together (residual
partners, BN, depthwise convs, ``L2Norm`` scales, consumers' input slices). This module owns the *policy* on top
of that graph: which groups may be pruned at all (frozen layers, layers feeding the detector's outputs and
user-ignored layers are left alone), the per-neuron parameter slices handed to the sharpness step
(:class:`~mmdet_adasap.structures.NeuronGroup`), and the per-layer shapes the cost models (params, FLOPs,
latency) need. Tracing happens only here (:func:`trace`); export re-traces a copy with it for the surgery.
"""
import fnmatch
import math
import os.path as osp
import re
import reprlib
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch_pruning as tp
from mmdet.models.detectors import DetectionTransformer
from mmdet.models.necks.ssd_neck import L2Norm
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from mmdet_adasap.structures.neuron_groups import NeuronGroup, ParamSlice
from .coupling import LAYER_TYPES, OUT_ROLES, SUPPORTED_TYPES, ChannelClass, Key, neuron_classes

__all__ = ['SUPPORTED_TYPES', 'LAYER_TYPES']  # re-exported: what the pruner can mask, count and reshape
#: the trace input (N, C, H, W) when neither the caller nor the config's test pipeline gives one (SSD300's)
DEFAULT_INPUT_SHAPE = (1, 3, 300, 300)


def forward_tensor(model: nn.Module, x: torch.Tensor):
    """The detector's whole tensor forward (``model._forward(x)``: backbone, neck and head, no data samples)."""
    return model._forward(x)


def forward_extract_feat(model: nn.Module, x: torch.Tensor):
    """Backbone + neck only (``model.extract_feat(x)``): the head is left alone."""
    return model.extract_feat(x)


#: the traced parts a tool can choose by name (``tools/prune.py --trace``); None is :func:`default_forward`
TRACED_FORWARDS: Dict[str, Optional[Callable]] = {
    'auto': None, 'forward': forward_tensor, 'extract_feat': forward_extract_feat}


def default_forward(model: nn.Module) -> Callable:
    """The part of a detector that is pruned: everything ``_forward`` runs for one-stage detectors; only
    ``extract_feat`` (backbone + neck) for two-stage detectors, so RPN and RoI heads are never touched, and for
    the DETR family (mmdet's ``DetectionTransformer``: DETR, Deformable DETR, DINO, ...), whose transformer and
    head cannot run without data samples."""
    if hasattr(model, 'rpn_head') or hasattr(model, 'roi_head') or isinstance(model, DetectionTransformer):
        return forward_extract_feat
    if hasattr(model, '_forward'):
        return forward_tensor
    return lambda m, x: m(x)


class TracedPart(nn.Module):
    """``forward`` = the traced forward of a detector (for counters and exporters that call ``module(x)``);
    ``flat_outputs``: its outputs flattened to a tuple of tensors, depth first (what ONNX export takes)."""

    def __init__(self, model: nn.Module, forward_fn: Optional[Callable] = None, flat_outputs: bool = False):
        super().__init__()
        self.model = model
        self._forward_fn = forward_fn or default_forward(model)
        self.flat_outputs = flat_outputs

    def forward(self, x):
        out = self._forward_fn(self.model, x)
        return tuple(flatten_outputs(out)) if self.flat_outputs else out


def flatten_outputs(out) -> List[torch.Tensor]:
    """The tensors of a nest of tuples / lists / dicts, depth first (anything else is dropped)."""
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    return []


def model_call(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None):
    """A no-argument call of ``forward_fn(model, x)`` (default: the traced part) on a random input, in eval mode."""
    forward_fn = forward_fn or default_forward(model)
    model.eval()
    x = torch.randn(*input_shape, device=next(model.parameters()).device)
    return lambda: forward_fn(model, x)


@dataclass
class LayerShape:
    """What the cost models need of one conv/linear layer: dense shape, output positions and which group
    (if any) sets its input / output channel count."""
    name: str
    kind: str  # 'conv' | 'linear'
    in_channels: int
    out_channels: int
    groups: int  # conv groups (1 for linear)
    kernel_elems: int  # prod(kernel_size), 1 for linear
    positions: int  # output positions per image (H*W for conv, tokens for linear)
    in_tokens: int  # linear only: input numel / in_features (torch-pruning's counter quirk)
    bias: bool
    in_shape: Tuple[int, ...] = ()  # input tensor shape at trace time (for latency measurement)
    #: the groups that own part of its input / output channels: (group, this layer's channels per group
    #: channel, group size); a concatenation's consumer has one part per producer, an SPP consumer a count > 1
    in_parts: Tuple[Tuple[str, int, int], ...] = ()
    out_parts: Tuple[Tuple[str, int, int], ...] = ()

    @property
    def groups_touching(self) -> Tuple[str, ...]:
        """The groups whose kept counts change this layer's shape."""
        return tuple(dict.fromkeys(g for g, _, _ in self.in_parts + self.out_parts))

    @property
    def depthwise(self) -> bool:
        return self.kind == 'conv' and self.groups == self.in_channels == self.out_channels and self.groups > 1


def layer_channels(layer: LayerShape, keep: Dict[str, int]) -> Tuple[int, int, int]:
    """(in channels, out channels, conv groups) of ``layer`` under ``keep``; a depthwise layer follows its
    one group on both sides (it is counted once, as one layer)."""
    cin = kept_channels(layer.in_channels, layer.in_parts, keep)
    cout = kept_channels(layer.out_channels, layer.out_parts, keep)
    if layer.depthwise:
        return cout, cout, cout
    return cin, cout, layer.groups


def kept_channels(dense: int, parts: Sequence[Tuple[str, int, int]], keep: Dict[str, int]) -> int:
    """A tensor's channel count under ``keep`` when ``parts`` (group, channels per group channel, group size)
    own some of its ``dense`` channels."""
    return dense - sum(k * (size - keep.get(g, size)) for g, k, size in parts)


@dataclass
class ChannelGroup:
    """A prunable set of coupled channels. ``members`` lists (module name, role, index) with role in
    {'out', 'in', 'dw', 'bn', 'gn', 'scale'}; index[j] is the channel of that module that is group channel j."""
    name: str  # the root layer's name; ``root#k`` where the group owns only part of the root's channels
    size: int
    component: str  # 'backbone' | 'neck' | 'head' | other top-level child name
    members: List[Tuple[str, str, torch.Tensor]] = field(default_factory=list)
    slices: List[ParamSlice] = field(default_factory=list)
    slice_roles: List[str] = field(default_factory=list)  # role of the member each slice comes from
    #: channels are kept / removed in contiguous blocks of this size (e.g. a GroupNorm's channels per group,
    #: so that whole norm groups go and the masked model equals the exported one); every solver honours it
    block: int = 1
    root: str = ''  # the conv/linear whose output channels number the group's channels (default: ``name``)

    def __post_init__(self):
        self.root = self.root or self.name

    def modules(self, role: Optional[str] = None) -> List[str]:
        return [n for n, r, _ in self.members if role is None or r == role]


class ChannelGroups:
    """All prunable channel groups of a model plus what was deliberately left alone, with a report."""

    def __init__(self, model, groups, skipped, layers, extra_params, input_shape, forward_fn, untraced=()):
        self.model = model
        self.untraced: List[Tuple[str, str]] = list(untraced)  # (layer, reason) for layers the trace never saw
        self.groups: List[ChannelGroup] = groups
        self.skipped: List[Tuple[str, str]] = skipped  # (root layer, reason)
        self.layers: Dict[str, LayerShape] = layers
        #: bn / gn / scale module -> (its parts, as LayerShape.out_parts; parameters per channel)
        self.extra_params: Dict[str, Tuple[Tuple[Tuple[str, int, int], ...], int]] = extra_params
        self.input_shape = tuple(input_shape)
        self.forward_fn = forward_fn
        self.by_name = {g.name: g for g in groups}

    def __len__(self):
        return len(self.groups)

    def __iter__(self):
        return iter(self.groups)

    def neuron_groups(self) -> List[NeuronGroup]:
        """NeuronGroups sharing this object's (once-built) ParamSlices; importance/mask are filled by the pruner."""
        return [NeuronGroup(name=g.name, slices=g.slices, num_channels=g.size, extra={'component': g.component})
                for g in self.groups]

    def count_by_component(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for g in self.groups:
            counts[g.component] = counts.get(g.component, 0) + 1
        return counts

    def report(self) -> str:
        lines = [f'{len(self.groups)} prunable channel groups '
                 f'({sum(g.size for g in self.groups)} channels) traced at input {self.input_shape}:']
        for comp, n in sorted(self.count_by_component().items()):
            chans = sum(g.size for g in self.groups if g.component == comp)
            lines.append(f'  {comp:<10} {n:4d} groups {chans:7d} channels')
        if self.skipped:
            lines.append(f'left alone ({len(self.skipped)} groups):')
            for name, why in self.skipped:
                lines.append(f'  {name:<40} {why}')
        if self.untraced:
            by_reason: Dict[str, List[str]] = {}
            for name, why in self.untraced:
                by_reason.setdefault(why, []).append(name)
            for why, names in by_reason.items():
                prefixes = sorted({'.'.join(n.split('.')[:2]) for n in names})
                lines.append(f'not pruned, {why}: {len(names)} layers under {", ".join(prefixes)}')
        return '\n'.join(lines)


class UnfollowableChannels(TypeError):
    """Layers whose channels the trace cannot follow, all of them: ``problems`` ``{module: why}``;
    ``ignored_layers`` the value that leaves them alone (``verified``: a prune and export were checked with it,
    see :func:`~.follow.build_followed_groups`)."""

    def __init__(self, model: str, problems: Dict[str, str], ignored_layers: Sequence[str],
                 verified: Optional[str] = None, note: Optional[str] = None):
        self.problems, self.ignored_layers, self.verified = dict(problems), list(ignored_layers), verified
        lines = [f'cannot prune through {len(problems)} module(s) of {model}: their channels cannot be followed']
        lines += [f'  {name!r}: {why}' for name, why in sorted(problems.items())]
        value = f'ignored_layers={self.ignored_layers!r}'
        if verified:
            lines.append(f'leave them alone with {value} (verified: {verified})')
        elif note:
            lines.append(f'{value} leaves them alone, but it is not a way out: {note}')
        else:
            lines.append(f'leave them alone with {value} (not verified; ChannelPruner checks the value it offers)')
        super().__init__('\n'.join(lines))


class UntraceableForward(ValueError):
    """The forward the pruner traces failed (e.g. a DETR-family head asserting on missing data samples): one
    error naming the detector, where its forward failed (:attr:`site`: module path, module class, function,
    file:line), the original exception (:attr:`original`, also chained) and the way out, ``forward_fn``."""

    def __init__(self, model: nn.Module, forward_fn: Callable, err: BaseException):
        self.model_name, self.original = type(model).__name__, err
        self.site = _failure_site(model, err)
        module, cls, func, at = self.site
        if module is None:
            where = ''
        elif module == '':
            where = f' in {self.model_name} itself, in {func} at {at},'
        else:
            where = f' in module {module!r} ({cls}), in {func} at {at},'
        raised = _raised_at(err)
        if raised and raised != (func, at):
            where += f' raised in {raised[0]} at {raised[1]},'
        message = ' '.join(str(err).split()) or '(no message)'
        if len(message) > 300:
            message = message[:297] + '...'
        fn = forward_fn.forward_fn if isinstance(forward_fn, SideOutputs) else forward_fn
        if fn is not forward_extract_feat and hasattr(model, 'extract_feat'):
            way_out = ('pass forward_fn=lambda model, x: model.extract_feat(x) to trace and prune only the backbone '
                       '+ neck, the head left alone (tools/prune.py: --trace extract_feat), or another '
                       'forward_fn(model, x) that runs on the image batch x alone')
        else:
            way_out = 'pass a forward_fn(model, x) that runs the part to prune on the image batch x alone'
        super().__init__(f'cannot trace {self.model_name} for pruning: {_describe_forward(fn)} failed'
                         f'{where} with {type(err).__name__}: {message}; {way_out}')


def _describe_forward(fn: Callable) -> str:
    if fn is forward_tensor:
        return 'its forward model._forward(x)'
    if fn is forward_extract_feat:
        return 'its forward model.extract_feat(x)'
    return f'the given forward_fn ({getattr(fn, "__qualname__", None) or type(fn).__name__})'


def _short_path(filename: str) -> str:
    """A source file as a reader finds it: below site-packages, or below this repository, else as given."""
    if 'site-packages' + osp.sep in filename:
        return filename.rsplit('site-packages' + osp.sep, 1)[1]
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return osp.relpath(filename, repo) if filename.startswith(repo + osp.sep) else filename


#: torch's frames that call a module (what runs its hooks and ``forward``), in torch/nn/modules/module.py
_MODULE_FILE, _CALL_FRAMES = nn.Module.__call__.__code__.co_filename, ('_call_impl', '_wrapped_call_impl')


def _frame_function(frame) -> str:
    return getattr(frame.f_code, 'co_qualname', frame.f_code.co_name)


def _failure_site(model: nn.Module, err: BaseException) -> Tuple[Optional[str], str, str, str]:
    """(module path, module class, function, file:line) of the innermost frame of ``err``'s traceback that
    runs a method of ``model`` or of one of its modules (path '' for the detector itself); module None if no
    frame does. Where the call of a module itself failed (e.g. its forward got the wrong arguments), the
    function is its ``forward`` and the place is the line that called it."""
    names = {id(m): n for n, m in model.named_modules()}
    site, caller = (None, '', '', ''), ''
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        at = f'{_short_path(frame.f_code.co_filename)}:{lineno}'
        owner = frame.f_locals.get('self')
        calling = frame.f_code.co_filename == _MODULE_FILE and frame.f_code.co_name in _CALL_FRAMES
        if owner is not None and id(owner) in names:
            if calling:
                site = (names[id(owner)], type(owner).__name__, f'the call of {type(owner).__name__}.forward',
                        caller)
            else:
                site = (names[id(owner)], type(owner).__name__, _frame_function(frame), at)
        if not calling:
            caller = at
    return site


def _raised_at(err: BaseException) -> Optional[Tuple[str, str]]:
    """(function, file:line) of the innermost frame of ``err``'s traceback; None where that is torch calling a
    module (the call itself failed: :func:`_failure_site` names it)."""
    last = None
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        calling = frame.f_code.co_filename == _MODULE_FILE and frame.f_code.co_name in _CALL_FRAMES
        last = None if calling else (_frame_function(frame), f'{_short_path(frame.f_code.co_filename)}:{lineno}')
    return last


def check_forward_fn(forward_fn) -> Callable:
    """``forward_fn`` if it is callable; anything else is refused naming what was given."""
    if not callable(forward_fn):
        raise ValueError(f'forward_fn must be callable as forward_fn(model, x) and return the traced output '
                         f'tensors, got {reprlib.repr(forward_fn)} ({type(forward_fn).__name__}); e.g. '
                         'forward_fn=lambda model, x: model.extract_feat(x)')
    return forward_fn


class _CheckedForward:
    """``forward_fn`` as the trace calls it: remembers the exception it raised (to tell a failing forward from
    a failure of the trace itself), and refuses an output that holds no tensor (nothing to trace back from)."""

    def __init__(self, forward_fn: Callable):
        self.forward_fn, self.failure = forward_fn, None

    def __call__(self, model, x):
        try:
            out = self.forward_fn(model, x)
        except Exception as err:  # noqa: BLE001  (whatever the forward raises: remembered, re-raised)
            self.failure = err
            raise
        if not flatten_outputs(out):
            raise ValueError(f'forward_fn returned {reprlib.repr(out)} ({type(out).__name__}), which holds no '
                             'tensor: the trace follows the tensors forward_fn(model, x) returns (a tensor or '
                             'a tuple / list / dict of them), e.g. forward_fn=lambda model, x: model.extract_feat(x)')
        return out


def trace(model: nn.Module, input_shape: Sequence[int], forward_fn: Optional[Callable] = None
          ) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model`` (L2Norm scales registered as channel-dim-0 parameters).

    A forward that fails is refused as one :class:`UntraceableForward` (chained to the original error); one
    whose output holds no tensor with a ``ValueError`` naming what it returned."""
    forward_fn = default_forward(model) if forward_fn is None else check_forward_fn(forward_fn)
    unwrapped = [(m.weight, 0) for m in model.modules() if isinstance(m, L2Norm)]
    first = next(model.parameters())
    was_training = model.training
    model.eval()
    run = _CheckedForward(forward_fn)
    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
                model, torch.zeros(*input_shape, device=first.device, dtype=first.dtype), forward_fn=run,
                unwrapped_parameters=unwrapped, verbose=False)
    except Exception as err:  # noqa: BLE001  (a failing forward is explained, anything else re-raised)
        if run.failure is not err:
            raise
        raise UntraceableForward(model, forward_fn, err) from err
    finally:
        model.train(was_training)


class SideOutputs:
    """A forward function that also returns the outputs of modules the detector runs but discards.

    mmdet's ``MobileNetV2.forward`` runs ``conv2`` although ``out_indices`` drops its output: a graph traced
    back from the outputs never reaches it, and pruning its producer's channels would break the exported
    model. Returning those outputs too puts the modules in the graph: their input channels are coupled to
    their producers and their own outputs, now traced outputs, are kept. Modules are looked up by name, so
    the same function traces the deep copy that export re-traces.
    """

    def __init__(self, forward_fn: Callable, names: Sequence[str]):
        self.forward_fn, self.names = forward_fn, list(names)

    def __call__(self, model: nn.Module, x):
        extra = []
        handles = [model.get_submodule(n).register_forward_hook(lambda m, i, o: extra.append(o))
                   for n in self.names]
        try:
            return self.forward_fn(model, x), extra
        finally:
            for h in handles:
                h.remove()


#: torch's messages for a feature map smaller than a kernel / pooling window
_SIZE_ERROR = re.compile(r'[Kk]ernel size|[Oo]utput size is too small|input size|[Pp]added input|'
                         r'smaller than (the )?kernel')


def _trace_or_explain(model: nn.Module, input_shape: Sequence[int], forward_fn: Callable) -> tp.DependencyGraph:
    """:func:`trace`, turning a forward that fails because the input is too small (pooling / conv kernels
    larger than a late feature map, e.g. SSD512's last extra layer) into an error naming the smallest input;
    any other failing forward is :func:`trace`'s :class:`UntraceableForward`."""
    try:
        return trace(model, input_shape, forward_fn)
    except UntraceableForward as untraceable:
        err = untraceable.original
        if not (isinstance(err, RuntimeError) and _SIZE_ERROR.search(str(err))):
            raise
        side = smallest_input_side(model, input_shape, forward_fn)
        if side is None:
            raise
        raise ValueError(f'{type(model).__name__} cannot run at input {tuple(input_shape)} ({err}); the smallest '
                         f'square input it accepts is {side}x{side}: trace at input_shape=(1, 3, {side}, {side}) '
                         'or larger (the Resize scale of the config sets it)') from err


@torch.no_grad()
def smallest_input_side(model: nn.Module, input_shape: Sequence[int], forward_fn: Callable,
                        limit: int = 2048) -> Optional[int]:
    """The smallest side ``s`` such that an (N, C, s, s) input runs, searched above ``input_shape``'s shorter
    side (doubling, then bisection; a forward that fails is assumed to fail at every smaller size), or None
    if even ``limit`` fails."""
    n, c = input_shape[:2]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def runs(side):
        try:
            forward_fn(model, torch.zeros(n, c, side, side, device=device))
            return True
        except RuntimeError:
            return False

    try:
        lo = hi = max(1, min(input_shape[2:]))  # fails (the caller saw it)
        while not runs(hi):
            if hi >= limit:
                return None
            lo, hi = hi, min(2 * hi, limit)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if runs(mid) else (mid, hi)
        return hi
    finally:
        model.train(was_training)


def _check_names(model: nn.Module, names: Sequence[str], what: str) -> None:
    all_names = {n for n, _ in model.named_modules()}
    for pattern in names:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
            raise ValueError(f'{what} entry {pattern!r} matches no module of {type(model).__name__} '
                             f'(module names look like {sorted(all_names - {""})[:3]}...)')


def _matches(name: str, patterns: Sequence[str]) -> bool:
    """``name`` is a pattern or lies inside a module a pattern names (fnmatch wildcards allowed)."""
    return any(fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip('.') + '.') for p in patterns)


def build_channel_groups(model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
                         forward_fn: Optional[Callable] = None, ignored_layers: Sequence[str] = (),
                         prunable: Optional[Sequence[str]] = None) -> ChannelGroups:
    """Trace ``model`` and return its prunable channel groups.

    ``ignored_layers``: module names (or fnmatch patterns; a module covers its children) whose channels must
    not change; a group touching one is left whole. ``prunable``: if given, only groups whose root layer
    matches are kept. Layers whose output reaches the traced output (prediction convs, FPN outputs that feed
    RPN/RoI heads) and frozen conv/linear layers (``frozen_stages``) are always left alone; norm layers with
    ``requires_grad=False`` (caffe-style frozen BN) are sliced with their trained convs. Modules that run but
    whose outputs the detector discards are traced as extra outputs (:class:`SideOutputs`).
    """
    ignored_layers, prunable = list(ignored_layers), (None if prunable is None else list(prunable))
    _check_names(model, ignored_layers, 'ignored_layers')
    if prunable is not None:
        _check_names(model, prunable, 'prunable')
    forward_fn = default_forward(model) if forward_fn is None else check_forward_fn(forward_fn)
    name_of = {m: n for n, m in model.named_modules()}
    dg, forward_fn, positions, in_shapes = _trace_recording_shapes(model, input_shape, forward_fn, name_of)
    groups, skipped, problems = _prunable_groups(model, dg, name_of, ignored_layers, prunable)
    if problems:
        raise UnfollowableChannels(type(model).__name__, problems, ignored_layers + sorted(problems))
    layers, extra_params = _layer_shapes(model, groups, positions, in_shapes)
    untraced = []
    for n, m in model.named_modules():
        if isinstance(m, LAYER_TYPES) and m not in dg.module2node:
            frozen = all(not p.requires_grad for p in m.parameters())
            untraced.append((n, 'frozen (requires_grad=False)' if frozen else 'outside the traced forward'))
    return ChannelGroups(model, groups, skipped, layers, extra_params, input_shape, forward_fn, untraced)


def _trace_recording_shapes(model, input_shape, forward_fn, name_of):
    """The dependency graph, the forward it traced (with :class:`SideOutputs` where modules run whose outputs
    are discarded), and every conv/linear's output positions (and tokens) and input shape during the trace."""
    positions: Dict[str, Tuple[int, int]] = {}
    in_shapes: Dict[str, Tuple[int, ...]] = {}

    def record(mod, inp, out):  # summed over calls: heads shared across pyramid levels run once per level
        name = name_of[mod]
        in_shapes.setdefault(name, tuple(inp[0].shape))
        if isinstance(mod, nn.Linear):
            pos, tokens = (out.numel() // out.shape[-1] // max(out.shape[0], 1), inp[0].numel() // mod.in_features)
        else:
            pos, tokens = int(torch.tensor(out.shape[2:]).prod()), 0
        prev = positions.get(name, (0, 0))
        positions[name] = (prev[0] + pos, prev[1] + tokens)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, LAYER_TYPES)]
    try:
        dg = _trace_or_explain(model, input_shape, forward_fn)
    finally:
        for h in handles:
            h.remove()
    side = [n for n in positions if model.get_submodule(n) not in dg.module2node
            and any(p.requires_grad for p in model.get_submodule(n).parameters())]
    if side:  # they run but their outputs are discarded: trace again with them as extra outputs
        forward_fn = SideOutputs(forward_fn, side)
        dg = trace(model, input_shape, forward_fn)
    return dg, forward_fn, positions, in_shapes


def _prunable_groups(model, dg, name_of, ignored_layers, prunable):
    """(groups, [(group, why it is left alone)], {module: why its channels cannot be followed}): the
    neurons of :func:`~.coupling.neuron_classes` gathered by their member layers, one group per set."""
    param_owner = {}
    for n, m in model.named_modules():
        for p in m.parameters(recurse=False):
            param_owner[p] = (n, m)
    order = {name_of[m]: i for i, m in enumerate(dg.module2node) if m in name_of}
    classes = neuron_classes(dg, _traced_groups(dg, name_of, ignored_layers), name_of, param_owner)
    by_members: Dict[tuple, List[ChannelClass]] = {}
    for c in classes:
        by_members.setdefault(c.signature(), []).append(c)
    candidates, problems = [], {}
    for signature, members in by_members.items():
        root = _root_of(signature, members, model, order)
        keys = [k for k, _ in signature]
        names = [n for n, _ in keys] + [n for c in members for n in c.problems]
        if root is None:  # no conv/linear makes these channels (what made them could not be followed)
            if not any(_matches(n, ignored_layers) for n in names):
                found = {n: why for c in members for n, why in c.problems.items()}
                problems.update(found or {n: 'its channels come from no conv / linear layer of the trace'
                                          for n, _ in keys})
            continue
        members.sort(key=lambda c: c.channels[root][0])
        candidates.append((order.get(root[0], len(order)), members[0].channels[root][0], root, signature, members))
    groups, skipped, partial = [], [], {}
    for _, _, root, signature, members in sorted(candidates, key=lambda t: t[:2]):
        name = _group_name(root, signature, members, model, partial)
        reason = _why_left_alone(root[0], signature, members, model, dg, ignored_layers, prunable)
        if reason is None:
            found = {n: why for c in members for n, why in c.problems.items()}
            if found:
                problems.update(found)
                continue
            group = _make_group(name, root, signature, members, model, order)
            reason = _set_norm_block(group, model)
            if reason is None:
                groups.append(group)
                continue
        skipped.append((name, reason))
    return groups, skipped, problems


def _traced_groups(dg: tp.DependencyGraph, name_of, ignored_layers) -> list:
    """Torch-pruning's groups, one per conv / linear not yet met as a producer (``get_all_groups``), except that
    an ignored layer is never made a root: a group through a head the trace cannot follow can take a minute
    to map (TOOD), and every coupling of an ignored layer that matters shows in the groups of its partners."""
    groups, seen = [], set()
    for m in list(dg.module2node):
        if not isinstance(m, LAYER_TYPES) or m in seen or _matches(name_of.get(m, ''), ignored_layers):
            continue
        pruner = dg.get_pruner_of_module(m)
        if pruner is None or pruner.get_out_channels(m) is None:
            continue
        group = dg.get_pruning_group(m, pruner.prune_out_channels, list(range(pruner.get_out_channels(m))))
        seen.update(dep.target.module for dep, _ in group if dg.is_out_channel_pruning_fn(dep.handler))
        groups.append(group)
    return groups


def _root_of(signature, members, model, order) -> Optional[Key]:
    """The member layer whose output channels number the group: one whose output channels are exactly the
    group's (torch-pruning's root for a group it returns whole) if there is one, one channel per neuron
    preferred, else the first producer (a channel attention's output, of which the group owns part)."""
    count = dict(signature)
    producers = [k for k in count if k[1] in ('out', 'dw') and isinstance(model.get_submodule(k[0]), LAYER_TYPES)]
    if not producers:
        return None

    def rank(k):
        full = _out_channels(model.get_submodule(k[0])) == count[k] * len(members)
        return not full, count[k] != 1, order.get(k[0], len(order))
    return min(producers, key=rank)


def _out_channels(m: nn.Module) -> int:
    return m.out_channels if isinstance(m, _ConvNd) else m.out_features


def _group_name(root: Key, signature, members, model, partial: Dict[str, int]) -> str:
    """The root layer's name; ``root#k`` for the k-th group that owns only part of the root's channels."""
    name = root[0]
    if _out_channels(model.get_submodule(name)) == dict(signature)[root] * len(members):
        return name
    partial[name] = partial.get(name, -1) + 1
    return f'{name}#{partial[name]}'


def _why_left_alone(root, signature, members, model, dg, ignored, prunable) -> Optional[str]:
    if prunable is not None and not _matches(root, prunable):
        return 'not in prunable'
    names = [n for (n, _), _ in signature] + sorted({n for c in members for n in c.problems})
    for name in names:  # first: ignoring is also how a user steps around a module this package cannot prune
        if _matches(name, ignored):
            return f'ignored_layers ({name})'
    if any(c.reaches_output for c in members):
        return 'feeds the traced output (prediction / feature channels kept)'
    for (name, role), _ in signature:
        # a frozen conv/linear is a frozen stage; a norm layer with requires_grad=False (caffe-style frozen
        # BN) only has a fixed affine, which is sliced like any other while its trained convs are pruned
        m = model.get_submodule(name)
        if isinstance(m, LAYER_TYPES + (L2Norm,)) and any(not p.requires_grad for p in m.parameters(recurse=False)):
            return f'frozen ({name})'
    if _feeds_output({n for c in members for n in c.layer_nodes}):
        return 'feeds the traced output (prediction / feature channels kept)'
    return None


def _make_group(name, root: Key, signature, members, model, order) -> ChannelGroup:
    """The group of neurons ``members`` (sorted by the root's channel): per member layer and copy (a layer
    with several channels per neuron, e.g. the consumer of an SPP concatenation, has several), the index of
    its channel for every group channel, and the parameter slices the masks, importance and sharpness use."""
    keys = sorted((k for k, _ in signature), key=lambda k: (k != root, order.get(k[0], len(order)), k))
    count = dict(signature)
    group = ChannelGroup(name, len(members), name.split('.')[0], root=root[0])
    for key in keys:
        mod_name, role = key
        mod = model.get_submodule(mod_name)
        param = next(iter(mod.parameters()), None)  # None: a GroupNorm without affine
        for copy in range(count[key]):
            index = torch.tensor([c.channels[key][copy] for c in members], dtype=torch.long)
            group.members.append((mod_name, role, index))
            index = index if param is None else index.to(param.device)
            if role in OUT_ROLES:
                for pname, p in mod.named_parameters(recurse=False):
                    group.slices.append(ParamSlice(p, 0, index, f'{mod_name}.{pname}'))
                    group.slice_roles.append(role)
            else:  # input columns of a consumer conv / linear
                group.slices.append(ParamSlice(mod.weight, 1, index, f'{mod_name}.weight'))
                group.slice_roles.append(role)
    return group


def _layer_shapes(model, groups, positions, in_shapes):
    """Every traced conv/linear's :class:`LayerShape` (with the groups that set its channels) and the norm /
    scale modules whose parameters follow groups: ``{module: (parts, parameters per channel)}``."""
    layers = {}
    for n, m in model.named_modules():
        if isinstance(m, LAYER_TYPES) and n in positions:
            conv = isinstance(m, _ConvNd)
            layers[n] = LayerShape(
                name=n, kind='conv' if conv else 'linear',
                in_channels=m.in_channels if conv else m.in_features,
                out_channels=m.out_channels if conv else m.out_features, groups=m.groups if conv else 1,
                kernel_elems=int(torch.tensor(m.kernel_size).prod()) if conv else 1,
                positions=positions[n][0], in_tokens=positions[n][1], bias=m.bias is not None,
                in_shape=in_shapes[n])
    ins: Dict[str, Dict[str, int]] = {}
    outs: Dict[str, Dict[str, int]] = {}
    size = {g.name: g.size for g in groups}
    for g in groups:
        for n, role, _ in g.members:
            if role in OUT_ROLES:
                outs.setdefault(n, {}).setdefault(g.name, 0)
                outs[n][g.name] += 1
            if role in ('in', 'dw'):
                ins.setdefault(n, {}).setdefault(g.name, 0)
                ins[n][g.name] += 1
    parts = {n: {side: tuple((g, k, size[g]) for g, k in d.get(n, {}).items()) for side, d in (('in', ins),
                                                                                              ('out', outs))}
             for n in set(ins) | set(outs)}
    extra_params = {}
    for n, p in parts.items():
        if n in layers:
            layers[n].in_parts, layers[n].out_parts = p['in'], p['out']
            continue
        per_channel = sum(1 for _ in model.get_submodule(n).parameters(recurse=False))
        if per_channel:  # BN / GN affine, L2Norm scale
            extra_params[n] = (p['out'], per_channel)
    return layers, extra_params


def _set_norm_block(group: ChannelGroup, model: nn.Module) -> Optional[str]:
    """GroupNorm normalises over groups of channels: removing part of a norm group changes its mean and
    variance, so the masked model would differ from the exported one. Channels therefore go in whole norm
    groups: ``block`` = lcm of channels per group over the group's GroupNorms. Returns why the group must be
    left alone, if its channel order does not line up with a GroupNorm's groups."""
    block = 1
    for name, role, index in group.members:
        if role != 'gn':
            continue
        gn = model.get_submodule(name)
        per_group = gn.num_channels // gn.num_groups
        if group.size % per_group or not bool(
                (index.view(-1, per_group) // per_group == index.view(-1, per_group)[:, :1] // per_group).all()):
            return f'channels do not map onto whole GroupNorm groups of {name!r}'
        block = math.lcm(block, per_group)
    if group.size % block:
        return f'no block of whole GroupNorm groups divides its {group.size} channels'
    group.block = block
    return None


def _feeds_output(starts) -> bool:
    """True if the activation of one of the tp nodes ``starts`` reaches the traced output before any
    consuming layer."""
    stop = (tp.ops.OPTYPE.CONV, tp.ops.OPTYPE.LINEAR, tp.ops.OPTYPE.DEPTHWISE_CONV)
    seen, stack = set(), [n for n in starts if n.type in stop]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.type == tp.ops.OPTYPE.OUTPUT or not node.outputs:
            return True
        stack.extend(o for o in node.outputs if o.type not in stop)
    return False
