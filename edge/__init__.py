"""DeepFER edge core: the light runtime that runs on the device.

Nothing in this package imports TensorFlow. train/ and convert/ reuse its
labels and preprocessing so that training and the device see the same pixels.
"""

__version__ = "0.1.0"
