"""Adapters for the libraries people train with; each imports its library only when used."""
