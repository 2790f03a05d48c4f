"""DeepFER training stage (desktop): data, models, training and evaluation.

Heavy imports (TensorFlow, matplotlib) happen inside the functions that need
them, so ``import deepfer.train`` stays cheap.
"""
