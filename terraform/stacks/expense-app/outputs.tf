output "lb_hostname" {
  description = "DNS name of the load balancer: the DNS stage points the environment's record at it."
  value       = module.lb.dns_name
}

output "service_endpoint" {
  description = "URL of the web service (through the load balancer)."
  value       = module.lb.url
}

output "image" {
  description = "Container image the web service runs (what Argo CD deploys)."
  value       = module.web.image
}

output "db_address" {
  description = "Host name of the database."
  value       = module.db.address
}

output "db_password" {
  description = "Master password of the database."
  value       = var.db_password
  sensitive   = true
}
