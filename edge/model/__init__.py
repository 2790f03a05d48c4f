"""The emotion model: ``runtime.py`` (TFLite interpreters and stateless helpers),
``sidecar.py`` (the JSON every model carries), ``classifier.py`` (the model wrapper)."""
