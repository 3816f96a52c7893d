"""VAE Explorer: a small, readable VAE on MNIST and the tools to look inside it.

Everything under ``explorer/`` is plain PyTorch/NumPy; only ``explorer/ui`` imports streamlit.
"""

__all__ = ["config", "data", "model", "train", "evaluate", "checkpoints", "latent", "embed", "jobs"]
