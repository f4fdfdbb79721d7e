"""The NotewiseLSTM model, its samplers and the generation pipeline (see the model issue)."""
