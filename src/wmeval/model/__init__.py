"""The world model: a frame codec, an action-conditioned latent dynamics transformer, proprio and value heads.

Pure model code: tensors in, tensors (or `(loss, metrics)`) out; no file or network I/O here.
"""
