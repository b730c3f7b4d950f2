"""Training data: synthetic defocus rendering (synth.py), dataset folder formats and torch datasets."""
