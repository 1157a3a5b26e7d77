"""Embedders (registry kind ``embedder``): one vector per clip, for selection methods.

``videomae`` (pretrained VideoMAE, or an official VideoMAE-v2 checkpoint; local weights),
``classifier`` (penultimate features of an evaluator net trained on the real training
split — the in-domain default on toy), ``latent`` (VAE latents; waits for the generation
stage).
"""

from vidistill.embed import classifier, latent, videomae  # noqa: F401  (registration)
from vidistill.embed.base import Embedder, create_embedder, embed_store
from vidistill.embed.store import EmbeddingFile, embeddings_path

__all__ = ["Embedder", "EmbeddingFile", "create_embedder", "embed_store", "embeddings_path"]
