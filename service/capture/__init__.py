"""Request capture: sampled requests and their answers written as JSON lines."""
