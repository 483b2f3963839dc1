output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "cidr" {
  description = "IPv4 CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Ids of the two public subnets (load balancer, service tasks)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Ids of the two private subnets (database)."
  value       = aws_subnet.private[*].id
}
