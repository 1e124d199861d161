"""Training: one YAML config in, one published model version out."""
