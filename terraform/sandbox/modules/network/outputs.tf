output "id" {
  description = "Network id."
  value       = sandbox_network.this.id
}

output "cidr" {
  description = "IPv4 CIDR block of the network."
  value       = sandbox_network.this.cidr
}
