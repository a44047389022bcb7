"""Two method options of the comparison matrix that edit a method's training config when a run is built:

- ``schedule``: the length of the AdaSAP schedule. An int ``k`` multiplies each phase length (warm-up, pruning,
  fine-tune); ``dict(warmup=W, pruning=P, finetune=F)`` gives the three lengths, in the hook's unit (epochs, or
  iterations with ``by_epoch=False``). The hook's phase ends, ``train_cfg.max_epochs`` / ``max_iters``, a
  ``val_interval`` equal to the old end, every param scheduler in the same unit (``begin``, ``end``,
  ``milestones``, ``T_max``: a cosine period spans the new total) and an epoch checkpoint interval move with it.
  The pruning schedule keeps its number of steps (the hook spaces them over the longer phase); an explicit
  ``interval`` is stretched with the pruning phase.
- ``phases``: ``dict(warmup=W, finetune=F)``, an ablation arm: the warm-up's sharpness step of one recipe, the
  fine-tune's of another (the pruning phase continues the warm-up's step, as in the paper). Warm-ups:
  ``'adaptive'`` (AdaSAP's adaptive-radius ASAM), ``'uniform'`` (the SAM/ASAM recipe's uniform radius), ``'sgd'``
  (no sharpness); fine-tunes: ``'asam'`` (uniform ASAM), ``'sgd'``. A step comes from the method's own config
  when its config has one of that kind, else from :data:`RECIPES`; a sharpness knob in the method's
  ``cfg_options`` still overrides it. The optim wrapper becomes ``SAMOptimWrapper`` when a phase takes a
  sharpness step, the plain ``OptimWrapper`` (without the SAM-only settings) when none does.

Both are recorded in the run record and covered by its config fingerprint (:mod:`.compare`).
"""
import copy
import inspect
import math
import re
from functools import partial, reduce
from typing import Callable, Dict, Optional, Tuple, Union

from mmengine.optim import OptimWrapper

from mmdet_adasap.apis import load_config
from mmdet_adasap.engine.optim_wrappers import SAMOptimWrapper

#: the shipped sharpness steps of each phase recipe (configs/adasap/ssd-r18mini_synthvoc_{adasap,sam_asam}_flops50.py)
RECIPES = dict(
    warmup=dict(
        adaptive=dict(radius=dict(type='AdaptiveRadius', rho_min=0.01, rho_max=2.0), rho=0.5, adaptive=True),
        uniform=dict(rho=0.2, adaptive=False),
        sgd=None),
    finetune=dict(
        asam=dict(rho=0.5, adaptive=True),
        sgd=None))
SCHEDULE_PHASES = ('warmup', 'pruning', 'finetune')
ABLATION_PHASES = ('warmup', 'finetune')
#: param-scheduler arguments in time units that a schedule cannot stretch faithfully
UNSTRETCHABLE = ('step_size', 'periods', 'total_steps')

Schedule = Union[int, Dict[str, int]]
_KNOB = re.compile(r'(^|\.)(warmup|pruning|finetune)\.sharpness(\.|$)')


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_schedule(value, where: str = 'schedule') -> Schedule:
    """A positive int multiplier or dict(warmup=W, pruning=P, finetune=F) of positive ints; None: 1."""
    if value is None:
        return 1
    if isinstance(value, dict):
        _check_keys(value, SCHEDULE_PHASES, f'{where}: schedule=dict(...) gives the phase lengths {SCHEDULE_PHASES}')
        for phase in SCHEDULE_PHASES:
            if not _positive_int(value[phase]):
                raise ValueError(f'{where}: schedule.{phase} (the length of the {phase} phase) must be a positive '
                                 f'int, got {value[phase]!r}')
        return {k: value[k] for k in SCHEDULE_PHASES}
    if not _positive_int(value):
        raise ValueError(f'{where}: the schedule multiplier must be a positive int (or dict(warmup=W, pruning=P, '
                         f'finetune=F) of phase lengths), got {value!r}')
    return value


def _check_keys(value: dict, keys, usage: str) -> None:
    """Refuse a dict whose keys are not exactly ``keys``, naming the unknown and the missing ones."""
    unknown, missing = sorted(set(value) - set(keys)), [k for k in keys if k not in value]
    if unknown or missing:
        raise ValueError(f'{usage}; unknown key(s) {unknown}, missing {missing}')


