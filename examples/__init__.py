"""Runnable apps that show bearer_mw in each supported web framework."""
