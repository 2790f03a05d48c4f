"""Keras models as saved and loaded for use: the dtype policy their layers compute in.

Training with ``--precision bf16`` builds layers with the ``mixed_bfloat16`` policy; what is
saved for use and converted must compute in float32 (no bfloat16 casts in a TFLite graph).
:func:`with_dtype_policy` rebuilds a model in another policy with the same weights. It lives
here, the lowest desktop layer that handles Keras models, so training (which writes such
models) and conversion (which reads them) share it. Importing it does not import Keras.
"""

from __future__ import annotations


def with_dtype_policy(model, policy: str = "float32"):
    """The same model (same weights) with every layer computing in ``policy``.

    Training with ``--precision bf16`` builds layers with the ``mixed_bfloat16`` policy
    (bfloat16 compute, float32 weights); what is saved for use (the best model, averages,
    what ``deepfer convert`` reads) is rebuilt in float32 so the graph has no bfloat16 casts.
    The output layer always computes in float32. A model already in ``policy`` comes back
    as is.
    """

    def wanted(layer) -> str:
        return "float32" if layer.name.startswith("emotion") else policy

    if all(
        getattr(layer.dtype_policy, "name", "float32") == wanted(layer)
        for layer in all_layers(model)
        if layer.__class__.__name__ != "InputLayer"
    ):
        return model
    config = model.get_config()
    _set_policy(config, policy)
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def all_layers(model):
    """Every layer of ``model``, those of nested models included (depth first)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def _set_policy(config, policy: str) -> None:
    """Every dtype policy in a Keras config set to ``policy``, except the outputs
    (``emotion*`` layers), which compute in float32."""
    if isinstance(config, dict):
        dtype = config.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") == "DTypePolicy":
            out = str(config.get("name", "")).startswith("emotion")
            dtype["config"]["name"] = "float32" if out else policy
        for value in config.values():
            _set_policy(value, policy)
    elif isinstance(config, list):
        for value in config:
            _set_policy(value, policy)
