"""Training engine: configs, losses, the one training loop (a generator of events), checkpoints,
distillation, fine-tuning and multi-process (DDP) training. No Qt here."""
