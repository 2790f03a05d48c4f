"""The edge daemon's settings: typed sections (``sections.py``, ``mqtt.py``) loaded from
defaults, a TOML file, ``DEEPFER_*`` env vars and flags (``loader.py``).

The public names are re-exported here: ``from deepfer.edge.config import Config, load_config``.
"""

from deepfer.edge.config.loader import (
    ENV_PREFIX,
    build_config,
    check_config,
    env_overrides,
    load_config,
    read_toml,
    to_toml,
)
from deepfer.edge.config.mqtt import MqttConfig
from deepfer.edge.config.sections import (
    Config,
    DetectorConfig,
    ModelConfig,
    PreviewConfig,
    RunConfig,
    SourceConfig,
    TrackerConfig,
    default_device_id,
    key_types,
    sections,
    top_level_keys,
)
from deepfer.edge.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "Config",
    "ConfigError",
    "DetectorConfig",
    "ModelConfig",
    "MqttConfig",
    "PreviewConfig",
    "RunConfig",
    "SourceConfig",
    "TrackerConfig",
    "build_config",
    "check_config",
    "default_device_id",
    "env_overrides",
    "key_types",
    "load_config",
    "read_toml",
    "sections",
    "to_toml",
    "top_level_keys",
]
