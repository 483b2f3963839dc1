output "dns_name" {
  description = "DNS name of the load balancer, stable for its life: point DNS records at it."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  description = "Route53 hosted zone of the load balancer (for alias records)."
  value       = aws_lb.this.zone_id
}

output "url" {
  description = "URL clients use to reach the service through the load balancer."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "security_group_id" {
  description = "Security group of the load balancer (the service admits traffic from it)."
  value       = aws_security_group.this.id
}

output "target_group_arn" {
  description = "Target group the service registers its tasks in (read from the listener, so the service waits for it)."
  value       = aws_lb_listener.this.default_action[0].target_group_arn
}