def check_phases(value, where: str = 'phases') -> Optional[Dict[str, str]]:
    """dict(warmup=name, finetune=name) with known names (:data:`RECIPES`); None: the config's own phases."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f'{where}: phases must be dict(warmup=..., finetune=...), got {value!r}')
    _check_keys(value, ABLATION_PHASES,
                f'{where}: phases names the warm-up and the fine-tune step, dict(warmup=..., finetune=...)')
    for phase in ABLATION_PHASES:
        if value[phase] not in RECIPES[phase]:
            what = 'warm-up' if phase == 'warmup' else 'fine-tune'
            raise ValueError(f'{where}: unknown {what} {value[phase]!r} in phases.{phase}; known {what}s: '
                             f'{list(RECIPES[phase])}')
    return {k: value[k] for k in ABLATION_PHASES}


def arm_record(schedule: Schedule = 1, phases: Optional[dict] = None) -> dict:
    """What a run record carries for these options: only the ones that differ from the config's own."""
    out = {}
    if schedule != 1:
        out['schedule'] = copy.deepcopy(schedule)
    if phases:
        out['phases'] = dict(phases)
    return out


def find_adasap_hook(cfg, config: str) -> Tuple[str, dict]:
    """The dotted path and the (mutable) config node of the config's one AdaSAPHook."""
    found = []
    hooks = cfg.get('default_hooks') or {}
    for name, hook in hooks.items():
        if isinstance(hook, dict) and str(hook.get('type', '')).split('.')[-1] == 'AdaSAPHook':
            found.append((f'default_hooks.{name}', hook))
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict) and str(hook.get('type', '')).split('.')[-1] == 'AdaSAPHook':
            found.append((f'custom_hooks.{i}', hook))
    if not found:
        raise ValueError(f'{config}: this config has no AdaSAPHook (in default_hooks or custom_hooks), so it has no '
                         'warm-up / pruning / fine-tune phases for schedule= or phases= to change')
    if len(found) > 1:
        raise ValueError(f'{config}: more than one AdaSAPHook ({[p for p, _ in found]})')
    return found[0]


def _time_map(old: Tuple[int, ...], new: Tuple[int, ...], what: str, config: str) -> Callable:
    """Maps a point of the old schedule (phase boundaries ``old``) to the new one: boundaries exactly, a point
    inside a phase linearly within it (rounded to the nearest int). ``side``: at a boundary shared by an empty
    phase, 'begin' takes the first, 'end' the last."""
    def at(t, name: str, side: str = 'begin') -> int:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0 or t > old[-1]:
            raise ValueError(f'{config}: {name}={t!r} is not a point of the {what} schedule [0, {old[-1]}], so '
                             'schedule= cannot stretch it')
        hits = [i for i, b in enumerate(old) if b == t]
        if hits:
            return new[hits[0] if side == 'begin' else hits[-1]]
        i = max(i for i, b in enumerate(old) if b < t)
        return int(math.floor(new[i] + (t - old[i]) * (new[i + 1] - new[i]) / (old[i + 1] - old[i]) + 0.5))
    return at


