"""Monitoring: the training baseline in Model Monitor's formats (baseline), drift tests (drift), and live traffic
checked against the baseline (monitor)."""
