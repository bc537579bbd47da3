"""Benchmarks (ours, torchvision, input pipeline, export) and the GPU harness."""
