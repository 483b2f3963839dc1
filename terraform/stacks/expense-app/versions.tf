terraform {
  required_version = ">= 1.0"

  # The state bucket, key, region and lock table come from the environment's backend config
  # (`terraform init -backend-config=terraform/environments/<env>/backend.hcl`).
  backend "s3" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  # The cost tags on every resource, set once here; modules add only per-resource tags
  # (Name, Component...). Checked statically by `python -m gitops.static_checks`.
  default_tags {
    tags = {
      Environment = var.environment
      Application = var.application
      Owner       = var.owner
    }
  }
}
