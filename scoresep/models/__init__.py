"""Plain ``nn.Module`` networks (no Lightning inside): transcriptor (and activity classifier), separator."""
