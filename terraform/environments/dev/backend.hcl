bucket         = "gitops-tfstate"
key            = "expense/dev/terraform.tfstate"
region         = "us-east-1"
dynamodb_table = "gitops-tflocks"
encrypt        = true
