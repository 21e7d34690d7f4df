"""Per-user response models, one module per candidate model id of the selection ladder."""
