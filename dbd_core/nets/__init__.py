"""Networks: backbone, teacher (DeFusionNet-style), student, discriminator, built by name."""

from dbd_core.nets.registry import NetOutput, build_model, model_names, register  # noqa: F401
