"""The per-neuron probes against exact answers: a neuron whose outgoing weights are zero costs nothing to remove;
worst-case sharpness and the Hutchinson trace on a quadratic loss against their closed forms."""
import itertools

import torch
import torch.nn as nn

from mmdet_adasap.analysis.sensitivity import (hessian_trace, importance_ranks, neuron_edited, removal_sensitivity,
                                               spread_channels, worst_case_sharpness)
from mmdet_adasap.pruning import build_channel_groups
from mmdet_adasap.structures.neuron_groups import NeuronGroup, ParamSlice


def _net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 2, 1)).eval()
    with torch.no_grad():
        model[1].bias.uniform_(0.1, 0.5)  # every channel active after the ReLU
    x, y = torch.randn(2, 3, 8, 8), torch.randn(2, 2, 6, 6)
    return model, lambda: ((model(x) - y) ** 2).mean()


def test_removing_a_neuron_with_zero_outgoing_weights_costs_exactly_nothing():
    model, loss = _net()
    groups = build_channel_groups(model, (1, 3, 8, 8)).neuron_groups()
    assert [g.name for g in groups] == ['0'] and groups[0].num_channels == 6
    with torch.no_grad():
        model[3].weight[:, 4] = 0  # channel 4 feeds nothing
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sens = removal_sensitivity(groups, loss)['0']
    assert sens[4] == 0.0
    assert all(abs(sens[c]) > 1e-6 for c in range(6) if c != 4), 'the others do change the loss'
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), 'weights restored exactly'


def _quadratic(channels=3, width=2, seed=0):
    """L(theta) = 1/2 t^T A t + b^T t over t = vec(theta), theta[c] = the parameters of neuron c."""
    g = torch.Generator().manual_seed(seed)
    n = channels * width
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = m @ m.T / n + torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    theta = nn.Parameter(torch.randn(channels, width, generator=g, dtype=torch.float64))
    group = NeuronGroup('q', [ParamSlice(theta, 0, torch.arange(channels))], channels)

    def loss():
        t = theta.reshape(-1)
        return 0.5 * t @ a @ t + b @ t
    return theta, group, loss, a, b


def test_worst_case_sharpness_matches_the_closed_form():
    theta, group, loss, a, b = _quadratic()
    rho = 0.3
    got = worst_case_sharpness([group], loss, rho=rho)['q']
    grad = (a @ theta.detach().reshape(-1) + b).reshape(theta.shape)
    for c in range(3):
        e = torch.zeros_like(theta).detach()
        e[c] = rho * grad[c] / grad[c].norm()
        e = e.reshape(-1)
        expect = float(grad.reshape(-1) @ e + 0.5 * e @ a @ e)  # exact for a quadratic
        assert abs(got[c] - expect) < 1e-10


def test_hutchinson_trace_of_each_neurons_block():
    theta, group, loss, a, _ = _quadratic(channels=3, width=2)
    blocks = [float(a[2 * c:2 * c + 2, 2 * c:2 * c + 2].trace()) for c in range(3)]
    est = hessian_trace([group], loss, samples=1000, seed=1)['q']
    for c in range(3):  # Rademacher: v^T A v = tr(A) + sum_{i != j} A_ij v_i v_j, whose mean is 0
        off = abs(float(a[2 * c, 2 * c + 1]))
        assert abs(est[c] - blocks[c]) < 6 * 2 * off / 1000 ** 0.5 + 1e-9  # 6 sigma of the mean of 2 A_01 v_0 v_1
    # over all sign vectors of a 2-wide block the mean is exact: check the v^T H v of each sign pattern
    for c in range(3):
        vals = []
        for signs in itertools.product((-1.0, 1.0), repeat=2):
            v = torch.tensor(signs, dtype=torch.float64)
            vals.append(float(v @ a[2 * c:2 * c + 2, 2 * c:2 * c + 2] @ v))
        assert abs(sum(vals) / 4 - blocks[c]) < 1e-12


def test_ranks_and_channel_spread():
    theta, group, loss, _, _ = _quadratic(channels=5)
    other = NeuronGroup('r', [ParamSlice(nn.Parameter(torch.zeros(4, 1)), 0, torch.arange(4))], 4)
    scores = {'q': torch.tensor([5., 1., 3., 2., 4.]), 'r': torch.tensor([1., 1., 1., 5.])}
    ranks = importance_ranks([group, other], scores)  # q / mean 3, r / mean 2
    norm = {('q', c): float(scores['q'][c] / 3) for c in range(5)} | {('r', c): float(scores['r'][c] / 2)
                                                                       for c in range(4)}
    order = sorted(norm, key=lambda k: norm[k])
    for r, (name, c) in enumerate(order):
        if (name, c) not in (('r', 0), ('r', 1), ('r', 2)):  # ties among r's channels keep their order
            assert int(ranks[name][c]) == r
    picks = spread_channels(ranks, 3)
    assert picks['q'] == [0, 1, 2]  # removal order 1, 3, 2, 4, 0: the least (1), the middle (2), the most (0)
    assert picks['r'] == [0, 2, 3]
    with neuron_edited(group, 1, lambda p, d, i: p.index_select(d, i) + 1):
        pass
    assert torch.equal(theta.detach(), _quadratic(channels=5)[0].detach())
