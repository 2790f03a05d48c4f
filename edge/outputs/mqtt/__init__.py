"""The MQTT output: ``sink.py`` (the publisher), ``ha_discovery.py`` (Home Assistant),
``credentials.py`` (the password). Settings and their checks: ``deepfer.edge.config.mqtt``."""
