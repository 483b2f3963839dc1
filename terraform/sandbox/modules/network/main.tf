# An isolated network for one environment of an application (think VPC).

resource "sandbox_network" "this" {
  name = var.name
  cidr = var.cidr
  tags = var.tags
}
