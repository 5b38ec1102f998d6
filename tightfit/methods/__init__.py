"""The seed methods, each over plain PyTorch: search (ProxylessNAS), and later prune, quantize, joint."""
