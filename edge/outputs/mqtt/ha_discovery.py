"""Home Assistant MQTT discovery: retained config messages for one DeepFER device.

Two sensors read the ``state`` topic: the dominant emotion (an enum sensor) and the number
of faces. Availability follows the device's retained ``status`` topic (online / offline).
The publisher sends these on every connect and again whenever Home Assistant announces
itself on ``<ha_prefix>/status`` with ``online``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from deepfer.edge import __version__
from deepfer.edge.labels import LABELS
from deepfer.edge.messages import NO_FACE


def node_id(device_id: str) -> str:
    """An id Home Assistant accepts in topics and unique ids: ``[a-zA-Z0-9_-]``."""
    return "deepfer_" + re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


def discovery_messages(
    device_id: str,
    base_topic: str,
    *,
    ha_prefix: str = "homeassistant",
    model: str = "",
    labels: Sequence[str] = LABELS,
) -> list[tuple[str, dict[str, Any]]]:
    """``(topic, payload)`` pairs to publish retained (QoS 1)."""
    node = node_id(device_id)
    device = {
        "identifiers": [node],
        "name": f"DeepFER {device_id}",
        "manufacturer": "DeepFER",
        "model": model or "DeepFER",
        "sw_version": __version__,
    }
    common = {
        "state_topic": f"{base_topic}/state",
        "availability_topic": f"{base_topic}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
    }
    emotion = {
        "name": "Emotion",
        "unique_id": f"{node}_emotion",
        "object_id": f"{node}_emotion",
        "device_class": "enum",
        "options": [*labels, NO_FACE],
        "value_template": "{{ value_json.dominant }}",
        "icon": "mdi:emoticon-outline",
        **common,
    }
    faces = {
        "name": "Faces",
        "unique_id": f"{node}_faces",
        "object_id": f"{node}_faces",
        "state_class": "measurement",
        "unit_of_measurement": "faces",
        "value_template": "{{ value_json.count }}",
        "icon": "mdi:account-multiple",
        **common,
    }
    return [
        (f"{ha_prefix}/sensor/{node}/emotion/config", emotion),
        (f"{ha_prefix}/sensor/{node}/faces/config", faces),
    ]
