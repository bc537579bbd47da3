"""Data and fixture tools: the packaged demo data, the torchvision parity fixtures."""
