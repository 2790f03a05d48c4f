"""The live preview: ``server.py`` (an HTTP server that is a Sink) and ``static/index.html``."""
