"""Models that leave xpmlp: ONNX graphs traced through the Array API, safetensors weights.

Each format lives in its own module and imports its optional dependencies on first use, so
``import xpmlp.export`` needs none of them (``pip install 'xpmlp[onnx]'`` or ``'xpmlp[safetensors]'``).
"""
