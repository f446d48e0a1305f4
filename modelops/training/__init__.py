"""Training: fitting the built-in XGBoost algorithm (train), searching its hyperparameters (tuning), its threads."""
