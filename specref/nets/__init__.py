"""The paper's networks in spatial and Spec form: ``build(name, ...)``, ``names()``.

LeNet, AlexNet (CIFAR variant), VGG-11/16 and DenseNet-BC-121/169, each as ``name`` and
``"spec-" + name``; see :func:`specref.nets.registry.build`.
"""
from .registry import build, names

__all__ = ["build", "names"]
