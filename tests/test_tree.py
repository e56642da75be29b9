"""leaf_layers: a network's leaf layers in forward order, or a single layer as its own leaf."""
from specref.layers.dense import Dense
from specref.layers.dense_concat import DenseConcat
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import Tanh
from specref.tree import leaf_layers, state_stores


def test_nested_chains_are_flattened_in_forward_order():
    first, inner, last = Dense(2, 2), Tanh(), Dense(2, 2)
    net = Sequential([first, DenseConcat([inner]), Sequential([last])])
    assert leaf_layers(net) == [("0", first), ("1.0", inner), ("2.0", last)]


def test_a_single_layer_is_its_own_leaf():
    layer = Dense(2, 3)
    assert leaf_layers(layer) == [("", layer)]
    assert list(state_stores(layer)) == [layer.params]
