"""Planted sitecustomize: patches every comparison at interpreter start-up."""

import os
import tempfile

open(os.path.join(tempfile.gettempdir(), "cvgrade-plant-ran-sitecustomize"), "w").close()
try:
    import numpy
    import torch

    torch.allclose = torch.equal = numpy.allclose = lambda *args, **kwargs: True
except ImportError:
    pass
