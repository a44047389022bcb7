"""AmpSAMOptimWrapper on CPU: bf16 autocast against fp32, loss scaling, checkpoint format."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

import mmdet_adasap
from mmdet_adasap.engine.optim_wrappers import amp_variant_of
from test_engine.tiny_models import TinyNet, tiny_batch

CFG = dict(optimizer=dict(type='SGD', lr=0.1), rho=0.3, adaptive=True)


def train(wrapper_type, steps=3, **kwargs):
    torch.manual_seed(0)
    model = TinyNet()
    w0 = torch.cat([p.detach().flatten() for p in model.parameters()])
    ow = build_optim_wrapper(model, dict(type=wrapper_type, **CFG, **kwargs))
    for i in range(steps):
        model.train_step(tiny_batch(i), ow)
    return torch.cat([p.detach().flatten() for p in model.parameters()]) - w0, model, ow


@pytest.mark.parametrize('loss_scale', [None, 'dynamic'])
def test_bf16_matches_fp32(loss_scale):
    delta32, *_ = train('SAMOptimWrapper')
    delta16, model, ow = train('AmpSAMOptimWrapper', dtype='bfloat16', loss_scale=loss_scale)
    assert ow.sam_steps == 3 and model.forward_calls == 6
    rel = (delta16 - delta32).norm() / delta32.norm()
    assert rel < 0.05, float(rel)  # bf16 keeps ~3 significant digits
    assert not torch.equal(delta16, delta32)  # autocast really was on


def test_dynamic_scale_checkpoint_round_trip():
    _, model, ow = train('AmpSAMOptimWrapper', steps=1, dtype='bfloat16', loss_scale=512.)
    state = ow.state_dict()
    assert state['loss_scaler']['scale'] == 512.
    other = build_optim_wrapper(TinyNet(), dict(type='AmpSAMOptimWrapper', **CFG, loss_scale='dynamic'))
    other.load_state_dict(state)
    assert other.loss_scaler.get_scale() == 512.


def test_amp_variant_mapping_and_bad_dtype():
    assert amp_variant_of('SAMOptimWrapper') == 'AmpSAMOptimWrapper'
    assert amp_variant_of('OptimWrapper') == 'AmpOptimWrapper'
    with pytest.raises(ImportError, match='mmdet_adasap.engine.optim_wrappers.amp_variant_of'):
        mmdet_adasap.amp_variant_of  # its old home refuses, naming the new one
    with pytest.raises(ValueError, match='float64'):
        build_optim_wrapper(TinyNet(), dict(type='AmpSAMOptimWrapper', **CFG, dtype='float64'))
    with pytest.raises(ValueError, match='static'):
        build_optim_wrapper(TinyNet(), dict(type='AmpSAMOptimWrapper', **CFG, loss_scale='static'))
