"""The MQTT output: ``sink.py`` (the publisher), ``outbox.py`` (the persistent store-and-forward
queue and seq, SQLite in the state folder), ``ha_discovery.py`` (Home Assistant),
``credentials.py`` (the password). Settings and their checks: ``deepfer.edge.config.mqtt``."""
