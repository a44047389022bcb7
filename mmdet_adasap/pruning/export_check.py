"""The export's self-check: the physically pruned model must compute what the masked model computes.

A masked model and its export differ only in that the export lacks the zeroed channels, so on any input every
layer's output in the export equals the masked model's output restricted to the kept channels. Checking that
layer by layer (not just the final outputs) names the first layer where the surgery went wrong: a module the
trace never saw, a norm whose groups were cut, a consumer left with the dense input width. :func:`export_pruned`
runs it on every export, so ``tools/prune.py`` and the hooks' ``pruned.pth`` can never write a checkpoint that is
not the model that was trained.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from .channel_groups import ChannelGroups, flatten_outputs

#: a layer matches when max |masked - exported| <= ATOL + RTOL * max |masked| over its kept channels
RTOL, ATOL = 1e-4, 1e-6
_OUT_ROLES = ('out', 'dw', 'bn', 'gn', 'scale')  # members whose output channels are the group's channels


class ExportMismatch(RuntimeError):
    """The exported model does not compute what the masked model computes."""


def check_export(groups: ChannelGroups, masks: Dict[str, torch.Tensor], exported: nn.Module, seed: int = 0
                 ) -> float:
    """Run ``groups.model`` (masks applied) and ``exported`` on one seeded random input of the trace shape and
    compare every leaf layer's kept channels (on a grid of positions), then the traced outputs in full. Returns the largest relative difference;
    raises :class:`ExportMismatch` naming the first layer (in execution order) that differs or fails."""
    first = next(groups.model.parameters())  # the model's own dtype and device (it may be mid-training)
    x = torch.randn(*groups.input_shape, generator=torch.Generator().manual_seed(seed)).to(first.device, first.dtype)
    masked_outs, masked_final, _ = _run(groups.model, groups.forward_fn, x)
    exported_outs, exported_final, failure = _run(exported, groups.forward_fn, x)
    if failure is not None:
        layer, err = failure
        raise ExportMismatch(f'the exported model fails in layer {layer!r}: {err}; refusing to export a model '
                             'that does not run (the pruned channels reach a module the trace did not couple)')
    kept = _kept_channels(groups, masks)
    worst = 0.0
    for name, outs in masked_outs.items():
        for ref, got in zip(outs, exported_outs.get(name, [])):
            index, dim = kept.get(name, (None, 1))
            if index is not None and ref.dim() > 1:
                ref = ref.index_select(dim, index.to(ref.device))
            elif ref.shape != got.shape:
                continue  # e.g. an activation module after a pruned conv: its channel map is the conv's
            worst = max(worst, _compare(name, ref, got))
    for i, (ref, got) in enumerate(zip(masked_final, exported_final)):
        worst = max(worst, _compare(f'traced output #{i}', ref, got))
    return worst


def _compare(name: str, ref: torch.Tensor, got: torch.Tensor) -> float:
    if ref.shape != got.shape:
        raise ExportMismatch(f'exported layer {name!r} outputs shape {tuple(got.shape)}, the masked model '
                             f'{tuple(ref.shape)} on its kept channels')
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    diff = float((ref - got).abs().max()) if ref.numel() else 0.0
    if not diff <= ATOL + RTOL * scale:
        raise ExportMismatch(f'exported layer {name!r} differs from the masked model by {diff:.3g} (max |output| '
                             f'{scale:.3g}): refusing to export; were the masks applied (ChannelMasks.apply) '
                             'before exporting?')
    return diff / scale if scale > 0 else 0.0


def _kept_channels(groups: ChannelGroups, masks: Dict[str, torch.Tensor]) -> Dict[str, Tuple[torch.Tensor, int]]:
    """Layer name -> (its kept output channels in the order the export keeps them, channel dim); a layer whose
    output channels several groups own (a channel attention over a concatenation) loses what each drops."""
    dropped: Dict[str, set] = {}
    for g in groups:
        keep = masks[g.name]
        if bool(keep.all()):
            continue
        for name, role, index in g.members:
            if role in _OUT_ROLES:
                dropped.setdefault(name, set()).update(index[~keep].tolist())
    kept = {}
    for name, gone in dropped.items():
        module = groups.model.get_submodule(name)
        dim = -1 if isinstance(module, nn.Linear) else 1
        total = _out_channels(module)
        kept[name] = (torch.tensor(sorted(set(range(total)) - gone), dtype=torch.long), dim)
    return kept


def _out_channels(m: nn.Module) -> int:
    for attr in ('out_channels', 'out_features', 'num_features', 'num_channels'):
        if hasattr(m, attr):
            return int(getattr(m, attr))
    return int(m.weight.shape[0])  # L2Norm: its scale


@torch.no_grad()
def _run(model: nn.Module, forward_fn, x: torch.Tensor):
    """Every leaf layer's tensor outputs (per call, spatially sampled), the flattened traced outputs, and
    (layer, error) if the forward raised."""
    outs: Dict[str, List[torch.Tensor]] = {}
    running: List[str] = []
    handles = []
    for name, m in model.named_modules():
        if next(m.children(), None) is not None or not name:
            continue
        handles.append(m.register_forward_pre_hook(lambda mod, inp, name=name: running.append(name)))
        handles.append(m.register_forward_hook(
            lambda mod, inp, out, name=name: outs.setdefault(name, []).append(_sampled(mod, out))
            if torch.is_tensor(out) else None))
    was_training = model.training
    model.eval()
    failure: Optional[Tuple[str, str]] = None
    final: List[torch.Tensor] = []
    try:
        final = flatten_outputs(forward_fn(model, x.to(next(model.parameters()).device)))
    except (RuntimeError, ValueError, IndexError) as err:
        failure = (running[-1] if running else '<forward>', str(err).splitlines()[0])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return outs, final, failure


def _sampled(module: nn.Module, out: torch.Tensor, per_dim: int = 16) -> torch.Tensor:
    """A copy of ``out`` on at most ``per_dim`` evenly strided positions per spatial dim (all channels): a
    surgery error shows in every position, and a full copy of every layer of a detector at 800 px would take
    gigabytes. Linear outputs (channels last) are copied whole."""
    if isinstance(module, nn.Linear):
        return out.detach().clone()
    index = [slice(None)] * min(out.dim(), 2)
    index += [slice(None, None, -(-size // per_dim)) for size in out.shape[2:]]
    return out.detach()[tuple(index)].clone()
