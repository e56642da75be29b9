"""The paper's networks in spatial and Spec form: ``build(name, ...)``, ``names()``.

LeNet, AlexNet (CIFAR variant), VGG-11/16 and DenseNet-BC-121/169, each as ``name`` and
``"spec-" + name``; see :func:`specref.nets.registry.build`. ``DEFAULT_BETA`` is the Spec nets'
threshold where none is given; ``spatial_baselines`` the spatial nets a network's memory is
compared with. ``SPEC_ACTIVATIONS`` maps the Spec blocks' activations (base name -> (parameter,
formula)); ``spec_activation_names()`` lists the accepted forms ("scaled-tanh:S", "shrink[:L]", ...).
"""
from ..layers.spectral_activation import usage as spec_activation_names
from .builder import SPEC_ACTIVATIONS, CustomActivation
from .network import Network, beta_of, set_beta
from .registry import DEFAULT_BETA, build, names, spatial_baselines

__all__ = ["DEFAULT_BETA", "SPEC_ACTIVATIONS", "CustomActivation", "Network", "beta_of", "build", "names",
           "set_beta", "spatial_baselines", "spec_activation_names"]
