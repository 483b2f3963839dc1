bucket         = "gitops-tfstate"
key            = "expense/prod/terraform.tfstate"
region         = "us-east-1"
dynamodb_table = "gitops-tflocks"
encrypt        = true
