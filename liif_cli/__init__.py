"""liif: arbitrary-scale image super-resolution with LIIF."""

__version__ = "0.1.0"
