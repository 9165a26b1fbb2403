"""Training of the embedded speech-text model's new parameters by distillation from the frozen text model."""
