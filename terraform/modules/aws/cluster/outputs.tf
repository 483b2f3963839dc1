output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "Name of the web service."
  value       = aws_ecs_service.web.name
}

output "image" {
  description = "Container image the web service runs."
  value       = var.image
}

output "security_group_id" {
  description = "Security group of the tasks (the database admits traffic from it)."
  value       = aws_security_group.service.id
}

output "execution_role_arn" {
  description = "IAM role ECS uses to start the tasks."
  value       = aws_iam_role.execution.arn
}
