# A managed database. The password is sensitive: Terraform masks it in plans and outputs.

resource "sandbox_database" "this" {
  name     = var.name
  password = var.password
  tags     = var.tags
}
