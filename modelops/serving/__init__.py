"""Local inference servers speaking the SageMaker XGBoost container's protocol."""
