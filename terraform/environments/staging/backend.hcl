bucket         = "gitops-tfstate"
key            = "expense/staging/terraform.tfstate"
region         = "us-east-1"
dynamodb_table = "gitops-tflocks"
encrypt        = true
