"""Member-batched networks: each member is exactly an independent single model."""

from __future__ import annotations

import pytest
import torch

from labelloop.models.networks import ConvNet, MLPNet, build_network, member_state_dict, stack_state_dicts


@pytest.mark.parametrize("batch_norm,global_pool", [(True, True), (False, False)])
def test_cnn_member_equals_single_model(batch_norm, global_pool):
    torch.manual_seed(0)
    net = ConvNet(1, 10, (8, 8), batch_norm=batch_norm, global_pool=global_pool, n_members=3)
    # Give batch norm non-trivial running statistics, then compare in eval mode.
    net.train()
    net(torch.rand(3, 16, 1, 8, 8))
    net.eval()
    x = torch.rand(5, 1, 8, 8)
    stacked = net(x)
    assert stacked.shape == (3, 5, 10)
    for k in range(3):
        single = build_network(net.spec, n_members=1)
        single.load_state_dict(member_state_dict(net, k))
        single.eval()
        torch.testing.assert_close(single(x)[0], stacked[k], rtol=1e-5, atol=1e-5)
    # Members are different models (different initial weights).
    assert not torch.allclose(stacked[0], stacked[1])


def test_member_inputs_are_routed_to_their_member():
    torch.manual_seed(0)
    net = MLPNet(4, 3, hidden=[8], dropout=0.0, n_members=2).eval()
    a, b = torch.rand(6, 4), torch.rand(6, 4)
    per_member = net(torch.stack([a, b]))
    torch.testing.assert_close(per_member[0], net(a)[0])
    torch.testing.assert_close(per_member[1], net(b)[1])


def test_stack_state_dicts_inverts_member_state_dict():
    torch.manual_seed(1)
    net = ConvNet(3, 4, (16, 16), channels=[8, 8, 8], n_members=4)
    states = [member_state_dict(net, k) for k in range(4)]
    again = build_network(net.spec, n_members=4)
    again.load_state_dict(stack_state_dicts(states))
    for name, t in net.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], t)


def test_bad_input_shape_is_named():
    net = MLPNet(4, 3, n_members=2)
    with pytest.raises(ValueError, match=r"expected input of shape .* got \(3, 2, 6, 4\)"):
        net(torch.rand(3, 2, 6, 4))


def test_public_api_is_exported():
    import labelloop.models as models

    for name in models.__all__:
        assert getattr(models, name) is not None
    assert "KFoldCommittee" in models.__all__ and "Trainer" in models.__all__
