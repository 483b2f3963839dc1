# A container service running `replicas` copies of `image` in a network.

resource "sandbox_service" "this" {
  name       = var.name
  network_id = var.network_id
  image      = var.image
  replicas   = var.replicas
  tags       = var.tags
}
