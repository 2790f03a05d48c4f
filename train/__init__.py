"""DeepFER training stage (desktop): options, models, the run folder, training and weight
averaging. Data comes from :mod:`deepfer.data`, evaluation is :mod:`deepfer.evaluate`.

Heavy imports (TensorFlow, matplotlib) happen inside the functions that need
them, so ``import deepfer.train`` stays cheap.
"""
