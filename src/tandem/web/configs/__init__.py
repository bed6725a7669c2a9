"""Feature and model configs, validated by the engine's spec sections."""
