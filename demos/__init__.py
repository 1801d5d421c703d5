"""Runnable services for each chapter: one sub-package per chapter, one small module per variant."""
