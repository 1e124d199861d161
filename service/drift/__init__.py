"""Drift: live traffic against the training baseline (metadata's ``baseline_profile``).

``reference`` turns a profile into bins that request values fall into; ``window`` keeps
the counts of the latest rows per version in each worker; ``tracker`` observes requests
(sampled to a rate) and shares each worker's counts with the others; ``scores`` merges
them into the server's window and computes the population stability index, which
service/metrics.py exports per scrape.
"""
