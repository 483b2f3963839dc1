terraform {
  required_version = ">= 1.0.0"

  # The state bucket, key, region and lock table come from the environment's backend config
  # (`terraform init -backend-config=...`); tests override this with a local backend.
  backend "s3" {}

  required_providers {
    sandbox = {
      source  = "gitops/sandbox"
      version = "0.1.0"
    }
  }
}

provider "sandbox" {
  # The cloud directory comes from SANDBOX_CLOUD_DIR. Cost tags on every resource; an empty value
  # (e.g. no owner) leaves the tag out, so the tag policy sees it missing.
  default_tags = {
    for key, value in {
      Environment = var.environment
      Application = var.application
      Owner       = var.owner
    } : key => value if value != ""
  }
}
