"""tinyshop: carts, customer lookups and reports for a small web shop."""

__version__ = "0.1.0"
