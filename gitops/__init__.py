"""gitops-flows core: plain Python (no Prefect) for Terraform delivery from Git."""
