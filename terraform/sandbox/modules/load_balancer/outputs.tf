output "id" {
  description = "Load balancer id."
  value       = sandbox_load_balancer.this.id
}

output "hostname" {
  description = "DNS name of the load balancer, stable for its life: point DNS records at it."
  value       = sandbox_load_balancer.this.hostname
}
