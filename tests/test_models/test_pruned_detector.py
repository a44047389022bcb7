"""PrunedDetector: a pruned checkpoint's detector built at its pruned shapes from the config, and the refusals."""
import json
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from mmdet_adasap.apis import build_detector, load_detector_checkpoint
from mmdet_adasap.models import channel_record_of
from mmdet_adasap.pruning import channel_file_of, save_pruned_checkpoint
from pruning_fixtures import ARCHS, REPO, flat_outputs

DEMO = osp.join(REPO, ARCHS['demo'][0])
DEMO_PRUNED = osp.join(REPO, 'configs/pruned/ssd-r18mini_synthvoc_pruned.py')


def _pruned_cfg(arch, channels=None):
    dense = Config.fromfile(osp.join(REPO, ARCHS[arch][0]))
    return Config(dict(model=dict(type='PrunedDetector', architecture=dense.model, channels=channels)))


def _outputs(pruner, model, arch):
    x = torch.randn(ARCHS[arch][1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return flat_outputs(pruner.groups.forward_fn(model.eval(), x))


@pytest.mark.parametrize('arch', ['demo', 'faster_rcnn'])
def test_channel_file_and_checkpoint_meta_build_the_same_model(arch, pruned_export, tmp_path):
    pruner, exported, record = pruned_export(arch)
    ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), exported, record)
    channel_file = channel_file_of(ckpt)
    assert channel_file == str(tmp_path / 'pruned.channels.json')
    with open(channel_file) as f:
        assert json.load(f)['layers'] == record
    from_file, _ = build_detector(_pruned_cfg(arch, channel_file), ckpt)
    from_meta, _ = build_detector(_pruned_cfg(arch), ckpt)  # channels=None: taken from the checkpoint
    assert type(from_file) is type(exported)  # the architecture's own class, its own state_dict keys
    assert from_file.state_dict().keys() == exported.state_dict().keys()
    assert channel_record_of(from_file) == channel_record_of(from_meta) == record
    reference = _outputs(pruner, exported, arch)
    for model in (from_file, from_meta):
        assert torch.equal(_outputs(pruner, model, arch), reference)


def test_pruned_config_is_three_lines_over_the_dense_one():
    cfg = Config.fromfile(DEMO_PRUNED)
    assert cfg.model.type == 'PrunedDetector' and cfg.model.architecture == Config.fromfile(DEMO).model
    lines = [line for line in open(DEMO_PRUNED) if line.strip() and not line.startswith('#')]
    assert len(lines) <= 3


# ----------------------------------------------------------------------------- bad input
def test_record_of_another_architecture_is_refused_naming_the_layer(pruned_export, tmp_path):
    _, exported, record = pruned_export('demo')
    ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), exported, record)
    with pytest.raises(ValueError, match=r"PrunedDetector: the channel record .*pruned\.channels\.json.* does not "
                                         r"fit .*'backbone\.(conv1|layer)"):
        MODELS.build(_pruned_cfg('ssdlite', channel_file_of(ckpt)).model)
    name = next(iter(record))
    wider = dict(record, **{name: dict(record[name], dense=dict(record[name]['dense'], out_channels=999))})
    other = tmp_path / 'other.channels.json'
    other.write_text(json.dumps(dict(schema='mmdet_adasap.channels/1', layers=wider)))
    with pytest.raises(ValueError, match=rf"'{name}' with dense shape .*999"):
        MODELS.build(_pruned_cfg('demo', str(other)).model)


def test_missing_or_foreign_channel_file_is_named(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'pruned.channels.json')
    with pytest.raises(FileNotFoundError, match=r"channel file '.*nowhere/pruned\.channels\.json' does not exist"):
        MODELS.build(_pruned_cfg('demo', missing).model)
    foreign = tmp_path / 'foreign.json'
    foreign.write_text('{"a": 1}')
    with pytest.raises(ValueError, match=r"'.*foreign\.json' is not a channel file"):
        MODELS.build(_pruned_cfg('demo', str(foreign)).model)
    with pytest.raises(ValueError, match=r'PrunedDetector needs channels=.*model\.channels=PATH'):
        MODELS.build(_pruned_cfg('demo').model)


def test_dense_checkpoint_in_pruned_config_and_back_are_refused(pruned_export, tmp_path):
    _, exported, record = pruned_export('demo')
    pruned_ckpt = save_pruned_checkpoint(str(tmp_path / 'pruned.pth'), exported, record)
    dense_model, _ = build_detector(Config.fromfile(DEMO))
    dense_ckpt = str(tmp_path / 'dense.pth')
    torch.save(dict(state_dict=dense_model.state_dict(), meta={}), dense_ckpt)
    model = MODELS.build(_pruned_cfg('demo', pruned_ckpt).model)
    with pytest.raises(ValueError, match=r"is a dense checkpoint but .* builds a pruned detector .*first mismatched "
                                         r"layer 'backbone\.conv1\.weight'"):
        load_detector_checkpoint(model, dense_ckpt)
    with pytest.raises(ValueError, match=r"is a pruned checkpoint .*first mismatched layer 'backbone\.conv1\.weight'"
                                         r".*configs/pruned/ssd-r18mini_synthvoc_pruned\.py"):
        build_detector(Config.fromfile(DEMO), pruned_ckpt)


def test_retired_names_say_what_replaces_them():
    with pytest.raises(ValueError, match='PrunedChannelsHook is retired.*PrunedDetector'):
        from mmdet.registry import HOOKS
        HOOKS.build(dict(type='PrunedChannelsHook'))
    import mmdet_adasap.pruning as pruning
    with pytest.raises(AttributeError, match='load_pruned_checkpoint is gone.*apis.build_detector'):
        pruning.load_pruned_checkpoint
