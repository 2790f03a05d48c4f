"""DeepFER data (desktop): FER2013 in its CSV and folder forms, FER+ votes, stratified splits,
and the calibration and held-out samples the converter uses.

numpy and OpenCV only (no TensorFlow): ``deepfer evaluate model.tflite`` works on an edge
install. Imports only :mod:`deepfer.edge` (labels, preprocessing).
"""
