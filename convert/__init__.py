"""DeepFER conversion stage: Keras model -> full-int8 and float TFLite with sidecars, and the
int8-vs-float gate. Benchmarks are :mod:`deepfer.evaluate`."""
