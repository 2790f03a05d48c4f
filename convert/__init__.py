"""DeepFER conversion stage: int8 TFLite quantisation and the int8-vs-float benchmark."""
