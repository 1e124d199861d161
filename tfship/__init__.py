"""tfship: train, publish and serve TensorFlow/Keras models."""

__version__ = "0.1.0"
