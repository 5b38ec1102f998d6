"""tightfit: make neural networks fit the hardware they will run on."""

__version__ = "0.1.0"