def apply_schedule(cfg, schedule: Schedule, config: str):
    """Stretch the config's AdaSAP schedule in place (see the module doc); returns ``cfg``."""
    schedule = check_schedule(schedule, config)
    if schedule == 1:
        return cfg
    path, hook = find_adasap_hook(cfg, config)
    by_epoch = hook.get('by_epoch', True)
    unit, limit = ('epoch', 'max_epochs') if by_epoch else ('iteration', 'max_iters')
    train = cfg.get('train_cfg')
    total = train.get(limit) if isinstance(train, dict) else None
    if not _positive_int(total):
        raise ValueError(f'{config}: schedule= needs train_cfg.{limit} (the AdaSAPHook phases are in {unit}s), got '
                         f'{total!r}')
    warm_end, prune_end = (hook.get(p, {}).get('end') for p in ('warmup', 'pruning'))
    for name, end in (('warmup.end', warm_end), ('pruning.end', prune_end)):
        if isinstance(end, bool) or not isinstance(end, int):
            raise ValueError(f'{config}: {path}.{name} must be an int for schedule= to stretch it, got {end!r}')
    old = (warm_end, prune_end - warm_end, total - prune_end)
    if min(old) < 0:
        raise ValueError(f'{config}: the phase ends {path}.warmup.end={warm_end}, pruning.end={prune_end} and '
                         f'train_cfg.{limit}={total} are out of order')
    new = tuple(schedule * n for n in old) if isinstance(schedule, int) else \
        tuple(schedule[p] for p in SCHEDULE_PHASES)
    old_b, new_b = (0, old[0], old[0] + old[1], total), (0, new[0], new[0] + new[1], sum(new))
    at = _time_map(old_b, new_b, unit, config)
    hook['warmup']['end'], hook['pruning']['end'] = new_b[1], new_b[2]
    train[limit] = new_b[3]
    if train.get('val_interval') == total:
        train['val_interval'] = new_b[3]
    _stretch_schedulers(cfg, by_epoch, old_b, new_b, at, schedule, config)
    _stretch_checkpoints(cfg, by_epoch, old, old_b, new_b)
    pruning_steps = hook['pruning'].get('schedule')
    if isinstance(pruning_steps, dict) and _positive_int(pruning_steps.get('interval')) and old[1]:
        pruning_steps['interval'] = max(1, pruning_steps['interval'] * new[1] // old[1])
    return cfg


def _stretch_schedulers(cfg, by_epoch: bool, old_b, new_b, at, schedule, config: str) -> None:
    schedulers = cfg.get('param_scheduler')
    items = schedulers if isinstance(schedulers, (list, tuple)) else [schedulers] if schedulers else []
    for i, s in enumerate(items):
        if not isinstance(s, dict) or s.get('by_epoch', True) != by_epoch:  # another unit: left as it is
            continue
        name = f'param_scheduler[{i}] ({s.get("type")})'
        bad = [k for k in UNSTRETCHABLE if s.get(k) is not None]
        if bad:
            raise ValueError(f'{config}: schedule= cannot stretch {name}.{bad[0]}; give it as begin/end/T_max or '
                             'milestones, or stretch it in the method config itself')
        begin, end = s.get('begin', 0), s.get('end')
        span = (end if end is not None else old_b[-1]) - begin
        if 'begin' in s:
            s['begin'] = at(s['begin'], f'{name}.begin', 'begin')
        if end is not None:
            s['end'] = at(end, f'{name}.end', 'end')
        if s.get('milestones') is not None:
            s['milestones'] = [at(m, f'{name}.milestones', 'begin') for m in s['milestones']]
        if s.get('T_max') is not None:
            if isinstance(schedule, int):
                s['T_max'] = s['T_max'] * schedule
            else:
                new_span = (s['end'] if end is not None else new_b[-1]) - s.get('begin', 0)
                s['T_max'] = max(1, int(math.floor(s['T_max'] * new_span / span + 0.5))) if span > 0 else s['T_max']


def _stretch_checkpoints(cfg, by_epoch: bool, old, old_b, new_b) -> None:
    """An epoch checkpoint interval grows by the largest factor every phase grew by (k for an int schedule),
    unless a phase end it saved would then be skipped."""
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not by_epoch or not isinstance(ckpt, dict) or not ckpt.get('by_epoch', True) \
            or not _positive_int(ckpt.get('interval')):
        return
    lengths = [(o, n - m) for o, (m, n) in zip(old, zip(new_b, new_b[1:])) if o]
    factor = reduce(math.gcd, [n // o if n % o == 0 else 1 for o, n in lengths], 0) or 1
    interval = ckpt['interval'] * factor
    if all(n % interval == 0 for o, n in zip(old_b[1:], new_b[1:]) if o % ckpt['interval'] == 0):
        ckpt['interval'] = interval


def _kind_of(name: str, sharpness) -> bool:
    """Whether a config's own sharpness step is of the recipe kind ``name``."""
    if not isinstance(sharpness, dict):
        return False
    radius = sharpness.get('radius')
    if name == 'adaptive':
        return isinstance(radius, dict) and radius.get('type') == 'AdaptiveRadius'
    if name == 'uniform':
        return radius is None and sharpness.get('rho') is not None
    if name == 'asam':
        return radius is None and sharpness.get('rho') is not None and sharpness.get('adaptive', True) is True
    return False


def _flatten(options: dict, prefix: str = '') -> dict:
    out = {}
    for key, value in (options or {}).items():
        key = f'{prefix}{key}'
        if isinstance(value, dict) and value and '_delete_' not in value:
            out.update(_flatten(value, key + '.'))
        else:
            out[key] = value
    return out


def _node(cfg, dotted: str):
    node = cfg._cfg_dict if hasattr(cfg, '_cfg_dict') else cfg  # a Config is no dict: start at its ConfigDict
    for key in dotted.split('.'):
        if isinstance(node, (list, tuple)) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _sam_only_keys() -> set:
    return set(inspect.signature(SAMOptimWrapper.__init__).parameters) - \
        set(inspect.signature(OptimWrapper.__init__).parameters)


def apply_phases(cfg, phases: Optional[dict], options: Optional[dict], config: str):
    """Give the config's AdaSAPHook the warm-up and fine-tune steps ``phases`` names, in place; returns ``cfg``."""
    phases = check_phases(phases, config)
    if phases is None:
        return cfg
    path, hook = find_adasap_hook(cfg, config)
    finetune = hook.get('finetune')
    own = dict(warmup=(hook.get('warmup') or {}).get('sharpness'),
               finetune=RECIPES['finetune']['asam'] if finetune is None else finetune.get('sharpness'))
    for phase in ABLATION_PHASES:
        name = phases[phase]
        mine = own[phase].to_dict() if hasattr(own[phase], 'to_dict') else own[phase]
        step = copy.deepcopy(mine if _kind_of(name, mine) else RECIPES[phase][name])
        if hook.get(phase) is None:
            hook[phase] = {}
        hook[phase]['sharpness'] = step
    hook['pruning'].pop('sharpness', None)  # continues the warm-up's step
    knobs = sharpness_knobs(options)
    for key, value in knobs.items():
        parent = key.rsplit('.', 1)[0]
        if not isinstance(_node(cfg, parent), dict):
            phase = _KNOB.search(key).group(2)
            given = phases.get(phase, phases['warmup'] if phase == 'pruning' else None)
            raise ValueError(f'{config}: cfg_options {key}={value!r} sets a knob of the {phase} sharpness step, '
                             f'but phases gives that phase {given!r}, whose step has no {parent.rsplit(".", 1)[-1]} '
                             '(remove the knob from this arm)')
    if knobs:
        cfg.merge_from_dict(knobs)  # copies the dicts along each key's path: look the hook up again
        path, hook = find_adasap_hook(cfg, config)
    sharp = any(hook[p].get('sharpness') is not None for p in ABLATION_PHASES) or \
        hook['pruning'].get('sharpness', 'warmup') not in ('warmup', None)
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        raise ValueError(f'{config}: phases= needs an optim_wrapper dict to set its type, got {wrapper!r}')
    kind = str(wrapper.get('type', 'OptimWrapper')).split('.')[-1]
    if sharp:
        wrapper['type'] = 'SAMOptimWrapper'
    elif kind == 'SAMOptimWrapper':  # no sharpness step at all: the plain wrapper, as the L2 + SGD recipe
        for key in _sam_only_keys():
            wrapper.pop(key, None)
        wrapper['type'] = 'OptimWrapper'
    return cfg


def sharpness_knobs(options: Optional[dict]) -> dict:
    """The ``cfg_options`` (as dotted leaves) that set a phase's sharpness step: applied after ``phases``."""
    return {k: v for k, v in _flatten(options).items() if _KNOB.search(k)}


def arm_edit(config: str, options: Optional[dict], schedule: Schedule = 1, phases: Optional[dict] = None
             ) -> Tuple[dict, Optional[Callable]]:
    """The options to load a method's config with and the edit that makes it the arm (None: no edit). With
    ``phases``, the sharpness knobs are held back from the load and merged over the arm's steps by the edit (a
    knob may set a step the method's own config does not have)."""
    schedule, phases = check_schedule(schedule, config), check_phases(phases, config)
    options = dict(options or {})
    if schedule == 1 and phases is None:
        return options, None
    knobs = sharpness_knobs(options) if phases else {}
    if knobs:
        options = {k: v for k, v in _flatten(options).items() if k not in knobs}
    return options, partial(apply_arm, schedule=schedule, phases=phases, options=knobs, config=config)


def load_arm_config(config: str, options: Optional[dict] = None, schedule: Schedule = 1,
                    phases: Optional[dict] = None, work_dir: Optional[str] = None):
    """A method's training config with its ``cfg_options`` and its arm (:func:`arm_edit`)."""
    load, edit = arm_edit(config, options, schedule, phases)
    cfg = load_config(config, load, work_dir)
    return cfg if edit is None else edit(cfg)


def apply_arm(cfg, schedule: Schedule = 1, phases: Optional[dict] = None, options: Optional[dict] = None,
              config: str = 'config'):
    """Both options on a loaded config (``cfg_options`` already merged into it; ``options`` are those, for the
    sharpness knobs that override a phase recipe); returns ``cfg``."""
    apply_phases(cfg, phases, options, config)
    return apply_schedule(cfg, schedule, config)
