"""ci: the pipeline CircleCI runs (changed models, papermill runs, artifacts, approval, deploy, config)."""
