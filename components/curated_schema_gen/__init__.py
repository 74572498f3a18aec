"""Renders the curated schema for the run's T, K, profile fields and pid values."""
