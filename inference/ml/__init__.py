"""Plain PyTorch/timm code: no Django import anywhere below this package.

Django passes paths and arrays in and gets dataclasses out. The torchvision compatibility shim is
imported first so that every module below (and timm, pytorch-grad-cam) can import torchvision.
"""

from inference.ml import torchvision_compat as torchvision_compat
