"""The MLflow record: store resolution, runs per pipeline run and per stage attempt."""
