output "id" {
  description = "Service id."
  value       = sandbox_service.this.id
}

output "endpoint" {
  description = "Internal URL of the service."
  value       = sandbox_service.this.endpoint
}

output "image" {
  description = "Image the service runs."
  value       = sandbox_service.this.image
}
