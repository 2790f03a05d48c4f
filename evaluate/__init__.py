"""DeepFER evaluation (desktop): predictors over every model format, test-time augmentation,
metrics, reports, and the ``deepfer evaluate`` and ``deepfer benchmark`` commands.

A ``.tflite`` model is evaluated on the edge runtime without TensorFlow (numpy metrics),
so ``deepfer evaluate model.tflite`` works on an edge install. Imports
:mod:`deepfer.edge` and :mod:`deepfer.data` only.
"""
