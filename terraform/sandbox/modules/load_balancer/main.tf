# A public load balancer in front of a service.

resource "sandbox_load_balancer" "this" {
  name       = var.name
  service_id = var.service_id
  port       = var.port
  tags       = var.tags
}
