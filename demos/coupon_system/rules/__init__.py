"""The volatile part: one module per coupon rule, each registering itself (see ../registry.py).

Add a kind by adding a module here (or in a folder on ``COUPON_RULES_PATH``); nothing else changes.
"""
