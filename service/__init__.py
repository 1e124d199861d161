"""Serving: TF Serving-compatible REST over a model registry, under gunicorn.

Kept import-light: ``import service`` pulls in nothing heavy, and the ONNX path never
imports TensorFlow.
"""
